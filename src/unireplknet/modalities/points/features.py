"""Hand-made point-cloud features and the nearest-neighbour baseline on them (``benchmarks/points_*_baseline*.py``)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from .transforms import normalize_unit_sphere

__all__ = ["shape_histogram", "histogram_features", "nearest_neighbour_top1"]


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


def histogram_features(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`shape_histogram` of every item of a ``(points, label)`` dataset: ``(N, 2 * bins)`` and labels ``(N,)``."""
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([shape_histogram(points) for points, _ in items]), torch.tensor([label for _, label in items])


def nearest_neighbour_top1(
    query: tuple[torch.Tensor, torch.Tensor], reference: tuple[torch.Tensor, torch.Tensor]
) -> float:
    """Top-1 accuracy (percent) of a 1-nearest-neighbour classifier (L1 distance) on ``(features, labels)`` pairs."""
    (query_x, query_y), (ref_x, ref_y) = query, reference
    nearest = torch.cdist(query_x, ref_x, p=1).argmin(dim=1)
    return 100.0 * float((ref_y[nearest] == query_y).float().mean())
