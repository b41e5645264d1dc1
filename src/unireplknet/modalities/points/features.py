"""Hand-made point-cloud features for baselines (``benchmarks/points_cgal_baseline.py``)."""

from __future__ import annotations

import torch

from .transforms import normalize_unit_sphere

__all__ = ["shape_histogram"]


def shape_histogram(points: torch.Tensor, bins: int = 32, max_pairs: int = 200_000) -> torch.Tensor:
    """A rotation-invariant shape descriptor (the baseline's feature): ``(2 * bins,)``.

    The concatenation of two normalised histograms over ``[0, 2]`` of a unit-sphere cloud ``(P, 3)``:
    distances between random point pairs (Osada et al.'s D2 shape distribution) and distances to
    the centroid. Both are unchanged by any rotation, so a nearest-neighbour classifier on them needs
    no pose augmentation.
    """
    points = normalize_unit_sphere(points.double())
    pairs = torch.cdist(points, points)[torch.triu_indices(len(points), len(points), 1).unbind()]
    if len(pairs) > max_pairs:
        pairs = pairs[torch.randperm(len(pairs))[:max_pairs]]
    radial = points.norm(dim=-1)
    hists = [torch.histc(v.float(), bins=bins, min=0.0, max=2.0) for v in (pairs, radial)]
    return torch.cat([h / h.sum() for h in hists])
