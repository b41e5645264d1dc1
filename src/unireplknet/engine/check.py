"""Check a task's data up front: decode every sample of every split, list the ones that fail.

``unireplknet check-data`` (and ``train --check-data``) run this before hours of training reach a
corrupt image, an undecodable clip or a sample holding NaN/inf values.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

__all__ = ["BadSample", "check_dataset", "check_task_data", "sample_name"]


@dataclass(frozen=True)
class BadSample:
    split: str
    index: int
    name: str  # the file (when the dataset knows it) or "sample N"
    problem: str  # one line


def sample_name(dataset: Dataset, index: int) -> str:
    """The file behind ``dataset[index]`` where the dataset lists its files (``samples``, ``items``,
    ``files`` or ``paths`` of paths or ``(path, label)`` pairs, also through ``Subset``), else ``sample N``."""
    while isinstance(dataset, Subset):
        dataset, index = dataset.dataset, int(dataset.indices[index])
    for attribute in ("samples", "items", "files", "paths"):
        entries = getattr(dataset, attribute, None)
        if isinstance(entries, (list, tuple)) and index < len(entries):
            entry = entries[index]
            entry = entry[0] if isinstance(entry, (list, tuple)) and entry else entry
            if isinstance(entry, (str, os.PathLike)):
                return str(entry)
    return f"sample {index}"


def _non_finite(obj: Any) -> bool:
    if isinstance(obj, torch.Tensor):
        return obj.is_floating_point() and not bool(torch.isfinite(obj).all())
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_non_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_non_finite(v) for v in obj)
    if hasattr(obj, "dtype") and hasattr(obj, "shape"):  # NumPy arrays
        return _non_finite(torch.as_tensor(obj))
    return False


class _Probe(Dataset):
    """``(index, None)`` for a sample that decodes to finite values, else ``(index, problem)``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, str | None]:
        try:
            sample = self.dataset[index]
        except Exception as e:  # noqa: BLE001 - any failure to read a sample is what is being looked for
            lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
            return index, f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        if _non_finite(sample):
            return index, "holds NaN or inf values"
        return index, None


def _first(batch: list[Any]) -> Any:
    return batch[0]


def check_dataset(
    split: str,
    dataset: Dataset,
    *,
    num_workers: int = 0,
    on_sample: Callable[[], None] | None = None,
) -> Iterable[BadSample]:
    """Decode every sample of ``dataset`` (in ``num_workers`` processes) and yield the bad ones.

    A sample is bad when reading it raises or when it holds a NaN/inf value. ``on_sample`` is called
    after each sample (a progress bar).
    """
    loader = DataLoader(_Probe(dataset), batch_size=1, num_workers=num_workers, collate_fn=_first)
    for index, problem in loader:
        if on_sample is not None:
            on_sample()
        if problem is not None:
            yield BadSample(split, index, sample_name(dataset, index), problem)


def check_task_data(cfg: dict[str, Any], num_workers: int | None = None) -> None:
    """Check every split of ``cfg``'s task (train, val, test) with a progress bar on stderr, print each bad
    sample as ``bad: SPLIT NAME: PROBLEM``, and raise ValueError if there were any.

    Args:
        cfg: a resolved run config.
        num_workers: decoding processes (default: ``data.num_workers``).
    """
    import functools

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..tasks import get_task
    from .progress import console

    task = get_task(cfg["task"])(cfg)
    train_set, val_set = task.build_datasets()
    splits = {"train": train_set, "val": val_set, "test": task.build_test_dataset()}
    splits = {name: dataset for name, dataset in splits.items() if dataset is not None}
    workers = cfg["data"]["num_workers"] if num_workers is None else num_workers
    bad, total = [], 0
    columns = (TextColumn("[bold]check {task.description}"), BarColumn(bar_width=30), MofNCompleteColumn())
    # live bar on a terminal only; in a log file just the `bad:` lines and the result
    with Progress(*columns, TimeRemainingColumn(), console=console, disable=not console.is_terminal) as progress:
        for name, dataset in splits.items():
            advance = functools.partial(progress.advance, progress.add_task(name, total=len(dataset)))
            for sample in check_dataset(name, dataset, num_workers=workers, on_sample=advance):
                bad.append(sample)
                progress.console.print(
                    f"bad: {sample.split} {sample.name}: {sample.problem}",
                    soft_wrap=True,
                    markup=False,
                    highlight=False,
                )
            total += len(dataset)
    counts = ", ".join(f"{name} {len(dataset)}" for name, dataset in splits.items())
    if bad:
        raise ValueError(
            f"{len(bad)} of {total} samples ({counts}) cannot be used (listed above as `bad:`); "
            "fix or remove those files"
        )
    console.print(
        f"checked {total} samples ({counts}): all decode, no NaN/inf values",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
