"""Progress bars (per epoch and per step) and the end-of-run summary table, drawn with rich."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

__all__ = ["TrainProgress", "summary_table", "print_table", "console"]

console = Console(stderr=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_line(text: str) -> None:
    """One physical line, as given: no wrapping at the console width (80 columns in a log file, which
    split long step lines and left their ETA alone on the next line), no markup or highlighting."""
    console.print(text, soft_wrap=True, markup=False, highlight=False, emoji=False)


class TrainProgress:
    """Two bars (epochs, steps of the current pass) with loss, metric, images/s and ETA.

    Disabled (prints nothing) on non-main processes. On an interactive terminal the bars update live;
    anywhere else (a log file, a pipe, a CI job, ``TERM=dumb``) nothing is drawn and each report is one
    plain line: about 10 ``<pass> step i/n  <stats>  ETA <s>s`` lines per training pass, one line per
    epoch, and the :meth:`log` messages.
    """

    def __init__(self, enabled: bool, epochs: int, start_epoch: int) -> None:
        self.enabled = enabled
        # Decided once per run: rich's live display draws on terminals and, elsewhere, dumps its final
        # frame (wrapped at 80 columns) and a blank line when stopped.
        self.live = enabled and console.is_terminal and not console.is_dumb_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.live,
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
        if self.enabled and not self.live and text and self.done % max(1, self.steps // 10) == 0:
            eta = next(t.time_remaining for t in self.progress.tasks if t.id == self.step_bar)
            eta_text = f"  ETA {eta:.0f}s" if eta is not None else ""
            _print_line(f"{self.step_label} step {self.done}/{self.steps}  {text}{eta_text}")

    def end_epoch(self, line: Mapping[str, Any]) -> None:
        self.progress.update(self.epoch_bar, advance=1)
        if self.enabled:
            _print_line("  ".join(f"{k} {_fmt(v)}" for k, v in line.items()))

    def log(self, message: str) -> None:
        if self.enabled:
            _print_line(message)


def summary_table(title: str, rows: Mapping[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, _fmt(value))
    return table


def print_table(table: Table, to: Console | None = None) -> None:
    """Print ``table`` on ``to`` (default: the progress console, stderr): at a terminal's width, and
    elsewhere at the table's natural width, so that a log gets one line per row (rich's 80 columns for
    a file would fold long values, such as the run's paths, onto continuation rows)."""
    to = to or console
    if to.is_terminal:
        to.print(table)
        return
    width = Measurement.get(to, to.options.update(max_width=10_000), table).maximum
    Console(file=to.file, width=max(width, to.width)).print(table)
