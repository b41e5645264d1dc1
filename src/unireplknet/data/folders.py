"""ImageNet-style class folders: ``ROOT/<split>/<class>/<image>``, checked up front, errors naming files;
image files read and written."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["IMAGE_EXTENSIONS", "scan_class_folders", "read_image", "save_png", "ImageFolderDataset"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def scan_class_folders(
    root: str | os.PathLike, classes: Sequence[str] | None = None
) -> tuple[list[tuple[Path, int]], list[str]]:
    """``([(image path, class index)], class names)`` for one folder per class under ``root``.

    ``classes`` (e.g. the training split's) fixes the class order; otherwise folders sort by name.
    Raises ValueError for a missing folder, no class folders, an empty class or unknown classes.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise ValueError(f"{root} has no class folders; expected {root}/<class name>/<image files>")
    if classes is not None:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise ValueError(f"{root} has classes the training split lacks: {', '.join(unknown[:5])}")
    names = list(classes) if classes is not None else found
    items: list[tuple[Path, int]] = []
    for index, name in enumerate(names):
        folder = root / name
        files = sorted(p for p in folder.rglob("*") if p.is_file() and _is_image(p)) if folder.is_dir() else []
        if folder.is_dir() and not files:
            raise ValueError(f"class folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS[:4])}, ...)")
        items.extend((path, index) for path in files)
    return items, names


def read_image(path: str | os.PathLike, mode: str = "RGB") -> Any:
    """Open an image as a PIL image in ``mode``; ValueError naming the file if it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from None


def save_png(image: torch.Tensor, path: Path) -> Path:
    """Write a ``(C, H, W)`` float image in ``[0, 1]`` (C = 1 or 3) as a PNG, creating its folder."""
    from torchvision.utils import save_image

    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image, path)
    return path


class ImageFolderDataset(Dataset):
    """Items ``(transform(image), class index)`` of a class-folder tree (see :func:`scan_class_folders`)."""

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable[[Any], Any] | None = None,
        classes: Sequence[str] | None = None,
        mode: str = "RGB",
    ) -> None:
        self.samples, self.classes = scan_class_folders(root, classes)
        self.transform, self.mode = transform, mode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        path, label = self.samples[i]
        image = read_image(path, self.mode)
        return (self.transform(image) if self.transform is not None else image), label
