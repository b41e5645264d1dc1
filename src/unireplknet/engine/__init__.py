"""The training engine: one loop for every task (see :mod:`unireplknet.tasks`).

>>> from unireplknet.config import resolve_config
>>> from unireplknet.engine import train, build_task
>>> cfg = resolve_config(get_task("classify").config_schema, overrides={"train": {"epochs": 1}})
>>> summary = train(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

from .evaluate import evaluate, max_abs_diff
from .predict import predict
from .state import load_state, read_metadata, read_weights, save_state, save_weights
from .trainer import NonFiniteError, RunPaths, build_task, new_run_dir, train

__all__ = [
    "train",
    "evaluate",
    "predict",
    "build_task",
    "new_run_dir",
    "RunPaths",
    "max_abs_diff",
    "save_weights",
    "read_weights",
    "read_metadata",
    "save_state",
    "load_state",
    "NonFiniteError",
]
