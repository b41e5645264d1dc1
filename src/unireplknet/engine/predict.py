"""Prediction on raw input files: one loop for every task (``unireplknet predict``).

The task turns each file into the model's input (:meth:`~unireplknet.tasks.Task.predict_input`) and the
model's output into a JSON-ready result (:meth:`~unireplknet.tasks.Task.predict_output`); this loop does
the rest: evaluation mode, no gradients, the device, one file at a time, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..tasks import Task
from .data import to_device

__all__ = ["predict"]


@torch.no_grad()
def predict(task: Task, model: nn.Module, paths: Sequence[str | Path], top_k: int = 5) -> list[dict[str, Any]]:
    """``[{"path": file, **task's result}, ...]``, one dict per file of ``paths`` in their order.

    ``top_k`` is passed to the task (classes listed per file, where the task lists classes).
    """
    model.eval()
    device = next(model.parameters()).device
    results = []
    for path in map(Path, paths):
        inputs, context = task.predict_input(path)
        inputs = to_device(inputs, device)
        outputs = model(inputs)
        result = task.predict_output(path, outputs, inputs=inputs, context=context, model=model, top_k=top_k)
        results.append({"path": str(path), **result})
    return results
