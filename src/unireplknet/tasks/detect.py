"""``--task detect``: object detection / instance segmentation with torchvision over a UniRepLKNet FPN.

Model (``model`` section): ``name`` (backbone variant), ``arch`` (``mask_rcnn`` | ``faster_rcnn`` |
``retinanet`` | ``fcos``), ``checkpoint`` (backbone weights: ImageNet classification or the
authors' MMDet/MMSeg file), ``fpn_channels``, ``min_size`` / ``max_size`` (torchvision's resizing),
``box_head_dim`` / ``mask_head_channels`` (R-CNN head widths), ``detector_kwargs`` (any other
torchvision keyword), and the usual backbone options. ``optim.layer_decay`` decays the backbone.

Datasets (``data.dataset``): ``coco`` (COCO-format JSON: ``data.root`` with ``data.train_images`` /
``data.train_annotations`` / ``data.val_images`` / ``data.val_annotations`` inside it, COCO 2017 names
by default) and ``coins_demo``: the bundled real photograph (scikit-image's ``coins``) with derived
instance masks, written to ``data.demo_dir`` (default: the cache folder) on first use (see
:mod:`unireplknet.dense.demo`). Training flips images with probability ``aug.hflip``.

Evaluation: COCO box AP (``AP``, ``AP50``, ``AP75``, ``APs/m/l``) and, for Mask R-CNN, mask AP
(``mask_AP`` ...), percent, by pycocotools. torchvision detectors compute losses in training mode
only, so evaluation reports no loss. ``predict`` writes each image with its detections drawn
(``predict.out_dir``) and returns those above ``predict.score_threshold``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pycocotools  # noqa: F401  (fail at task import with the extra's install hint)
import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    PositiveInt,
    Probability,
    RunConfig,
    section,
)
from ..dense import datasets as D
from ..dense.metrics import DetectionMetrics
from .base import BACKBONE_KWARGS, ClassListTask, Metrics, model_kwargs, register_task, require_data

__all__ = ["DetectTask", "DetectConfig", "collate_for_engine"]


@dataclass
class DetectModel(ModelConfig):
    arch: Literal["mask_rcnn", "faster_rcnn", "retinanet", "fcos"] = "mask_rcnn"
    fpn_channels: PositiveInt = 256
    min_size: PositiveInt = 800  # torchvision's resizing
    max_size: PositiveInt = 1333
    box_head_dim: PositiveInt = 1024  # R-CNN head widths
    mask_head_channels: PositiveInt = 256
    detector_kwargs: dict[str, Any] = field(default_factory=dict)  # any other torchvision keyword


@dataclass
class DetectData(DataConfig):
    dataset: Literal["coco", "coins_demo"] = "coco"
    # coco: inside data.root
    train_images: str = "train2017"
    train_annotations: str = "annotations/instances_train2017.json"
    val_images: str = "val2017"
    val_annotations: str = "annotations/instances_val2017.json"
    demo_dir: str | None = None  # coins_demo: where it is written on first use (null: the cache folder)
    batch_size: PositiveInt = 2
    eval_batch_size: PositiveInt = 2


@dataclass
class DetectAug:
    hflip: Probability = 0.5


@dataclass
class DetectPredict:
    out_dir: str = "predictions"  # images with their detections drawn
    score_threshold: Probability = 0.5


@dataclass
class DetectConfig(RunConfig):
    task: str = "detect"
    model: DetectModel = field(default_factory=DetectModel)
    data: DetectData = field(default_factory=DetectData)
    aug: DetectAug = field(default_factory=DetectAug)
    optim: OptimConfig = section(OptimConfig, lr=1e-4, weight_decay=0.05, layer_decay=0.9, warmup_epochs=1.0)
    predict: DetectPredict = field(default_factory=DetectPredict)


def collate_for_engine(batch: list) -> tuple[tuple[list, list], list]:
    """``((images, targets), targets)``: the engine calls ``model(inputs)``, and a torchvision detector
    needs the targets there to compute its losses (see :class:`~unireplknet.dense.detection.TrainableDetector`)."""
    images, targets = D.collate_detection(batch)
    return (images, targets), targets


@register_task
class DetectTask(ClassListTask):
    """Object detection and instance segmentation (see the module docstring)."""

    name = "detect"
    primary_metric = "AP"
    config_schema = DetectConfig

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.data = cfg["data"]
        self.category_ids: list[int] = []

    @property
    def masks(self) -> bool:
        return self.cfg["model"]["arch"] == "mask_rcnn"

    # -- data -----------------------------------------------------------------------------------
    def _files(self) -> dict[str, Path]:
        d = self.data
        if d["dataset"] == "coins_demo":
            from ..dense.demo import write_coins_demo

            self.bundled_dataset()
            root = write_coins_demo(d["demo_dir"])
            names = {"train_images": "train/images", "train_annotations": "train/instances.json"}
            names |= {"val_images": "val/images", "val_annotations": "val/instances.json"}
            return {k: root / v for k, v in names.items()}
        require_data(d, "root", what="the folder with the images and annotations")
        return {k: self.data_path(k) for k in ("train_images", "train_annotations", "val_images", "val_annotations")}

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        f = self._files()
        categories = self.category_ids or None
        train = D.CocoDetection(
            f["train_images"],
            f["train_annotations"],
            self.masks,
            train=True,
            flip=self.cfg["aug"]["hflip"],
            categories=categories,
        )
        val = D.CocoDetection(f["val_images"], f["val_annotations"], self.masks, categories=train.category_ids)
        self.set_classes(train.class_names)
        self.category_ids = train.category_ids
        return train, val

    def collate_fn(self, train: bool) -> Callable | None:
        return collate_for_engine

    # -- model ----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        from ..dense.detection import TrainableDetector, create_detector

        m = self.cfg["model"]
        detector = create_detector(
            m["name"],
            num_classes=self.num_classes,
            arch=m["arch"],
            checkpoint=m["checkpoint"],
            checkpoint_skip=m["checkpoint_skip"],
            fpn_channels=m["fpn_channels"],
            min_size=m["min_size"],
            max_size=m["max_size"],
            box_head_dim=m["box_head_dim"],
            mask_head_channels=m["mask_head_channels"],
            detector_kwargs=m["detector_kwargs"],
            **model_kwargs(m, BACKBONE_KWARGS),
        )
        return TrainableDetector(detector)

    def loss(self, outputs: Any, targets: Any, train: bool) -> torch.Tensor:
        if isinstance(outputs, dict) and "detections" in outputs:
            return torch.tensor(float("nan"))  # eval mode: torchvision computes no losses
        return sum(outputs.values())

    def new_metrics(self) -> Metrics:
        return DetectionMetrics(masks=self.masks)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "category_ids": self.category_ids}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.category_ids = [int(c) for c in state["category_ids"]]

    # -- outputs --------------------------------------------------------------------------------
    def predict_input(self, path: Path) -> tuple[tuple[list[torch.Tensor], list[dict]], torch.Tensor]:
        """One image as the detector's batch ``([image (3, H, W)], [no targets])``; the context is the image."""
        image = D.read_image(path)
        return ([image], [{}]), image

    def predict_output(
        self, path: Path, outputs: Any, *, inputs: Any, context: torch.Tensor, model: nn.Module, top_k: int
    ) -> dict[str, Any]:
        """Detections above ``predict.score_threshold`` (class, COCO category id, score, box xyxy) and a PNG with
        them drawn. ``top_k`` is not used (every detection is listed)."""
        from ..dense.visualize import save_detections_png

        p = self.cfg["predict"]
        found = outputs["detections"][0]
        keep = found["scores"] >= p["score_threshold"]
        found = {k: v[keep].cpu() for k, v in found.items()}
        png = save_detections_png(context, found, self.classes, Path(p["out_dir"]) / f"{path.stem}_detections.png")
        objects = [
            {
                "class": self.classes[label - 1],
                "category_id": self.category_ids[label - 1],
                "score": round(score, 4),
                "box": [round(v, 1) for v in box],
            }
            for label, score, box in zip(
                found["labels"].tolist(), found["scores"].tolist(), found["boxes"].tolist(), strict=True
            )
        ]
        return {"detections_png": str(png), "objects": objects}
