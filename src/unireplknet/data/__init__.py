"""Image datasets for the classification task: Fashion-MNIST IDX files, class folders, timm datasets."""

from __future__ import annotations

from .fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIRS,
    FashionMNIST,
    TensorAugment,
    find_fashion_mnist,
    read_idx,
)
from .folders import ImageFolderDataset, read_image, scan_class_folders

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIRS",
    "FashionMNIST",
    "TensorAugment",
    "find_fashion_mnist",
    "read_idx",
    "ImageFolderDataset",
    "read_image",
    "scan_class_folders",
]
