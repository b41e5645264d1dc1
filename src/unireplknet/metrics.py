"""The evaluation-metrics interface shared by the tasks, the dense-prediction heads and the engine."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import torch

__all__ = ["Metrics"]


class Metrics(abc.ABC):
    """Accumulates predictions over an evaluation pass; ``compute()`` returns scalar metrics.

    Implementations keep sufficient statistics (sums, counts, confusion matrix) as tensors so the
    engine can all-reduce them across processes with :meth:`state_tensors` / :meth:`load_state_tensors`.
    """

    @abc.abstractmethod
    def update(self, outputs: Any, targets: Any, loss: torch.Tensor | None = None) -> None: ...

    @abc.abstractmethod
    def compute(self) -> dict[str, float]: ...

    @abc.abstractmethod
    def state_tensors(self) -> list[torch.Tensor]:
        """The accumulated statistics; the engine sums them over processes in place."""

    def report(self, run_dir: Path) -> dict[str, Any]:
        """End-of-run artifacts drawn from the accumulated statistics (e.g. a confusion-matrix PNG) written
        into ``run_dir``; returns ``{name: path}`` for the run summary. Called on the final evaluation."""
        return {}
