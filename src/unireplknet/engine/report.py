"""Run artifacts: ``metrics.jsonl`` (one line per epoch), ``summary.json`` and the loss/metric curves PNG.

Every JSON file a run writes is strict JSON: a non-finite number (NaN, inf) is written as ``null``,
never as the bare ``NaN`` / ``Infinity`` that Python's ``json`` emits by default and other readers reject.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..files import atomic_save_figure, atomic_write_text, to_json

__all__ = ["write_json", "append_jsonl", "read_jsonl", "truncate_jsonl", "plot_curves"]


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as strict JSON, atomically (a crash leaves the old file or none, never half of one)."""
    return atomic_write_text(path, to_json(value, indent=2))


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(to_json(dict(record)) + "\n")
        f.flush()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a crash; everything after it is lost anyway
    return records


def truncate_jsonl(path: Path, before_epoch: int) -> None:
    """Keep only the records of epochs before ``before_epoch`` (a resumed run rewrites the rest)."""
    if path.exists():
        kept = [r for r in read_jsonl(path) if r.get("epoch", math.inf) < before_epoch]
        atomic_write_text(path, "".join(to_json(r) + "\n" for r in kept))


def plot_curves(records: list[Mapping[str, Any]], path: Path, primary_metric: str) -> Path | None:
    """Loss (train and eval) and the primary metric per epoch, side by side; None without records."""
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] + 1 for r in records]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name in ((ax_loss, "loss"), (ax_metric, primary_metric)):
        for split in ("train", "eval"):
            key = f"{split}_{name}"
            points = [(e, r[key]) for e, r in zip(epochs, records, strict=True) if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path
