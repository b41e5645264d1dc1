"""``--task classify``: image classification, the project's main job.

Datasets (``data.dataset``):

* ``fashion_mnist``: the IDX files of Debian's ``dataset-fashion-mnist`` (or ``data.root``). A fixed
  random ``data.val_size`` (5,000) of the 60,000 training images are held out for validation (every
  epoch's evaluation, which picks ``best.safetensors``); training uses ``data.train_subset`` of the
  others (a fixed random subset; null: all 55,000). The end-of-run report scores all 10,000 test
  images, as does ``eval`` with ``data.eval_split=test``;
* ``folder``: ``data.root/train`` and ``data.root/val`` (ImageNet layout: one folder per class);
* any other name goes to ``timm.data.create_dataset`` (e.g. ``torch/cifar10`` with ``data.download``);
* ``auto`` (default): ``folder`` when ``data.root`` has a ``train/`` folder, else ``fashion_mnist``.

Augmentation for folders and timm datasets is timm's (``create_transform``: random resized crop,
flip, RandAugment, random erasing; ``Mixup`` for Mixup/CutMix; label-smoothing losses). Fashion-MNIST
uses a cheap tensor pipeline (pad-and-crop, flip) so CPU training is not slowed by PIL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import (
    DataConfig,
    Fraction,
    Len,
    NonNegativeFloat,
    NonNegativeInt,
    OptimConfig,
    PositiveFloat,
    PositiveInt,
    Probability,
    Range,
    RunConfig,
    TrainConfig,
    section,
)
from ..data import (
    FASHION_MNIST_CLASSES,
    FashionMNIST,
    ImageFolderDataset,
    TensorAugment,
    read_image,
)
from ..data.fashion_mnist import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from .base import register_task, require_data
from .classification import ClassificationTask, build_classifier

__all__ = ["ClassifyTask", "ClassifyConfig"]

FASHION_MNIST_DEFAULT_SUBSET = 20_000


@dataclass
class ClassifyData(DataConfig):
    dataset: str = "auto"  # auto | fashion_mnist | folder | a timm dataset name (torch/cifar10, ...)
    # train on a fixed random subset of this many images; null: all; auto: 20,000 for Fashion-MNIST (the
    # default run), all for other datasets
    train_subset: PositiveInt | Literal["auto"] | None = "auto"
    eval_subset: PositiveInt | None = None  # evaluate (and test) on a fixed random subset of this many images
    val_size: PositiveInt = 5000  # Fashion-MNIST: training images held out for validation (never trained on)
    train_split: str = "train"
    # Fashion-MNIST: val (the held-out training images) or test (the 10,000 test images, on which training's
    # final report is always scored); folder / timm datasets: the split's name
    eval_split: str = "val"
    img_size: PositiveInt | None = None  # null: 28 for Fashion-MNIST, 224 otherwise
    in_chans: Literal[1, 3] | None = None  # null: 1 for Fashion-MNIST, 3 otherwise
    mean: list[float] | None = None  # null: the dataset's (Fashion-MNIST) or ImageNet's
    std: list[PositiveFloat] | None = None
    crop_pct: Annotated[float, Range(gt=0, le=1)] = 0.875
    interpolation: Literal["bilinear", "bicubic", "nearest", "box", "hamming", "lanczos", "random"] = "bicubic"
    download: bool = False  # timm/torchvision datasets only


@dataclass
class ClassifyAug:
    pad_crop: NonNegativeInt = 2  # Fashion-MNIST: random crop after this much zero padding
    hflip: Probability = 0.5
    scale: Annotated[list[Probability], Len(2)] = field(default_factory=lambda: [0.08, 1.0])  # random resized crop
    ratio: Annotated[list[PositiveFloat], Len(2)] = field(default_factory=lambda: [0.75, 1.3333333])
    randaugment: str | None = None  # e.g. rand-m9-mstd0.5-inc1
    random_erase: Probability = 0.0
    mixup: NonNegativeFloat = 0.0  # Mixup alpha (0: off)
    cutmix: NonNegativeFloat = 0.0  # CutMix alpha (0: off)
    mixup_prob: Probability = 1.0
    mixup_switch_prob: Probability = 0.5
    label_smoothing: Fraction = 0.1


@dataclass
class ClassifyConfig(RunConfig):
    """``--task classify``. The defaults are the bundled Fashion-MNIST run, sized from a measurement to finish
    in a few minutes on 2 CPU cores (see the README); ImageNet-style runs take their recipe from configs/."""

    task: str = "classify"
    data: ClassifyData = field(default_factory=ClassifyData)
    aug: ClassifyAug = field(default_factory=ClassifyAug)
    optim: OptimConfig = section(OptimConfig, lr=2e-3, warmup_epochs=0.2)
    train: TrainConfig = section(TrainConfig, epochs=3, epoch_eval_size=2000)


def _fixed_order(length: int) -> list[int]:
    """A random order of ``range(length)`` that is the same in every run (subsets and held-out splits)."""
    return torch.randperm(length, generator=torch.Generator().manual_seed(0)).tolist()


@register_task
class ClassifyTask(ClassificationTask):
    """Image classification with a UniRepLKNet (see the module docstring for datasets)."""

    name = "classify"
    config_schema = ClassifyConfig

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.data, self.aug = cfg["data"], cfg["aug"]
        self.kind = self._dataset_kind()
        fmnist = self.kind == "fashion_mnist"
        self.img_size = int(self.data["img_size"] or (28 if fmnist else 224))
        self.in_chans = int(self.data["in_chans"] or (1 if fmnist else 3))
        default_mean, default_std = (FASHION_MNIST_MEAN, FASHION_MNIST_STD) if fmnist else self._imagenet_stats()
        self.mean = tuple(self.data["mean"] or default_mean)
        self.std = tuple(self.data["std"] or default_std)
        if len(self.mean) not in (1, self.in_chans) or len(self.std) not in (1, self.in_chans):
            raise ValueError(f"data.mean/data.std need 1 or {self.in_chans} values, got {self.mean} / {self.std}")
        if fmnist:
            self.classes = list(FASHION_MNIST_CLASSES)

    def _imagenet_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """ImageNet's per-channel statistics (averaged over the channels for grey-level input)."""
        from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

        if self.in_chans == 1:
            return (sum(IMAGENET_DEFAULT_MEAN) / 3,), (sum(IMAGENET_DEFAULT_STD) / 3,)
        return IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    def _dataset_kind(self) -> str:
        kind, root = self.data["dataset"], self.data["root"]
        if kind != "auto":
            return kind
        if root is not None and (Path(root).expanduser() / self.data["train_split"]).is_dir():
            return "folder"
        return "fashion_mnist"

    # -- data -----------------------------------------------------------------------------------
    def _mode(self) -> str:
        return "L" if self.in_chans == 1 else "RGB"

    def _pil_transform(self, train: bool) -> Callable:
        from timm.data import create_transform

        return create_transform(
            self.img_size,
            is_training=train,
            scale=tuple(self.aug["scale"]),
            ratio=tuple(self.aug["ratio"]),
            hflip=self.aug["hflip"],
            auto_augment=self.aug["randaugment"] if train else None,
            re_prob=self.aug["random_erase"] if train else 0.0,
            interpolation=self.data["interpolation"],
            mean=self.mean if len(self.mean) == self.in_chans else self.mean * self.in_chans,
            std=self.std if len(self.std) == self.in_chans else self.std * self.in_chans,
            crop_pct=self.data["crop_pct"],
        )

    def _subset_size(self, length: int, key: str) -> int | None:
        """``data[key]`` as a number of items fewer than ``length``, or None (all of them)."""
        size = self.data[key]
        if size == "auto":
            size = FASHION_MNIST_DEFAULT_SUBSET if self.kind == "fashion_mnist" else None
        return size if size is not None and size < length else None

    def _subset(self, length: int, key: str) -> list[int] | None:
        """A fixed random subset of ``range(length)`` of ``data[key]`` items, or None (all of them)."""
        size = self._subset_size(length, key)
        return None if size is None else sorted(_fixed_order(length)[:size])

    def _fashion_mnist(self) -> tuple[Dataset, Dataset]:
        root, split = self.data["root"], self.data["eval_split"]
        if split not in ("val", "test"):
            raise ValueError(f"data.eval_split must be 'val' or 'test' for Fashion-MNIST, got {split!r}")
        train = FashionMNIST(
            root, "train", size=self.img_size, augment=TensorAugment(self.aug["pad_crop"], self.aug["hflip"])
        )
        val_size = self.data["val_size"]
        if val_size >= len(train):
            raise ValueError(
                f"data.val_size must be a number of training images from 1 to {len(train) - 1}, got {val_size!r}"
            )
        order = _fixed_order(len(train))
        kept, held_out = order[: len(train) - val_size], order[len(train) - val_size :]
        train.indices = sorted(kept[: self._subset_size(len(kept), "train_subset")])
        if split == "val":
            return train, self._fashion_mnist_eval("train", sorted(held_out))
        return train, self._fashion_mnist_eval("test")

    def _fashion_mnist_eval(self, split: str, indices: list[int] | None = None) -> FashionMNIST:
        """Un-augmented Fashion-MNIST images (``indices`` of ``split``), cut to ``data.eval_subset``."""
        dataset = FashionMNIST(self.data["root"], split, indices=indices, size=self.img_size)
        subset = self._subset(len(dataset), "eval_subset")
        if subset is not None:
            dataset.indices = [dataset.indices[i] for i in subset]
        return dataset

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        if self.kind == "fashion_mnist":
            return self._fashion_mnist()
        if self.kind == "folder":
            require_data(self.data, "root", what="a folder with train/ and val/ subfolders")
            root = Path(self.data["root"]).expanduser()
            splits = [root / self.data["train_split"], root / self.data["eval_split"]]
            for split in splits:
                if not split.is_dir():
                    raise FileNotFoundError(f"image folder not found: {split} (expected {root}/train and {root}/val)")
            train = ImageFolderDataset(splits[0], self._pil_transform(True), mode=self._mode())
            evaluation = ImageFolderDataset(
                splits[1], self._pil_transform(False), classes=train.classes, mode=self._mode()
            )
        else:
            train, evaluation = (
                self._timm_dataset(split, is_train)
                for split, is_train in ((self.data["train_split"], True), (self.data["eval_split"], False))
            )
        self.set_classes(list(train.classes) if hasattr(train, "classes") else self._count_classes(train))
        for key in ("train_subset", "eval_subset"):
            indices = self._subset(len(train if key == "train_subset" else evaluation), key)
            if indices is not None and key == "train_subset":
                train = torch.utils.data.Subset(train, indices)
            elif indices is not None:
                evaluation = torch.utils.data.Subset(evaluation, indices)
        return train, evaluation

    def build_eval_dataset(self) -> Dataset:
        """An image folder's evaluation split alone, with the checkpoint's class list (an ImageNet-sized training
        folder is not scanned); other datasets as :meth:`build_datasets`."""
        if self.kind != "folder" or not self.classes:
            return super().build_eval_dataset()
        require_data(self.data, "root", what="a folder with train/ and val/ subfolders")
        split = Path(self.data["root"]).expanduser() / self.data["eval_split"]
        if not split.is_dir():
            raise FileNotFoundError(f"image folder not found: {split}")
        evaluation = ImageFolderDataset(split, self._pil_transform(False), classes=self.classes, mode=self._mode())
        indices = self._subset(len(evaluation), "eval_subset")
        return evaluation if indices is None else torch.utils.data.Subset(evaluation, indices)

    def build_test_dataset(self) -> Dataset | None:
        """Fashion-MNIST's 10,000 test images while training validates on held-out training images."""
        if self.kind != "fashion_mnist" or self.data["eval_split"] == "test":
            return None
        return self._fashion_mnist_eval("test")

    def _timm_dataset(self, split: str, train: bool) -> Dataset:
        from timm.data import create_dataset

        try:
            dataset = create_dataset(
                self.kind, root=self.data["root"], split=split, is_training=train, download=self.data["download"]
            )
        except (RuntimeError, AssertionError, ValueError, FileNotFoundError) as e:
            raise ValueError(f"cannot open dataset {self.kind!r} ({split}) at {self.data['root']}: {e}") from None
        dataset.transform = self._pil_transform(train)
        return dataset

    @staticmethod
    def _count_classes(dataset: Dataset) -> list[str]:
        targets = getattr(dataset, "targets", None)
        if targets is None:
            raise ValueError("cannot find the number of classes of this dataset; it has no `classes` or `targets`")
        return [str(i) for i in range(int(max(targets)) + 1)]

    def batch_transform(self) -> Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]] | None:
        if not (self.aug["mixup"] or self.aug["cutmix"]):
            return None
        from timm.data import Mixup

        return Mixup(
            mixup_alpha=self.aug["mixup"],
            cutmix_alpha=self.aug["cutmix"],
            prob=self.aug["mixup_prob"],
            switch_prob=self.aug["mixup_switch_prob"],
            label_smoothing=self.aug["label_smoothing"],
            num_classes=self.num_classes,
        )

    # -- model ----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return build_classifier(self.cfg, self.num_classes, self.in_chans)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "img_size": self.img_size,
            "in_chans": self.in_chans,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.img_size, self.in_chans = int(state["img_size"]), int(state["in_chans"])
        self.mean, self.std = tuple(state["mean"]), tuple(state["std"])

    # -- outputs --------------------------------------------------------------------------------
    def preprocess(self, path: str | Path) -> torch.Tensor:
        """One image file -> the model's input ``(in_chans, img_size, img_size)``."""
        image = read_image(path, self._mode())
        if self.kind == "fashion_mnist":
            import torchvision.transforms.functional as TF

            x = TF.to_tensor(TF.resize(image, [self.img_size, self.img_size], antialias=True))
            return TF.normalize(
                x, self.mean * (self.in_chans // len(self.mean)), self.std * (self.in_chans // len(self.std))
            )
        return self._pil_transform(False)(image)

    def predict_input(self, path: Path) -> tuple[torch.Tensor, None]:
        """One image as a batch ``(1, in_chans, img_size, img_size)``."""
        return self.preprocess(path)[None], None
