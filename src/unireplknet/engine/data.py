"""Samplers and loaders that make training reproducible, resumable mid-epoch and shardable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset

from .distributed import DistInfo

__all__ = ["ResumableSampler", "ShardSampler", "train_loader", "eval_loader", "to_device", "fixed_subset"]


class ResumableSampler(DistributedSampler):
    """A :class:`DistributedSampler` that can start part-way through an epoch.

    The epoch's order depends only on ``(seed, epoch)``, so skipping the first ``start`` samples of
    this process's shard reproduces exactly the batches an uninterrupted run would see next.
    ``total`` limits each shard to a whole number of optimizer steps.
    """

    def __init__(self, dataset: Dataset, dist_info: DistInfo, *, seed: int, total: int) -> None:
        super().__init__(dataset, num_replicas=dist_info.world_size, rank=dist_info.rank, shuffle=True, seed=seed)
        self.total = total
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[: self.total]
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return self.total - self.start


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``: disjoint shards with no padding (exact metrics)."""

    def __init__(self, length: int, dist_info: DistInfo) -> None:
        self.indices = range(dist_info.rank, length, dist_info.world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def fixed_subset(dataset: Dataset, size: int | None, seed: int = 0) -> Dataset:
    """A fixed random subset of ``size`` items (the whole dataset when ``size`` is None or too large)."""
    if size is None or size >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, sorted(order[:size].tolist()))


def train_loader(
    dataset: Dataset,
    dist_info: DistInfo,
    *,
    batch_size: int,
    steps: int,
    accum_steps: int,
    seed: int,
    num_workers: int,
    collate_fn: Any,
    pin_memory: bool,
) -> DataLoader:
    """Loader for ``steps`` optimizer steps per epoch of ``accum_steps`` micro-batches each."""
    sampler = ResumableSampler(dataset, dist_info, seed=seed, total=steps * accum_steps * batch_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        # A private generator: creating the iterator must not draw from the global RNG that a
        # resumed run restores, or resuming would shift every later random number.
        generator=torch.Generator(),
        persistent_workers=False,
    )


def eval_loader(
    dataset: Dataset, dist_info: DistInfo, *, batch_size: int, num_workers: int, collate_fn: Any, pin_memory: bool
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), dist_info),
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
    )


def to_device(obj: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move tensors in nested lists/tuples/dicts to ``device`` (4-D float tensors to channels_last if asked)."""
    if isinstance(obj, torch.Tensor):
        obj = obj.to(device, non_blocking=True)
        if channels_last and obj.dim() == 4 and obj.is_floating_point():
            obj = obj.contiguous(memory_format=torch.channels_last)
        return obj
    if isinstance(obj, dict):
        return {k: to_device(v, device, channels_last) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        moved = [to_device(v, device, channels_last) for v in obj]
        return type(obj)(*moved) if hasattr(obj, "_fields") else type(obj)(moved)
    return obj
