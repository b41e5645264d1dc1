"""Dense-prediction data and metrics: folder layouts, COCO JSON, transforms, mIoU and COCO AP by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from unireplknet.dense.datasets import (
    CocoDetection,
    SegmentationFolder,
    SegmentationTransform,
    collate_segmentation,
    read_mask,
    segmentation_split,
)
from unireplknet.dense.metrics import DetectionMetrics, SegmentationMetrics, confusion_matrix


# -- segmentation metrics -----------------------------------------------------------------------
def _logits(pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(pred, num_classes).permute(0, 3, 1, 2).float()


def test_miou_and_pixel_accuracy_by_hand():
    # 3 classes; class 2 never appears in labels or predictions; 255 is ignored
    target = torch.tensor([[[0, 0, 1], [1, 1, 255]]])
    pred = torch.tensor([[[0, 1, 1], [1, 0, 0]]])
    assert confusion_matrix(pred, target, 3).tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    metrics = SegmentationMetrics(3)
    metrics.update(_logits(pred, 3), target, loss=torch.tensor(2.0))
    metrics.update(_logits(target.clamp(max=1), 3), target, loss=torch.tensor(1.0))  # a perfect batch
    # totals: class 0: TP 3, FN 1, FP 1; class 1: TP 5, FN 1, FP 1; 10 labelled pixels
    scores = metrics.compute()
    assert scores["mIoU"] == pytest.approx(100 * (3 / 5 + 5 / 7) / 2)
    assert scores["mAcc"] == pytest.approx(100 * (3 / 4 + 5 / 6) / 2)
    assert scores["aAcc"] == pytest.approx(80.0)
    assert scores["loss"] == pytest.approx(1.5)
    per_class = metrics.per_class()
    assert math.isnan(per_class["IoU"][2])  # undefined, not zero
    assert [t.dtype for t in metrics.state_tensors()] == [torch.int64, torch.float64, torch.float64]


def test_class_only_predicted_counts_as_zero_iou():
    metrics = SegmentationMetrics(2)
    metrics.update(_logits(torch.tensor([[[1, 1]]]), 2), torch.tensor([[[0, 0]]]))
    assert metrics.compute()["mIoU"] == 0.0 and metrics.per_class()["IoU"] == [0.0, 0.0]


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(ValueError, match="class ids 0..1"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 2)


# -- detection metrics --------------------------------------------------------------------------
def _box_mask(box, size=(40, 40)):
    mask = torch.zeros(size, dtype=torch.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 1
    return mask


def test_coco_ap_by_hand():
    gt_box = [0, 0, 20, 20]
    # prediction shifted 4 px right and 0 px down: IoU = 16*20 / (24*20) = 0.667, so it matches at
    # IoU thresholds 0.50..0.65 (4 of 10) with precision 1 at recall 1: AP = 40, AP50 = 100, AP75 = 0
    pred_box = [4, 0, 24, 20]
    metrics = DetectionMetrics(masks=True)
    target = {"boxes": torch.tensor([gt_box], dtype=torch.float32), "labels": torch.tensor([1])}
    target["masks"] = _box_mask(gt_box)[None]
    output = {
        "boxes": torch.tensor([pred_box], dtype=torch.float32),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([1]),
        "masks": _box_mask(pred_box)[None, None].float(),
    }
    metrics.update([output], [target], loss=torch.tensor(0.5))
    scores = metrics.compute()
    assert scores["AP"] == pytest.approx(40.0) and scores["mask_AP"] == pytest.approx(40.0)
    assert scores["AP50"] == pytest.approx(100.0) and scores["AP75"] == pytest.approx(0.0)
    assert scores["loss"] == pytest.approx(0.5)

    perfect = DetectionMetrics(masks=False)
    perfect.update([{k: output[k] for k in ("scores", "labels")} | {"boxes": target["boxes"]}], [target])
    assert perfect.compute()["AP"] == pytest.approx(100.0)


# -- segmentation datasets ----------------------------------------------------------------------
def _write_pair(images, masks, name, mask_array, mode="L"):
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    h, w = mask_array.shape
    Image.fromarray(np.full((h, w, 3), 128, dtype=np.uint8)).save(images / f"{name}.jpg")
    Image.fromarray(mask_array.astype(np.uint8)).convert(mode).save(masks / f"{name}.png")


def test_ade20k_layout_reduces_the_zero_label(tmp_path):
    images, masks = segmentation_split(tmp_path, "ade20k", "val")
    assert (images, masks) == (tmp_path / "images/validation", tmp_path / "annotations/validation")
    _write_pair(images, masks, "ADE_val_00000001", np.array([[0, 1, 2], [150, 3, 0]]))
    ds = SegmentationFolder(images, masks, SegmentationTransform(train=False, scale=None), reduce_zero_label=True)
    image, labels = ds[0]
    assert labels.tolist() == [[255, 0, 1], [149, 2, 255]]
    expected = (128 / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(image[:, 0, 0], expected, atol=2e-2, rtol=0)  # jpeg


def test_folder_layout_palette_masks_and_errors(tmp_path):
    images, masks = segmentation_split(tmp_path, "folder", "train")
    assert images == tmp_path / "train/images"
    palette = Image.fromarray(np.array([[0, 1], [2, 255]], dtype=np.uint8))
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, 7 * i % 256)])  # an L image becomes P
    assert palette.mode == "P"
    _write_pair(images, masks, "a", np.zeros((2, 2)))
    palette.save(masks / "a.png")
    assert read_mask(masks / "a.png").tolist() == [[0, 1], [2, 255]]
    Image.fromarray(np.zeros((2, 2, 3), dtype=np.uint8)).save(masks / "a.png")
    with pytest.raises(ValueError, match="single-channel or palette"):
        read_mask(masks / "a.png")
    Image.fromarray(np.zeros((2, 2, 3), dtype=np.uint8)).save(images / "b.png")
    with pytest.raises(ValueError, match="have no mask"):
        SegmentationFolder(images, masks, None)
    with pytest.raises(ValueError, match="not found"):
        SegmentationFolder(tmp_path / "nowhere", masks, None)
    with pytest.raises(ValueError, match="layout"):
        segmentation_split(tmp_path, "voc", "train")


def test_training_transform_crops_pads_and_keeps_pixels_aligned():
    torch.manual_seed(0)
    image = torch.rand(3, 20, 30)
    mask = (image[0] > 0.5).long()  # labels are a function of the pixel: alignment is checkable
    transform = SegmentationTransform(train=True, scale=24, crop_size=(32, 32), ratio_range=(1.0, 1.0), flip=1.0)
    out_image, out_mask = transform(image, mask)
    assert out_image.shape == (3, 32, 32) and out_mask.shape == (32, 32)
    # 20x30 rescaled to 24x36 then cropped to 32 rows: the 8 missing rows are padding
    assert (out_mask == 255).sum() == 8 * 32
    assert (out_image[:, out_mask == 255] == 0).all()
    images, labels = collate_segmentation([(out_image, out_mask), (torch.zeros(3, 8, 40), torch.zeros(8, 40).long())])
    assert images.shape == (2, 3, 32, 40) and labels.shape == (2, 32, 40)
    assert (labels[0, :, 32:] == 255).all() and (labels[1, 8:] == 255).all()


# -- COCO detection -----------------------------------------------------------------------------
@pytest.fixture
def coco_dir(tmp_path):
    (tmp_path / "images").mkdir()
    for i, (h, w) in enumerate([(40, 50), (30, 30)], start=1):
        Image.fromarray(np.zeros((h, w, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.pad(np.ones((10, 5), np.uint8), ((5, 25), (20, 25)))))
    data = {
        "images": [
            {"id": 1, "file_name": "1.png", "height": 40, "width": 50},
            {"id": 2, "file_name": "2.png", "height": 30, "width": 30},
        ],
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": [
            # polygon 10x10 square at (10, 10)
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 10, 10, 10], "area": 100, "iscrowd": 0,
             "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]]},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [20, 5, 5, 10], "area": 50, "iscrowd": 1,
             "segmentation": {"size": [40, 50], "counts": rle["counts"].decode()}},
        ],
    }  # fmt: skip
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path


def test_coco_json_to_torchvision_targets(coco_dir):
    ds = CocoDetection(coco_dir / "images", coco_dir / "ann.json", masks=True)
    assert ds.category_ids == [3, 7] and ds.class_names == ["dog", "cat"]
    image, target = ds[0]
    assert image.shape == (3, 40, 50)
    assert target["boxes"].tolist() == [[10, 10, 20, 20], [20, 5, 25, 15]]
    assert target["labels"].tolist() == [2, 1] and target["iscrowd"].tolist() == [0, 1]
    assert target["masks"].shape == (2, 40, 50) and target["masks"][0, 12, 12] == 1
    _, empty = ds[1]
    assert empty["boxes"].shape == (0, 4) and empty["masks"].shape == (0, 30, 30)

    train = CocoDetection(coco_dir / "images", coco_dir / "ann.json", masks=True, train=True, flip=1.0)
    _, flipped = train[0]  # crowd dropped, flipped horizontally
    assert flipped["labels"].tolist() == [2] and flipped["boxes"].tolist() == [[30, 10, 40, 20]]
    assert flipped["masks"][0, 12, 50 - 1 - 12] == 1 and flipped["masks"][0, 12, 12] == 0


def test_coco_errors_are_named(coco_dir):
    data = json.loads((coco_dir / "ann.json").read_text())
    from pycocotools import mask as mask_utils

    data["annotations"][1]["segmentation"]["size"] = [30, 30]  # counts no longer add up
    (coco_dir / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="annotation 2 of 1.png: Invalid RLE"):
        CocoDetection(coco_dir / "images", coco_dir / "bad.json")[0]
    data["annotations"][1]["segmentation"]["counts"] = mask_utils.encode(np.ones((30, 30), np.uint8, order="F"))[
        "counts"
    ].decode()
    (coco_dir / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="annotation 2 has a 30x30 mask for the 40x50 image"):
        CocoDetection(coco_dir / "images", coco_dir / "bad.json")[0]
    with pytest.raises(ValueError, match="annotation file not found"):
        CocoDetection(coco_dir / "images", coco_dir / "missing.json")
    with pytest.raises(ValueError, match="outside"):
        CocoDetection(coco_dir / "images", coco_dir / "ann.json", categories=[7])


# -- the bundled demo ---------------------------------------------------------------------------
def test_coins_demo_is_real_data_with_consistent_labels(tmp_path):
    from unireplknet.dense.demo import coins_instances, write_coins_demo

    image, instances = coins_instances()
    assert image.shape == (303, 384) and instances.max() == 24
    coins = instances > 0
    assert image[coins].mean() > image[~coins].mean() + 50  # coins are the bright regions
    root = write_coins_demo(tmp_path / "coins")
    train = SegmentationFolder(*segmentation_split(root, "folder", "train"), SegmentationTransform(False, None))
    val = SegmentationFolder(*segmentation_split(root, "folder", "val"), SegmentationTransform(False, None))
    assert (len(train), len(val)) == (18, 1)
    det = CocoDetection(root / "val" / "images", root / "val" / "instances.json", masks=True)
    _, target = det[0]
    assert len(target["boxes"]) == 12  # rows 3 and 4
    # the instance masks and the semantic mask describe the same pixels
    assert torch.equal(target["masks"].amax(0).long(), val[0][1])
