"""Frames -> one map: sample ``N_F`` frames, tile them into a grid, augment and normalise them alike.

* :func:`sample_indices` picks ``N_F`` frames, spread uniformly over the clip or at a fixed stride;
* :func:`tile_frames` / :func:`untile_frames` go between ``(N_F, C, h, w)`` frames and the grid;
* :class:`ClipTransform` resizes/crops/augments all frames of a clip with *the same* parameters;
* :func:`clip_views` builds the multi-clip, multi-crop views used for test-time evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "grid_side",
    "sample_indices",
    "tile_frames",
    "untile_frames",
    "ClipTransform",
    "clip_views",
    "denormalize",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def grid_side(num_frames: int) -> int:
    """``sqrt(num_frames)``; raises ValueError unless ``num_frames`` is a positive perfect square."""
    side = math.isqrt(num_frames) if num_frames > 0 else 0
    if side * side != num_frames:
        raise ValueError(f"num_frames must be a perfect square (1, 4, 9, 16, 25, ...) to tile a grid, got {num_frames}")
    return side


def sample_indices(
    num_total: int,
    num_frames: int,
    *,
    stride: int | None = None,
    position: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Which ``num_frames`` frames of a ``num_total``-frame video to use, in playback order.

    Args:
        num_total: frames in the decoded video (>= 1).
        num_frames: frames wanted.
        stride: ``None`` samples uniformly over the whole video: it is cut into ``num_frames`` equal
            segments and one frame is taken from each (TSN-style). An int takes ``num_frames`` frames
            ``stride`` apart from one window of ``(num_frames - 1) * stride + 1`` frames.
        position: in ``[0, 1]``, where to sample deterministically (evaluation): the offset inside
            each segment (uniform) or the window start as a fraction of the free range (strided).
            ``None`` draws it at random from ``generator`` (training; uniform sampling then draws one
            offset per segment).

    Returns:
        ``(num_frames,)`` int64 indices in ``[0, num_total)``, non-decreasing. Videos shorter than
        the window repeat their last frame (strided) or frames (uniform).
    """
    if num_total < 1:
        raise ValueError(f"a video needs at least one frame, got {num_total}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if position is not None and not 0.0 <= position <= 1.0:
        raise ValueError(f"position must lie in [0, 1], got {position}")
    if stride is None:
        if position is None:
            offsets = torch.rand(num_frames, generator=generator, dtype=torch.float64)
        else:
            offsets = torch.full((num_frames,), min(position, 1.0 - 1e-9), dtype=torch.float64)
        positions = (torch.arange(num_frames, dtype=torch.float64) + offsets) * (num_total / num_frames)
        return positions.floor().long().clamp_(0, num_total - 1)
    if stride < 1:
        raise ValueError(f"stride must be >= 1 (or None for uniform sampling), got {stride}")
    free = max(num_total - ((num_frames - 1) * stride + 1), 0)
    start = int(torch.randint(free + 1, (1,), generator=generator)) if position is None else round(position * free)
    return (start + stride * torch.arange(num_frames)).clamp_(max=num_total - 1)


def tile_frames(frames: torch.Tensor) -> torch.Tensor:
    """Lay ``N_F`` frames out row-major in a ``sqrt(N_F) x sqrt(N_F)`` grid.

    ``(..., N_F, C, h, w) -> (..., C, sqrt(N_F) * h, sqrt(N_F) * w)``; frame ``i`` lands in grid row
    ``i // sqrt(N_F)``, column ``i % sqrt(N_F)``.
    """
    if frames.dim() < 4:
        raise ValueError(f"expected frames of shape (..., N_F, C, h, w), got {tuple(frames.shape)}")
    *lead, n, c, h, w = frames.shape
    g = grid_side(n)
    grid = frames.reshape(*lead, g, g, c, h, w).movedim(-3, -5)  # (..., C, rows, cols, h, w)
    return grid.transpose(-3, -2).reshape(*lead, c, g * h, g * w)


def untile_frames(grid: torch.Tensor, num_frames: int) -> torch.Tensor:
    """The inverse of :func:`tile_frames`: ``(..., C, g*h, g*w) -> (..., N_F, C, h, w)``."""
    g = grid_side(num_frames)
    if grid.dim() < 3 or grid.shape[-1] % g or grid.shape[-2] % g:
        raise ValueError(f"grid of shape {tuple(grid.shape)} does not split into {g} x {g} equal tiles")
    *lead, c, gh, gw = grid.shape
    h, w = gh // g, gw // g
    tiles = grid.reshape(*lead, c, g, h, g, w).transpose(-3, -2)  # (..., C, rows, cols, h, w)
    return tiles.movedim(-5, -3).reshape(*lead, num_frames, c, h, w)


class ClipTransform(nn.Module):
    """uint8 frames ``(N_F, 3, H, W)`` -> normalised float frames ``(N_F, 3, size, size)``.

    Training: one random resized crop, horizontal flip and colour jitter, drawn once per clip and
    applied identically to every frame (torchvision's v2 transforms treat the leading frame axis as a
    batch sharing one set of parameters), so motion between frames is never faked by augmentation.
    Evaluation: resize the short side to ``size`` and take a centre crop.
    """

    def __init__(
        self,
        size: int,
        *,
        train: bool,
        scale: tuple[float, float] = (0.25, 1.0),
        hflip: float = 0.5,
        color_jitter: float = 0.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        from torchvision.transforms import v2

        if train:
            steps = [v2.RandomResizedCrop(size, scale=tuple(scale), antialias=True)]
            if hflip > 0:
                steps.append(v2.RandomHorizontalFlip(hflip))
            if color_jitter > 0:
                steps.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter))
        else:
            steps = [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        self.transform = v2.Compose(steps)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.transform(frames)


def _normalize(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    return (frames.float() / 255.0 - m) / s


def clip_views(
    video: torch.Tensor,
    *,
    num_frames: int,
    size: int,
    stride: int | None = None,
    num_clips: int = 1,
    num_crops: int = 1,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Deterministic test-time views of a video: ``num_clips`` clips x ``num_crops`` spatial crops.

    Clips are spread evenly in time (:func:`sample_indices` at positions ``(k + 0.5) / num_clips``);
    each clip's frames are resized to short side ``size``, then cut into ``num_crops`` square crops
    spread evenly along the long side (1: centre; 3: both ends and centre). Every view is tiled.

    Args:
        video: ``(T, 3, H, W)`` uint8 frames from :func:`read_video`.

    Returns:
        ``(num_clips * num_crops, 3, g * size, g * size)`` normalised maps, clip-major.
    """
    from torchvision.transforms.v2 import functional as TF

    if num_clips < 1 or num_crops < 1:
        raise ValueError(f"num_clips and num_crops must be >= 1, got {num_clips} and {num_crops}")
    grid_side(num_frames)
    views = []
    for k in range(num_clips):
        idx = sample_indices(len(video), num_frames, stride=stride, position=(k + 0.5) / num_clips)
        frames = TF.resize(video[idx], size, antialias=True)
        h, w = frames.shape[-2:]
        for j in range(num_crops):
            frac = 0.5 if num_crops == 1 else j / (num_crops - 1)
            top, left = round(frac * (h - size)), round(frac * (w - size))
            crop = frames[..., top : top + size, left : left + size]
            views.append(tile_frames(_normalize(crop, mean, std)))
    return torch.stack(views)


def denormalize(
    x: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """Undo the mean/std normalisation of a ``(3, H, W)`` map: float in ``[0, 1]`` for display."""
    m = torch.tensor(mean, dtype=x.dtype).view(3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(3, 1, 1)
    return (x * s + m).clamp(0, 1)
