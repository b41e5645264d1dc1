"""``--task detect`` end to end on generated images and COCO JSON: train, evaluate, predict, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from unireplknet.cli import app
from unireplknet.config import resolve_config
from unireplknet.engine import train
from unireplknet.tasks import get_task

TINY_MODEL = {
    "name": "unireplknet_a",
    "depths": [1, 1, 1, 1],
    "dims": [8, 16, 32, 64],
    "kernel_sizes": [[3], [7], [7], [3]],
    "fpn_channels": 32,
    "min_size": 64,
    "max_size": 64,
    "box_head_dim": 32,
    "mask_head_channels": 8,
    "detector_kwargs": {
        "rpn_pre_nms_top_n_train": 100, "rpn_post_nms_top_n_train": 30, "rpn_pre_nms_top_n_test": 50,
        "rpn_post_nms_top_n_test": 20, "box_batch_size_per_image": 32, "box_detections_per_img": 10,
    },
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """Two splits of 64 x 64 images, each with a bright square ("box", id 5) and a grey disc ("disc", id 9)."""
    root = tmp_path_factory.mktemp("coco")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    for split, count in (("train", 4), ("val", 2)):
        (root / split).mkdir()
        images, annotations = [], []
        for i in range(count):
            image = np.full((64, 64, 3), 20, dtype=np.uint8)
            y, x = rng.integers(2, 24, 2)
            square = (yy >= y) & (yy < y + 16) & (xx >= x) & (xx < x + 16)
            cy, cx = rng.integers(44, 54, 2)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 64
            image[square], image[disc] = 230, 130
            Image.fromarray(image).save(root / split / f"{i}.png")
            images.append({"id": i + 1, "file_name": f"{i}.png", "height": 64, "width": 64})
            for category, mask in ((5, square), (9, disc)):
                ys, xs = np.nonzero(mask)
                x0, y0 = int(xs.min()), int(ys.min())
                w, h = int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0
                polygon = [x0, y0, x0 + w, y0, x0 + w, y0 + h, x0, y0 + h]  # the box outline (the disc's is coarse)
                annotations.append(
                    {"id": len(annotations) + 1, "image_id": i + 1, "category_id": category, "bbox": [x0, y0, w, h],
                     "area": int(mask.sum()), "iscrowd": 0, "segmentation": [polygon]}
                )  # fmt: skip
        categories = [{"id": 5, "name": "box"}, {"id": 9, "name": "disc"}]
        (root / f"{split}.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories})
        )
    return root


def _cfg(coco, tmp_path, arch="mask_rcnn"):
    overrides = {
        "model": {**TINY_MODEL, "arch": arch},
        "data": {
            "dataset": "coco", "root": str(coco), "train_images": "train", "train_annotations": "train.json",
            "val_images": "val", "val_annotations": "val.json", "batch_size": 2, "eval_batch_size": 2,
        },
        "optim": {"lr": 1e-3, "warmup_epochs": 0, "layer_decay": 0.9},
        "train": {"epochs": 1, "device": "cpu", "threads": 1},
        "output": {"dir": str(tmp_path), "name": "run"},
        "predict": {"out_dir": str(tmp_path / "pred"), "score_threshold": 0.0},
    }  # fmt: skip
    return resolve_config(get_task("detect").config_schema, {"task": "detect"}, overrides)


def test_loss_decreases_over_a_few_steps(coco, tmp_path, assert_loss_decreases):
    task = get_task("detect")(_cfg(coco, tmp_path, arch="fcos"))
    train_set, _ = task.build_datasets()
    train_set.flip = 0.0
    inputs, targets = task.collate_fn(True)([train_set[i] for i in range(4)])
    assert_loss_decreases(task, inputs, targets)


def test_train_eval_predict_end_to_end(coco, tmp_path):
    summary = train(_cfg(coco, tmp_path))
    run = tmp_path / "run"
    assert {"AP", "AP50", "mask_AP"} <= set(summary["eval"]) and "loss" not in summary["eval"]
    assert summary["deploy_max_abs_diff"] < 1e-4  # backbone + FPN features, trained vs re-parameterized

    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(run / "deploy.safetensors"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["AP"] == pytest.approx(summary["deploy_eval"]["AP"], abs=1e-6)

    result = runner.invoke(app, ["reparam", str(run / "last.safetensors"), str(tmp_path / "deployed.safetensors")])
    assert result.exit_code == 0 and "max |train - deploy|" in result.output, result.output

    result = runner.invoke(app, ["predict", str(run / "last.safetensors"), str(coco / "val" / "0.png"), "--json"])
    assert result.exit_code == 0, result.output
    (prediction,) = json.loads(result.output)
    assert prediction["detections_png"] == str(tmp_path / "pred" / "0_detections.png")
    with Image.open(prediction["detections_png"]) as drawn:
        assert drawn.size == (64, 64)
    for found in prediction["objects"]:  # score_threshold 0: whatever the barely trained model found
        assert (found["class"], found["category_id"]) in {("box", 5), ("disc", 9)} and len(found["box"]) == 4


def test_bad_configs_name_the_fix(coco, tmp_path):
    cfg = _cfg(coco, tmp_path)
    cfg["data"]["train_annotations"] = "missing.json"
    with pytest.raises(ValueError, match="annotation file not found"):
        get_task("detect")(cfg).build_datasets()
    result = CliRunner().invoke(app, ["train", "--task", "detect", "--set", "data.dataset=voc"])
    assert result.exit_code == 2 and "'data.dataset' must be one of 'coco', 'coins_demo', got 'voc'" in result.output
    with pytest.raises(ValueError, match="class list is unknown"):
        get_task("detect")(cfg).build_model()
