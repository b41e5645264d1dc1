"""Evaluation passes: a task's metrics over a loader, optionally comparing two models' outputs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from ..metrics import Metrics
from .data import to_device
from .distributed import all_reduce_sum

__all__ = ["evaluate", "max_abs_diff", "autocast"]


def autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """Mixed precision for ``amp`` in (None, 'bf16', 'fp16')."""
    if amp is None:
        return contextlib.nullcontext()
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if amp not in dtypes:
        raise ValueError(f"train.amp must be null, bf16 or fp16, got {amp!r}")
    return torch.autocast(device.type, dtype=dtypes[amp])


def max_abs_diff(a: Any, b: Any) -> float:
    """Largest absolute difference between two outputs (tensors, or nested lists/dicts of them)."""
    if isinstance(a, torch.Tensor):
        return (a.float() - b.float()).abs().max().item() if a.numel() else 0.0
    if isinstance(a, dict):
        return max((max_abs_diff(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, (list, tuple)):
        return max((max_abs_diff(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    return 0.0


@torch.no_grad()
def evaluate(
    models: Sequence[nn.Module],
    loader: DataLoader,
    new_metrics: Callable[[], Metrics],
    loss_fn: Callable[[Any, Any, bool], torch.Tensor],
    device: torch.device,
    *,
    amp: str | None = None,
    channels_last: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[Metrics], float]:
    """Run every model on every batch; returns one (all-reduced) Metrics per model and the largest
    absolute output difference between the first model and the others (0.0 for one model).
    """
    for model in models:
        model.eval()
    metrics = [new_metrics() for _ in models]
    worst = torch.zeros((), dtype=torch.float64, device=device)
    for inputs, targets in loader:
        inputs = to_device(inputs, device, channels_last)
        targets = to_device(targets, device)
        reference = None
        for model, acc in zip(models, metrics, strict=True):
            with autocast(device, amp):
                outputs = model(inputs)
            acc.update(outputs, targets, loss_fn(outputs, targets, False))
            if reference is None:
                reference = outputs
            else:
                worst = torch.maximum(
                    worst, torch.tensor(max_abs_diff(reference, outputs), dtype=torch.float64, device=device)
                )
        if on_batch is not None:
            on_batch(len(inputs) if isinstance(inputs, torch.Tensor) else loader.batch_size or 1)
    for acc in metrics:
        all_reduce_sum(acc.state_tensors())
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return metrics, worst.item()
