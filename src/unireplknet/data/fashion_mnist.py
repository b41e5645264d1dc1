"""Fashion-MNIST from its original IDX files (as Debian's ``dataset-fashion-mnist`` installs them).

The four files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (optionally ``.gz``) hold 60,000
training and 10,000 test images of 28 x 28 grey levels in 10 classes. They are read whole into
uint8 tensors (55 MB); augmentation runs on tensors, which is far cheaper than PIL for such images.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .sources import FASHION_MNIST_DIRS

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIRS",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "find_fashion_mnist",
    "read_idx",
    "FashionMNIST",
    "TensorAugment",
]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)  # of the 60,000 training images
_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
_HOW_TO_GET = (
    "install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download the four "
    "*-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist and pass their folder with --data DIR"
)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _file(root: Path, split: str, kind: str) -> Path | None:
    stem = _FILES[(split, kind)]
    for name in (stem, f"{stem}.gz"):
        if (root / name).is_file():
            return root / name
    return None


def find_fashion_mnist(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the four IDX files: ``root`` if given, else the first of FASHION_MNIST_DIRS."""
    candidates = [Path(root).expanduser()] if root is not None else list(FASHION_MNIST_DIRS)
    for folder in candidates:
        if all(_file(folder, split, kind) for split, kind in _FILES):
            return folder
    if root is not None:
        missing = [stem for (split, kind), stem in _FILES.items() if not _file(Path(root).expanduser(), split, kind)]
        where = (
            f"{root} (missing {', '.join(missing)})" if Path(root).expanduser().is_dir() else f"{root} (no such folder)"
        )
        raise FileNotFoundError(f"Fashion-MNIST not found in {where}; {_HOW_TO_GET}")
    raise FileNotFoundError(f"Fashion-MNIST not found in {', '.join(map(str, candidates))}; {_HOW_TO_GET}")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip): magic ``00 00 <dtype> <ndim>``, big-endian int32 sizes, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(f"{path} is truncated or corrupt: {len(raw) - offset} data bytes, expected {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


@functools.lru_cache(maxsize=4)
def _read_split(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, 28, 28), int64 labels (N,)), read once per process (decompressing takes a second)."""
    images = read_idx(_file(folder, split, "images"))
    labels = read_idx(_file(folder, split, "labels"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


class TensorAugment:
    """Random crop after zero padding, and horizontal flip, on one ``(C, H, W)`` tensor (global torch RNG)."""

    def __init__(self, pad: int = 2, hflip: float = 0.5) -> None:
        self.pad, self.hflip = pad, hflip

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.pad:
            h, w = image.shape[-2:]
            padded = F.pad(image, (self.pad,) * 4)
            top, left = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
            image = padded[..., top : top + h, left : left + w]
        if self.hflip and torch.rand(()).item() < self.hflip:
            image = image.flip(-1)
        return image


class FashionMNIST(Dataset):
    """Fashion-MNIST items ``(image (1, size, size) normalised float, label int)``.

    Args:
        root: folder of the IDX files (default: where ``dataset-fashion-mnist`` installs them).
        split: ``train`` (60,000) or ``test`` (10,000).
        indices: optional subset of item numbers.
        size: output side length (images are resized from 28 when different).
        augment: a per-image tensor transform applied before normalisation (training).
    """

    classes = FASHION_MNIST_CLASSES

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "train",
        indices: Sequence[int] | None = None,
        size: int = 28,
        augment: TensorAugment | None = None,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
        self.images, self.labels = _read_split(find_fashion_mnist(root), split)
        self.indices = list(range(len(self.labels))) if indices is None else list(indices)
        self.size, self.augment = size, augment
        self.mean, self.std = FASHION_MNIST_MEAN[0], FASHION_MNIST_STD[0]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = self.indices[i]
        image = self.images[j].unsqueeze(0).float().div_(255)
        if self.size != image.shape[-1]:
            image = F.interpolate(image[None], size=(self.size, self.size), mode="bilinear", antialias=True)[0]
        if self.augment is not None:
            image = self.augment(image)
        return image.sub_(self.mean).div_(self.std), int(self.labels[j])
