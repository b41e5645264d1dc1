"""Progress output: live bars on a terminal; anywhere else one plain line per report, nothing stray,
and nothing at all from processes other than the main one (also end to end, under torchrun)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from unireplknet.engine import progress as progress_module
from unireplknet.engine.progress import TrainProgress, print_table, summary_table

# Long enough to wrap at the 80 columns rich assumes for a file (which once left "40s" on a line of its own).
STATS = {"loss": 2.302585, "top1": 10.9375, "img/s": 45.678, "lr": 0.0001234, "grad_norm": 1.5}
RUN_LINE = "task classify, model unireplknet_a, 60000 training samples, run folder " + "/very/long/path" * 5
STEP = re.compile(
    r"^(train|eval) \d+ step \d+/\d+  loss [\d.]+  top1 [\d.]+  img/s [\d.]+  lr [\d.e-]+  grad_norm [\d.]+( {2}ETA \d+s)?$"
)
EPOCH = re.compile(r"^epoch \d+  train_loss [\d.]+  eval_top1 [\d.]+$")


def _simulate_run(bar: TrainProgress, epochs: int = 2, steps: int = 25) -> None:
    """What the trainer reports: a log line, per epoch a training pass, an eval pass (no stats) and the
    epoch line, then the final evaluation."""
    with bar:
        bar.log(RUN_LINE)
        for epoch in range(epochs):
            bar.start_pass(f"train {epoch + 1}", steps)
            for _ in range(steps):
                bar.step(STATS)
            bar.start_pass(f"eval {epoch + 1}", 4)
            for _ in range(4):
                bar.step({})
            bar.end_epoch({"epoch": epoch, "train_loss": 1.25, "eval_top1": 50.0})
        bar.start_pass("final eval (trained + deploy)", 4)
        for _ in range(4):
            bar.step({})


def _console(monkeypatch: pytest.MonkeyPatch, **options: object) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(progress_module, "console", Console(file=out, **options))
    return out


@pytest.mark.parametrize("where", ["file", "dumb terminal"])
def test_without_a_live_terminal_each_report_is_one_line(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    if where == "file":
        out = _console(monkeypatch, width=40)  # a StringIO is no TTY
    else:
        monkeypatch.setenv("TERM", "dumb")
        out = _console(monkeypatch, force_terminal=True, width=40)
    _simulate_run(TrainProgress(True, epochs=2, start_epoch=0))
    lines = out.getvalue().split("\n")
    assert lines.pop() == ""  # the output ends with a newline, and has no blank line
    assert lines[0] == RUN_LINE
    steps = [line for line in lines[1:] if not EPOCH.match(line)]
    assert all(STEP.match(line) for line in steps), steps
    # 25 steps reported every 2nd step: 12 lines per training pass; the eval passes have no stats.
    assert [line.split("  ")[0] for line in steps] == [
        f"train {e} step {i}/25" for e in (1, 2) for i in range(2, 26, 2)
    ]
    assert [line for line in lines if EPOCH.match(line)] == [
        "epoch 0  train_loss 1.25  eval_top1 50",
        "epoch 1  train_loss 1.25  eval_top1 50",
    ]
    assert lines[13] == "epoch 0  train_loss 1.25  eval_top1 50"  # in order: after epoch 1's steps


def test_on_a_terminal_the_bars_are_live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    out = _console(monkeypatch, force_terminal=True, width=160)
    _simulate_run(TrainProgress(True, epochs=2, start_epoch=0))
    text = out.getvalue()
    assert "\x1b[" in text and "━" in text  # redrawn bars
    assert "final eval (trained + deploy)" in text and "2/2" in text  # the last frame: both bars done
    assert " step 2/25 " not in text  # no plain step lines on top of the bars
    assert RUN_LINE in text and "epoch 1  train_loss 1.25" in text


@pytest.mark.parametrize("terminal", [True, False])
def test_other_processes_print_nothing(monkeypatch: pytest.MonkeyPatch, terminal: bool) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    out = _console(monkeypatch, force_terminal=terminal)
    _simulate_run(TrainProgress(False, epochs=2, start_epoch=0))
    assert out.getvalue() == ""


def test_a_table_in_a_log_has_one_line_per_row(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _console(monkeypatch)  # a file: rich would fold cells at 80 columns
    rows = {"epochs": 2, "output: state": "/a/very/long/run/folder/" * 4 + "train_state.safetensors"}
    print_table(summary_table("run summary", rows))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + 2 + len(rows)  # title, top and bottom rules, one line per row
    assert rows["output: state"] in lines[3] and lines[3].startswith("│ output: state │")


TINY_RUN = [
    "model.depths=[1,1,1,1]",
    "model.dims=[8,16,32,64]",
    "model.kernel_sizes=[[3],[7],[7],[3]]",
    "data.train_subset=96",
    "data.eval_subset=32",
    "data.batch_size=16",
    "data.eval_batch_size=32",
    "train.epochs=1",
    "train.epoch_eval_size=32",
    "train.threads=1",
]
RUN = re.compile(r"^task classify, model unireplknet_a, .* device cpu x 2 processes, run folder .*$")
CLI_STEP = re.compile(r"^train 1 step \d/3  loss [\d.]+  top1 [\d.]+  img/s [\d.]+  lr [\d.e-]+( {2}ETA \d+s)?$")
CLI_EPOCH = re.compile(
    r"^epoch 0  train_loss [\d.]+  eval_loss [\d.]+  eval_top1 [\d.]+  train_images_per_s [\d.]+  epoch_time_s [\d.]+$"
)
TABLE = re.compile(r"^(run summary *|[┌└][─┬┴]+[┐┘]|│ \S.* │ .* │)$")  # a row per line: no folded cells


def test_torchrun_log_has_one_line_per_report_from_rank_0_only(tmp_path: Path) -> None:
    """A real two-process run with its output in a pipe, as a CI job or a log file sees it."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS")}
    # PyTorch's DDP warns (once per process) that the depthwise weights' gradients, (C, 1, k, k), come
    # back channels_last-strided, unlike the parameters: a layout note from PyTorch, not progress output.
    env.update(
        OMP_NUM_THREADS="1",
        OMP_WAIT_POLICY="PASSIVE",
        PYTHONWARNINGS="ignore:Grad strides do not match bucket view strides",
    )
    sets = [arg for item in TINY_RUN for arg in ("--set", item)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "unireplknet", "train", *sets, "--output", str(tmp_path), "--name", "ddp"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert RUN.match(lines[0]), lines[0]
    # 96 images, 2 processes x 16 per batch: 3 steps, each reported once (rank 0), then the epoch line.
    assert [CLI_STEP.match(line) is not None for line in lines[1:4]] == [True] * 3, lines[1:4]
    assert [line.split("  ")[0] for line in lines[1:4]] == [f"train 1 step {i}/3" for i in (1, 2, 3)]
    assert CLI_EPOCH.match(lines[4]), lines[4]
    assert all(TABLE.match(line) for line in lines[5:]), lines[5:]
    assert lines[5].startswith("run summary") and sum("│ epochs " in line for line in lines) == 1
