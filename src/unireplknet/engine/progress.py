"""Progress bars (per epoch and per step) and the end-of-run summary table, drawn with rich."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

__all__ = ["TrainProgress", "summary_table", "console"]

console = Console(stderr=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class TrainProgress:
    """Two bars (epochs, steps of the current epoch) with loss, metric, images/s and ETA.

    Disabled (prints nothing) on non-main processes. On a terminal the bars update live; in a log
    file each epoch ends with one printed line instead.
    """

    def __init__(self, enabled: bool, epochs: int, start_epoch: int) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            refresh_per_second=4,
        )
        self.epoch_bar = self.progress.add_task("epochs", total=epochs, completed=start_epoch, stats="")
        self.step_bar = None

    def __enter__(self) -> TrainProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start_pass(self, label: str, steps: int, done: int = 0) -> None:
        """Replace the step bar with a fresh one for a pass of ``steps`` steps (e.g. ``"train 2"``)."""
        if self.step_bar is not None:
            self.progress.remove_task(self.step_bar)
        self.step_bar = self.progress.add_task(label, total=steps, completed=done, stats="")
        self.step_label, self.steps, self.done = label, steps, done

    def step(self, stats: Mapping[str, Any], advance: int = 1) -> None:
        text = "  ".join(f"{k} {_fmt(v)}" for k, v in stats.items())
        self.progress.update(self.step_bar, advance=advance, stats=text)
        self.done += advance
        # Without a terminal (a log file, a CI job) the bars are not redrawn: print ~10 lines per epoch.
        if (
            self.enabled
            and text
            and not self.progress.console.is_terminal
            and self.done % max(1, self.steps // 10) == 0
        ):
            eta = next(t.time_remaining for t in self.progress.tasks if t.id == self.step_bar)
            eta_text = f"  ETA {eta:.0f}s" if eta is not None else ""
            self.progress.console.print(f"{self.step_label} step {self.done}/{self.steps}  {text}{eta_text}")

    def end_epoch(self, line: Mapping[str, Any]) -> None:
        self.progress.update(self.epoch_bar, advance=1)
        if self.enabled:
            self.progress.console.print("  ".join(f"{k} {_fmt(v)}" for k, v in line.items()))

    def log(self, message: str) -> None:
        if self.enabled:
            self.progress.console.print(message)


def summary_table(title: str, rows: Mapping[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, _fmt(value))
    return table
