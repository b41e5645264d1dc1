"""Labelled video datasets: Kinetics-style annotation files and class folders, as tiled clips."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .io import read_video
from .transforms import ClipTransform, clip_views, grid_side, sample_indices, tile_frames

__all__ = ["read_annotations", "VideoClips", "collate_views"]


def read_annotations(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """``(video path, label)`` pairs from a Kinetics-style annotation file.

    Accepted formats:

    * text, one ``relative/path label`` per line (label = last whitespace-separated token; blank lines
      and ``#`` comments are skipped);
    * CSV with a header holding ``path`` and ``label`` columns;
    * the official Kinetics CSV (``label,youtube_id,time_start,time_end,...``): the file is
      ``{youtube_id}_{time_start:06d}_{time_end:06d}.mp4``, looked up in ``root/<label>/`` then ``root/``.

    Relative paths are resolved against ``root`` (default: the annotation file's folder).
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"annotation file {os.fspath(path)!r} does not exist")
    base = Path(root) if root is not None else path.parent
    items: list[tuple[Path, str]] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields = set(reader.fieldnames or ())
            if {"path", "label"} <= fields:
                items = [(base / row["path"], row["label"]) for row in reader]
            elif {"label", "youtube_id", "time_start", "time_end"} <= fields:
                for row in reader:
                    name = (
                        f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}.mp4"
                    )
                    in_class_dir = base / row["label"] / name
                    items.append((in_class_dir if in_class_dir.exists() else base / name, row["label"]))
            else:
                raise ValueError(
                    f"{os.fspath(path)!r}: a CSV annotation file needs a header with 'path,label' or the Kinetics "
                    f"columns 'label,youtube_id,time_start,time_end'; found {sorted(fields)}"
                )
    else:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise ValueError(f"{os.fspath(path)}:{n}: expected 'relative/path label', got {line!r}")
            items.append((base / parts[0], parts[1]))
    if not items:
        raise ValueError(f"annotation file {os.fspath(path)!r} lists no videos")
    return items


class VideoClips(Dataset):
    """Labelled videos as tiled clips.

    Training items: ``(map (3, g*size, g*size), label)``, one randomly sampled and augmented clip per
    video per epoch. Evaluation items: ``(views (V, 3, g*size, g*size), (label, index))`` with
    ``V = num_clips * num_crops`` deterministic views (:func:`clip_views`); :func:`collate_views`
    flattens them into a batch and the views of a video are averaged when scoring.

    Args:
        items: ``(path, label)`` pairs (e.g. from :func:`read_annotations`).
        classes: the label vocabulary; its order fixes the class indices.
        num_frames: frames per clip ``N_F`` (a perfect square).
        size: frame crop size ``h = w``.
        stride: frame stride (None: uniform over the whole video).
        train: training (random clip and augmentation) or evaluation (fixed views).
        num_clips, num_crops: test-time views.
        augment: keyword arguments of :class:`ClipTransform` for training.
    """

    def __init__(
        self,
        items: Sequence[tuple[str | os.PathLike, str]],
        classes: Sequence[str],
        *,
        num_frames: int = 16,
        size: int = 224,
        stride: int | None = None,
        train: bool,
        num_clips: int = 1,
        num_crops: int = 1,
        augment: dict | None = None,
    ) -> None:
        grid_side(num_frames)
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({label for _, label in items} - set(index))
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not among the {len(classes)} known classes")
        missing = [os.fspath(p) for p, _ in items if not Path(p).is_file()]
        if missing:
            raise ValueError(f"{len(missing)} of {len(items)} videos are missing, e.g. {missing[0]!r}")
        self.samples = [(Path(p), index[label]) for p, label in items]
        self.classes = list(classes)
        self.num_frames, self.size, self.stride, self.train = num_frames, size, stride, train
        self.num_clips, self.num_crops = num_clips, num_crops
        self.transform = ClipTransform(size, train=True, **(augment or {})) if train else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        video, _ = read_video(path, short_side=self.size * 8 // 7)
        if self.train:
            idx = sample_indices(len(video), self.num_frames, stride=self.stride)
            return tile_frames(self.transform(video[idx])), label
        views = clip_views(
            video,
            num_frames=self.num_frames,
            size=self.size,
            stride=self.stride,
            num_clips=self.num_clips,
            num_crops=self.num_crops,
        )
        return views, (label, i)


def collate_views(batch: Sequence[tuple[torch.Tensor, tuple[int, int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluation batches of multi-view samples -> ``(B*V, C, H, W)`` maps and ``(B*V, 2)`` int64
    targets ``(label, sample index)``, so the views of one sample can be regrouped when scoring."""
    maps = torch.cat([views for views, _ in batch])
    targets = torch.tensor([target for views, target in batch for _ in range(len(views))], dtype=torch.long)
    return maps, targets
