"""Point-cloud preprocessing: normalise into the unit sphere, farthest-point sampling, augmentation."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["normalize_unit_sphere", "farthest_point_sample", "random_rotation", "PointAugment"]


def normalize_unit_sphere(points: torch.Tensor) -> torch.Tensor:
    """Centre ``(..., N, 3)`` points on their centroid and scale the farthest one to distance 1."""
    centred = points - points.mean(dim=-2, keepdim=True)
    radius = centred.norm(dim=-1).amax(dim=-1, keepdim=True).unsqueeze(-1)
    return centred / radius.clamp_min(torch.finfo(points.dtype).tiny)


def farthest_point_sample(points: torch.Tensor, num: int, *, start: int | None = 0) -> torch.Tensor:
    """Indices of ``num`` points chosen greedily, each the farthest from those already chosen.

    Args:
        points: ``(N, D)``; distances use the first three coordinates.
        num: points to keep. When ``num > N`` every point is kept and the chosen sequence repeats
            (``num`` indices are always returned).
        start: index of the first point; ``None`` draws it at random (training).

    Returns:
        ``(num,)`` int64 indices into ``points``.
    """
    n = points.shape[0]
    if n == 0 or num < 1:
        raise ValueError(f"farthest-point sampling needs points and num >= 1, got {n} points and num={num}")
    # a NumPy loop: ~2x less per-step overhead than torch for these small vector operations
    xyz = points[:, :3].detach().cpu().double().numpy()
    current = int(torch.randint(n, (1,))) if start is None else start
    chosen = np.empty(min(num, n), dtype=np.int64)
    nearest = np.full(n, np.inf)
    for i in range(len(chosen)):
        chosen[i] = current
        offset = xyz - xyz[current]
        np.minimum(nearest, np.einsum("ij,ij->i", offset, offset), out=nearest)
        current = int(nearest.argmax())
    indices = torch.from_numpy(chosen)
    return indices.repeat(math.ceil(num / n))[:num] if num > n else indices


def random_rotation(kind: str = "up", up_axis: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random ``3 x 3`` rotation: about ``up_axis`` by a uniform angle (``"up"``), uniform over SO(3)
    (``"so3"``, from a normalised Gaussian quaternion) or the identity (``"none"``)."""
    if kind == "none":
        return torch.eye(3)
    if kind == "up":
        angle = 2 * math.pi * float(torch.rand((), generator=generator))
        c, s = math.cos(angle), math.sin(angle)
        a, b = [ax for ax in range(3) if ax != up_axis]
        rot = torch.eye(3)
        rot[a, a], rot[a, b], rot[b, a], rot[b, b] = c, -s, s, c
        return rot
    if kind == "so3":
        w, x, y, z = (q := torch.randn(4, generator=generator, dtype=torch.float64)) / q.norm()
        return torch.tensor(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
            ],
            dtype=torch.float32,
        )
    raise ValueError(f"rotation must be 'up', 'so3' or 'none', got {kind!r}")


class PointAugment(nn.Module):
    """Training augmentation of one ``(P, 3)`` cloud; ``P`` is kept.

    In order: rotation (:func:`random_rotation`), uniform random scaling in ``scale``, per-point
    Gaussian jitter (``jitter`` sigma, clipped at ``jitter_clip``), and point dropout: a random
    fraction up to ``dropout`` of the points is replaced by the first point (PointNet++'s trick that
    keeps ``P`` fixed while thinning the cloud).
    """

    def __init__(
        self,
        rotation: str = "up",
        up_axis: int = 1,
        scale: tuple[float, float] = (0.8, 1.25),
        jitter: float = 0.01,
        jitter_clip: float = 0.05,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        random_rotation(rotation)  # validates the name
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is the largest fraction of points dropped, in [0, 1), got {dropout}")
        self.rotation, self.up_axis, self.scale = rotation, up_axis, tuple(scale)
        self.jitter, self.jitter_clip, self.dropout = jitter, jitter_clip, dropout

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        points = points @ random_rotation(self.rotation, self.up_axis).T
        lo, hi = self.scale
        points = points * (lo + (hi - lo) * torch.rand(()))
        if self.jitter > 0:
            points = points + (self.jitter * torch.randn_like(points)).clamp(-self.jitter_clip, self.jitter_clip)
        if self.dropout > 0:
            drop = torch.rand(len(points)) < self.dropout * torch.rand(())
            points = torch.where(drop[:, None], points[:1], points)
        return points
