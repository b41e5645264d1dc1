"""Points -> map: the fixed three-view :class:`OrthographicProjection` (optionally in the PCA frame)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["pca_align", "OrthographicProjection"]


def pca_align(points: torch.Tensor) -> torch.Tensor:
    """Express centred ``(B, P, 3)`` clouds in their principal axes: ``(B, P, 3)``, same distances.

    Coordinate 0 runs along the direction of largest variance, 2 along the smallest; each axis points
    where the cloud's third moment along it is positive. A cloud and any rotated (or mirrored) copy
    thus map to the same coordinates, up to sampling noise and ties between principal variances
    (near-symmetric shapes). The frame is treated as a constant for gradients.
    """
    centred = points - points.mean(dim=1, keepdim=True)
    covariance = centred.detach().double().transpose(1, 2) @ centred.detach().double()
    axes = torch.linalg.eigh(covariance).eigenvectors.flip(-1).to(points.dtype)  # largest variance first
    coords = centred @ axes
    signs = torch.where(coords.detach().pow(3).sum(dim=1, keepdim=True) < 0, -1.0, 1.0).to(points.dtype)
    return coords * signs


class OrthographicProjection(nn.Module):
    """Three axis-aligned orthographic views of a point cloud as a ``3 x H x W`` map; no parameters.

    Input ``(B, P, 3)`` points inside the unit cube ``[-1, 1]^3`` (unit-sphere clouds are; points
    outside are clamped to the border pixels). Channel ``k`` looks along axis ``k`` onto the plane of
    axes ``k+1`` (rows) and ``k+2`` (columns), modulo 3. ``mode="depth"``: each pixel holds
    ``(1 + c_k) / 2`` of its point with the largest coordinate ``c_k`` (the one nearest a viewer at
    ``+inf``), 0 if empty; ``mode="occupancy"``: 1 where any point falls, else 0. Output
    ``(B, 3, resolution, resolution)``; differentiable in the depth values.

    ``align="pca"`` first turns each cloud into its principal-axis frame (:func:`pca_align`), so the
    three views no longer depend on the cloud's orientation: use it when test poses are arbitrary.
    """

    def __init__(self, resolution: int = 64, mode: str = "depth", align: str | None = None) -> None:
        super().__init__()
        if mode not in ("depth", "occupancy"):
            raise ValueError(f"projection mode must be 'depth' or 'occupancy', got {mode!r}")
        if align not in (None, "pca"):
            raise ValueError(f"projection align must be null or 'pca', got {align!r}")
        if resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {resolution}")
        self.resolution, self.mode, self.align = resolution, mode, align
        self.out_chans = 3

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"expected points of shape (B, P, 3), got {tuple(points.shape)}")
        if self.align == "pca":
            points = pca_align(points)
        b, r = points.shape[0], self.resolution
        cells = ((points.detach() + 1) * (r / 2)).floor().long().clamp_(0, r - 1)  # (B, P, 3)
        views = []
        for k in range(3):
            rows, cols = cells[..., (k + 1) % 3], cells[..., (k + 2) % 3]
            if self.mode == "depth":
                value = ((points[..., k] + 1) / 2).clamp(1e-6, 1)
            else:
                value = torch.ones_like(points[..., k])
            canvas = value.new_zeros(b, r * r)
            views.append(canvas.scatter_reduce(1, rows * r + cols, value, reduce="amax", include_self=True))
        return torch.stack(views, dim=1).view(b, 3, r, r)
