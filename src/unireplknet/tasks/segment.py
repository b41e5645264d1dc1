"""``--task segment``: semantic segmentation with a UniRepLKNet encoder and an smp head (UperNet default).

Model (``model`` section): ``name`` (backbone variant), ``head`` (``upernet`` | ``fpn`` |
``deeplabv3plus``), ``head_kwargs`` (smp keywords, e.g. ``decoder_channels``), ``checkpoint``
(backbone weights: ImageNet classification or the authors' MMSeg/MMDet file), ``inference``
(``whole`` | ``slide``) with ``crop_size`` / ``crop_stride`` for sliding windows, and the usual
backbone options (``drop_path_rate``, ...). Layer-wise lr decay (``optim.layer_decay``, 0.9 by
default as in the paper's UperNet recipe) decays the backbone's stem and blocks; the head trains at
the full rate.

Datasets (``data.dataset``): ``ade20k`` (``data.root`` = ADEChallengeData2016, 150 classes, label 0
ignored), ``folder`` (``data.root/{train,val}/{images,masks}``, ``data.num_classes`` classes), and
``coins_demo``: the bundled real photograph (scikit-image's ``coins``) with derived masks, written to
``data.demo_dir`` (default: the cache folder) on first use; see :mod:`unireplknet.dense.demo`.
Training rescales by a random factor in ``aug.ratio_range``, crops ``aug.crop_size`` and flips with
probability ``aug.hflip``.

Evaluation: mIoU, mAcc and aAcc (pixel accuracy), percent, scored at the labels' file resolution;
images are rescaled to a shorter side of ``data.eval_scale`` (null: as stored) and the logits resized
back, as MMSeg does.
``predict`` writes each image's predicted label map as a colour palette PNG (``predict.out_dir``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import segmentation_models_pytorch  # noqa: F401  (fail at task import with the extra's install hint)
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..config import (
    DataConfig,
    Len,
    ModelConfig,
    OptimConfig,
    PositiveFloat,
    PositiveInt,
    Probability,
    RunConfig,
    section,
)
from ..dense import datasets as D
from ..dense.metrics import SegmentationMetrics, resize_logits
from .base import BACKBONE_KWARGS, ClassListTask, Metrics, model_kwargs, register_task, require_data

__all__ = ["SegmentTask"]

ADE20K_CLASSES = 150

Size = Annotated[list[PositiveInt], Len(2)]  # (height, width)


@dataclass
class SegmentModel(ModelConfig):
    head: Literal["upernet", "fpn", "deeplabv3plus"] = "upernet"
    head_kwargs: dict[str, Any] = field(default_factory=dict)  # smp keywords, e.g. decoder_channels
    inference: Literal["whole", "slide"] = "whole"
    crop_size: Size = field(default_factory=lambda: [512, 512])  # sliding window
    crop_stride: Size = field(default_factory=lambda: [341, 341])


@dataclass
class SegmentData(DataConfig):
    dataset: Literal["ade20k", "folder", "coins_demo"] = "ade20k"
    num_classes: PositiveInt | None = None  # folder datasets (ade20k: 150, coins_demo: 2)
    class_names: list[str] | None = None  # optional list of names
    reduce_zero_label: bool | None = None  # null: true for ade20k (label 0 = other), false otherwise
    ignore_index: int = 255
    scale: PositiveInt = 512  # training: shorter side before random rescaling by aug.ratio_range
    eval_scale: PositiveInt | None = 512  # evaluation / prediction shorter side (null: as stored)
    demo_dir: str | None = None  # coins_demo: where it is written on first use (null: the cache folder)
    batch_size: PositiveInt = 8
    eval_batch_size: PositiveInt = 1


@dataclass
class SegmentAug:
    ratio_range: Annotated[list[PositiveFloat], Len(2)] = field(default_factory=lambda: [0.5, 2.0])
    crop_size: Size = field(default_factory=lambda: [512, 512])  # random crop after rescaling
    hflip: Probability = 0.5


@dataclass
class SegmentPredict:
    out_dir: str = "predictions"  # colour label maps are written here


@dataclass
class SegmentConfig(RunConfig):
    task: str = "segment"
    model: SegmentModel = field(default_factory=SegmentModel)
    data: SegmentData = field(default_factory=SegmentData)
    aug: SegmentAug = field(default_factory=SegmentAug)
    optim: OptimConfig = section(OptimConfig, lr=1e-4, weight_decay=0.05, layer_decay=0.9, warmup_epochs=1.0)
    predict: SegmentPredict = field(default_factory=SegmentPredict)


@register_task
class SegmentTask(ClassListTask):
    """Semantic segmentation (see the module docstring)."""

    name = "segment"
    primary_metric = "mIoU"
    config_schema = SegmentConfig

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.data = cfg["data"]

    # -- data -----------------------------------------------------------------------------------
    def _root(self) -> Path:
        d = self.data
        if d["dataset"] == "coins_demo":
            from ..dense.demo import write_coins_demo

            self.bundled_dataset()
            return write_coins_demo(d["demo_dir"])
        require_data(d, "root", what="the dataset folder")
        return Path(d["root"]).expanduser()

    def _class_names(self) -> list[str]:
        d = self.data
        if d["dataset"] == "coins_demo":
            from ..dense.demo import COINS_CLASSES

            return list(COINS_CLASSES)
        count = ADE20K_CLASSES if d["dataset"] == "ade20k" else d["num_classes"]
        if d["class_names"]:
            if count is not None and len(d["class_names"]) != count:
                raise ValueError(f"data.class_names has {len(d['class_names'])} names for {count} classes")
            return list(d["class_names"])
        if not count or count < 1:
            raise ValueError("data.dataset=folder needs data.num_classes (the number of classes in the masks)")
        return [f"class_{i}" for i in range(count)]

    def _transform(self, train: bool) -> D.SegmentationTransform:
        d, aug = self.data, self.cfg["aug"]
        return D.SegmentationTransform(
            train=train,
            scale=d["scale"] if train else d["eval_scale"],
            crop_size=aug["crop_size"],
            ratio_range=aug["ratio_range"],
            flip=aug["hflip"],
            ignore_index=d["ignore_index"],
        )

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        d = self.data
        root = self._root()
        layout = "ade20k" if d["dataset"] == "ade20k" else "folder"
        reduce_zero = d["reduce_zero_label"] if d["reduce_zero_label"] is not None else layout == "ade20k"
        train, val = (
            D.SegmentationFolder(
                *D.segmentation_split(root, layout, split),
                self._transform(split == "train"),
                reduce_zero_label=reduce_zero,
                ignore_index=d["ignore_index"],
            )
            for split in ("train", "val")
        )
        self.set_classes(self._class_names())
        return train, val

    def collate_fn(self, train: bool) -> Callable | None:
        return functools.partial(D.collate_segmentation, ignore_index=self.data["ignore_index"])  # picklable

    # -- model ----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        from ..dense.segmentation import create_segmenter

        m = self.cfg["model"]
        return create_segmenter(
            m["name"],
            num_classes=self.num_classes,
            head=m["head"],
            checkpoint=m["checkpoint"],
            checkpoint_skip=m["checkpoint_skip"],
            inference=m["inference"],
            crop_size=m["crop_size"],
            crop_stride=m["crop_stride"],
            head_kwargs=m["head_kwargs"],
            **model_kwargs(m, BACKBONE_KWARGS),
        )

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, train: bool) -> torch.Tensor:
        logits = resize_logits(outputs.float(), targets.shape[-2:])  # evaluation scores at label resolution
        return F.cross_entropy(logits, targets, ignore_index=self.data["ignore_index"])

    def new_metrics(self) -> Metrics:
        return SegmentationMetrics(self.num_classes, self.data["ignore_index"])

    def train_metrics(self) -> Metrics | None:
        return self.new_metrics()

    # -- outputs --------------------------------------------------------------------------------
    def predict_input(self, path: Path) -> tuple[torch.Tensor, torch.Size]:
        """One image, transformed as in evaluation, as a batch ``(1, 3, H, W)``; the context is its own size."""
        image = D.read_image(path)
        x, _ = self._transform(train=False)(image, torch.zeros(image.shape[-2:], dtype=torch.int64))
        return x[None], image.shape[-2:]

    def predict_output(
        self, path: Path, outputs: torch.Tensor, *, inputs: Any, context: torch.Size, model: nn.Module, top_k: int
    ) -> dict[str, Any]:
        """The colour label-map PNG (at the image's size) and the ``top_k`` classes by area."""
        from ..dense.visualize import save_label_png

        logits = F.interpolate(outputs.float(), size=context, mode="bilinear", align_corners=False)
        labels = logits.argmax(1)[0].cpu()
        png = save_label_png(labels, len(self.classes), Path(self.cfg["predict"]["out_dir"]) / f"{path.stem}_mask.png")
        area = torch.bincount(labels.flatten(), minlength=len(self.classes)).double() / labels.numel()
        values, indices = area.topk(min(top_k, len(self.classes)))
        top = [
            {"class": self.classes[i], "index": int(i), "area": round(float(a), 6)}
            for a, i in zip(values.tolist(), indices.tolist(), strict=True)
            if a > 0
        ]
        return {"mask_png": str(png), "size": list(labels.shape), "classes": top}
