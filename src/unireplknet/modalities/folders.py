"""Labelled files in a "folder per class" layout, for the modalities that read such trees (video, points)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["scan_class_folders", "class_names"]


def scan_class_folders(root: str | os.PathLike, extensions: Sequence[str]) -> list[tuple[Path, str]]:
    """``(file, label)`` pairs for a "folder per class" layout: ``root/<label>/<file>``, files sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"dataset folder {os.fspath(root)!r} does not exist")
    items = [
        (p, d.name)
        for d in sorted(root.iterdir())
        if d.is_dir()
        for p in sorted(d.rglob("*"))
        if p.suffix.lower() in extensions and p.is_file()
    ]
    if not items:
        raise ValueError(f"no files ending in {', '.join(extensions)} under class folders of {os.fspath(root)!r}")
    return items


def class_names(labels: Sequence[str]) -> list[str]:
    """Sorted distinct labels (numerically when every label is an integer)."""
    distinct = set(labels)
    if all(s.lstrip("-").isdigit() for s in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)
