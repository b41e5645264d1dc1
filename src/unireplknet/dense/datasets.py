"""Datasets for dense prediction: semantic-segmentation folders and COCO-format detection.

Segmentation layouts (image and mask files pair up by file name without extension):

* ``ade20k``: ``ROOT/images/{training,validation}/*.jpg`` and ``ROOT/annotations/{training,validation}/*.png``
  (ADEChallengeData2016). Label 0 is "other" and is ignored; 1..150 become classes 0..149
  (``reduce_zero_label``, as MMSeg does for ADE20K).
* ``folder``: ``ROOT/{train,val}/images/*`` and ``ROOT/{train,val}/masks/*.png``; mask pixel = class id,
  255 = ignore. Masks are single-channel or palette PNGs (palette index = class id).

Detection reads COCO-format JSON (``images``, ``annotations`` with ``bbox`` xywh and optional
``segmentation`` polygons/RLE, ``categories``) with pycocotools; category ids become labels 1..K in
sorted id order (0 is torchvision's background).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import Dataset

from ..data.folders import IMAGE_EXTENSIONS
from ..data.folders import read_image as read_pil_image

__all__ = [
    "read_image",
    "read_mask",
    "segmentation_split",
    "SegmentationFolder",
    "SegmentationTransform",
    "collate_segmentation",
    "CocoDetection",
    "collate_detection",
]

_LAYOUTS = {
    "ade20k": {
        "train": ("images/training", "annotations/training"),
        "val": ("images/validation", "annotations/validation"),
    },
    "folder": {"train": ("train/images", "train/masks"), "val": ("val/images", "val/masks")},
}


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as ``(3, H, W)`` float in [0, 1] (grey and RGBA converted to RGB)."""
    array = np.asarray(read_pil_image(path, "RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)


def read_mask(path: str | Path) -> torch.Tensor:
    """A label map ``(H, W)`` int64 from a single-channel or palette PNG (palette index = class id)."""
    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(
                    f"mask {path} is {img.mode}; masks must hold class ids in a single-channel or palette PNG"
                )
            array = np.asarray(img).astype(np.int64)
    except OSError as e:
        raise ValueError(f"cannot read mask {path}: {e}") from None
    return torch.from_numpy(array)


def segmentation_split(root: str | Path, layout: str, split: str) -> tuple[Path, Path]:
    """``(images folder, masks folder)`` of ``split`` (``train``/``val``) in a dataset ``layout``."""
    if layout not in _LAYOUTS:
        raise ValueError(f"unknown segmentation layout {layout!r}; choose one of {', '.join(_LAYOUTS)}")
    images, masks = _LAYOUTS[layout][split]
    return Path(root) / images, Path(root) / masks


class SegmentationTransform:
    """Image ``(3, H, W)`` in [0, 1] and labels ``(H, W)`` -> normalised image and labels.

    Training (MMSeg's recipe, minus photometric distortion): rescale so the shorter side is
    ``scale * r`` with ``r`` uniform in ``ratio_range``, random ``crop_size`` crop (padded with 0 /
    ``ignore_index`` when the image is smaller), horizontal flip with probability ``flip``.
    Evaluation: rescale the image's shorter side to ``scale`` (no rescaling when ``scale`` is None)
    and keep the labels at file resolution: predictions are scored there, as MMSeg does.
    """

    def __init__(
        self,
        train: bool,
        scale: int | None = 512,
        crop_size: Sequence[int] = (512, 512),
        ratio_range: Sequence[float] = (0.5, 2.0),
        flip: float = 0.5,
        ignore_index: int = 255,
        mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        std: Sequence[float] = IMAGENET_DEFAULT_STD,
    ) -> None:
        if train and scale is None:
            raise ValueError("training needs a scale (the shorter side before random rescaling)")
        self.train, self.scale, self.crop_size = train, scale, tuple(crop_size)
        self.ratio_range, self.flip, self.ignore_index = tuple(ratio_range), flip, ignore_index
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    @staticmethod
    def resize(image: torch.Tensor, mask: torch.Tensor, short_side: float) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = image.shape[-2:]
        factor = short_side / min(h, w)
        size = (max(round(h * factor), 1), max(round(w * factor), 1))
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=factor < 1)[0]
        mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()
        return image, mask

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.shape[-2:] != mask.shape:
            raise ValueError(f"image size {tuple(image.shape[-2:])} differs from mask size {tuple(mask.shape)}")
        image = (image - self.mean) / self.std  # first, so that padding is 0 after normalisation (as MMSeg)
        if self.train:
            image, mask = self.resize(image, mask, self.scale * random.uniform(*self.ratio_range))
            ch, cw = self.crop_size
            h, w = mask.shape
            pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
            if pad_h or pad_w:
                image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
                mask = F.pad(mask, (0, pad_w, 0, pad_h), value=self.ignore_index)
                h, w = mask.shape
            y, x = random.randint(0, h - ch), random.randint(0, w - cw)
            image, mask = image[:, y : y + ch, x : x + cw], mask[y : y + ch, x : x + cw]
            if random.random() < self.flip:
                image, mask = image.flip(-1), mask.flip(-1)
            return image, mask
        if self.scale is not None:
            image, _ = self.resize(image, mask, self.scale)
        return image, mask


class SegmentationFolder(Dataset):
    """Pairs of images and label maps from two folders, matched by file name without extension.

    Items: ``(image (3, H, W) float normalised, labels (H, W) int64)`` after ``transform``; labels are
    class ids 0..K-1 or ``ignore_index``.

    Args:
        images_dir, masks_dir: the two folders.
        transform: a :class:`SegmentationTransform` (or any ``(image, mask) -> (image, mask)``).
        reduce_zero_label: label 0 means "unlabelled": it becomes ``ignore_index``, others shift down by 1.
        ignore_index: label value excluded from loss and metrics.
    """

    def __init__(
        self,
        images_dir: str | Path,
        masks_dir: str | Path,
        transform: Any,
        reduce_zero_label: bool = False,
        ignore_index: int = 255,
    ) -> None:
        images_dir, masks_dir = Path(images_dir), Path(masks_dir)
        for folder in (images_dir, masks_dir):
            if not folder.is_dir():
                raise ValueError(f"dataset folder not found: {folder}")
        masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() == ".png"}
        images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        self.samples = [(p, masks[p.stem]) for p in images if p.stem in masks]
        if not self.samples:
            raise ValueError(f"no image in {images_dir} has a mask of the same name (.png) in {masks_dir}")
        unmatched = len(images) - len(self.samples)
        if unmatched:
            raise ValueError(f"{unmatched} image(s) in {images_dir} have no mask in {masks_dir}")
        self.transform = transform
        self.reduce_zero_label = reduce_zero_label
        self.ignore_index = ignore_index

    def __len__(self) -> int:
        return len(self.samples)

    def labels(self, index: int) -> torch.Tensor:
        """The label map of sample ``index`` at file resolution (after ``reduce_zero_label``)."""
        mask = read_mask(self.samples[index][1])
        if self.reduce_zero_label:
            mask = torch.where(mask == 0, self.ignore_index, mask - 1)
        return mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(read_image(self.samples[index][0]), self.labels(index))


def collate_segmentation(batch: list[tuple[torch.Tensor, torch.Tensor]], ignore_index: int = 255):
    """Stack samples of different sizes: images padded with 0, labels with ``ignore_index``.

    Returns ``(images (N, 3, H, W), labels (N, H', W'))`` with the batch's largest sizes. Labels kept
    at file resolution (evaluation with rescaling) must share one size per batch, since logits are
    resized to the labels' size.
    """
    rescaled = any(img.shape[-2:] != mask.shape for img, mask in batch)
    if rescaled and len({mask.shape for _, mask in batch}) > 1:
        raise ValueError(
            "evaluation rescales images of different sizes in one batch; set data.eval_batch_size=1 "
            "(or data.eval_scale=null)"
        )
    h = max(img.shape[-2] for img, _ in batch)
    w = max(img.shape[-1] for img, _ in batch)
    images = torch.zeros(len(batch), batch[0][0].shape[0], h, w)
    lh, lw = (max(mask.shape[-2] for _, mask in batch), max(mask.shape[-1] for _, mask in batch))
    labels = torch.full((len(batch), lh, lw), ignore_index, dtype=torch.int64)
    for i, (img, mask) in enumerate(batch):
        images[i, :, : img.shape[-2], : img.shape[-1]] = img
        labels[i, : mask.shape[-2], : mask.shape[-1]] = mask
    return images, labels


class CocoDetection(Dataset):
    """COCO-format detection / instance segmentation for torchvision detectors.

    Items: ``(image (3, H, W) float in [0, 1], target)``; ``target`` has ``boxes`` ``(G, 4)`` xyxy
    float, ``labels`` ``(G,)`` in 1..K, ``image_id``, ``area``, ``iscrowd`` and, with ``masks=True``,
    ``masks`` ``(G, H, W)`` uint8. Training drops crowd regions and boxes under one pixel wide;
    evaluation keeps crowd regions (COCO's evaluation ignores detections matched to them).

    Args:
        images_dir: folder of the files named in the JSON's ``images[*].file_name``.
        annotation_file: the COCO-format JSON.
        masks: load instance masks (for Mask R-CNN).
        train: training split (drop crowds, random horizontal flip with probability ``flip``).
        categories: category ids defining labels 1..K (default: all ids in the file, sorted), so that
            a validation file maps ids as its training file does.
    """

    def __init__(
        self,
        images_dir: str | Path,
        annotation_file: str | Path,
        masks: bool = True,
        train: bool = False,
        flip: float = 0.5,
        categories: Sequence[int] | None = None,
    ) -> None:
        import contextlib
        import io

        from pycocotools.coco import COCO

        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise ValueError(f"images folder not found: {self.images_dir}")
        annotation_file = Path(annotation_file)
        if not annotation_file.is_file():
            raise ValueError(f"COCO annotation file not found: {annotation_file}")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
                self.coco = COCO(str(annotation_file))
        except (ValueError, KeyError, TypeError, AssertionError) as e:
            raise ValueError(f"{annotation_file} is not COCO-format JSON ({type(e).__name__}: {e})") from None
        file_categories = sorted(self.coco.getCatIds())
        self.category_ids = list(categories) if categories is not None else file_categories
        unknown = set(file_categories) - set(self.category_ids)
        if unknown:
            raise ValueError(f"{annotation_file} has category ids {sorted(unknown)} outside {self.category_ids}")
        self.label_of = {cat: i + 1 for i, cat in enumerate(self.category_ids)}
        self.class_names = [self.coco.cats[c]["name"] if c in self.coco.cats else str(c) for c in self.category_ids]
        self.ids = sorted(self.coco.getImgIds())
        if not self.ids:
            raise ValueError(f"{annotation_file} lists no images")
        self.masks, self.train, self.flip = masks, train, flip

    def __len__(self) -> int:
        return len(self.ids)

    def _mask(self, annotation: dict, file_name: str) -> torch.Tensor:
        try:
            return torch.from_numpy(self.coco.annToMask(annotation))
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise ValueError(f"annotation {annotation.get('id')} of {file_name}: {e}") from None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image_id = self.ids[index]
        info = self.coco.imgs[image_id]
        image = read_image(self.images_dir / info["file_name"])
        h, w = image.shape[-2:]
        anns = [a for a in self.coco.imgToAnns[image_id] if not (self.train and a.get("iscrowd", 0))]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        anns = [a for a, k in zip(anns, keep.tolist(), strict=True) if k]
        target = {
            "boxes": boxes[keep],
            "labels": torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.int64),
            "image_id": torch.tensor(image_id),
            "area": torch.tensor([float(a.get("area", 0.0)) for a in anns], dtype=torch.float32),
            "iscrowd": torch.tensor([int(a.get("iscrowd", 0)) for a in anns], dtype=torch.int64),
        }
        if self.masks:
            masks = [self._mask(a, info["file_name"]) for a in anns]
            for a, m in zip(anns, masks, strict=True):
                if m.shape != (h, w):
                    raise ValueError(
                        f"annotation {a['id']} has a {m.shape[0]}x{m.shape[1]} mask for the {h}x{w} image "
                        f"{info['file_name']}: fix its segmentation size or the image"
                    )
            target["masks"] = torch.stack(masks) if masks else torch.zeros(0, h, w, dtype=torch.uint8)
        if self.train and random.random() < self.flip:
            image = image.flip(-1)
            target["boxes"] = torch.stack(
                [w - target["boxes"][:, 2], target["boxes"][:, 1], w - target["boxes"][:, 0], target["boxes"][:, 3]], 1
            )
            if self.masks:
                target["masks"] = target["masks"].flip(-1)
        return image, target


def collate_detection(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Keep a detection batch as lists: images of different sizes and per-image targets."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)
