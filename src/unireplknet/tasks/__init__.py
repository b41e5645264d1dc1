"""Tasks: each modality (images, audio, forecasting, video, point clouds, dense prediction) is a Task.

Built-in tasks are imported lazily by name, so ``import unireplknet.tasks`` stays light and a task's
heavy dependencies (audio, video, point-cloud libraries) load only when that task is used.
"""

from __future__ import annotations

from .base import TASKS, Metrics, Task, get_task, register_task

__all__ = ["Task", "Metrics", "register_task", "get_task", "TASKS", "BUILTIN_TASKS"]

# task name -> (module under unireplknet.tasks, pip extra that provides its dependencies)
BUILTIN_TASKS: dict[str, tuple[str, str | None]] = {
    "classify": ("classify", "train"),
    "video": ("video", "video"),
    "points": ("points", "points"),
    "audio": ("audio", "audio"),
    "forecast": ("forecast", "forecast"),
    "grid_forecast": ("grid_forecast", "dense"),
    "segment": ("segment", "dense"),
    "detect": ("detect", "dense"),
}
