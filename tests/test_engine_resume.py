"""Exact resumption: a run killed with SIGKILL from outside mid-run and resumed ends bit-identical to an uninterrupted
one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from unireplknet.config import parse_overrides, resolve_config
from unireplknet.engine import load_state, read_weights, train
from unireplknet.tasks import get_task

# 96 images, batches of 16: 6 optimizer steps per epoch, 2 epochs; state saved every 2 steps.
# Augmentation, Mixup (NumPy RNG), drop path (torch RNG in the model) and EMA all have to resume exactly.
SETTINGS = [
    "model.depths=[1,1,1,1]",
    "model.dims=[8,16,32,64]",
    "model.kernel_sizes=[[3],[7],[7],[3]]",
    "model.drop_path_rate=0.1",
    "data.train_subset=96",
    "data.eval_subset=32",
    "data.batch_size=16",
    "data.eval_batch_size=32",
    "aug.mixup=0.2",
    "aug.label_smoothing=0.1",
    "train.epochs=2",
    "train.ema=true",
    "train.ema_decay=0.9",
    "train.checkpoint_every_steps=2",
    "train.threads=1",
]


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run(
        [sys.executable, "-m", "unireplknet", *args], env=env, capture_output=True, text=True, timeout=300
    )


def kill_after_first_epoch(args: list[str], metrics: Path) -> subprocess.Popen:
    """Start ``unireplknet ARGS`` and ``kill -9`` it from outside as soon as ``metrics`` holds a complete line
    (the first epoch's), i.e. somewhere in the epoch-end saves or the second epoch."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    process = subprocess.Popen(
        [sys.executable, "-m", "unireplknet", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while process.poll() is None and not (metrics.is_file() and "\n" in metrics.read_text()):
        time.sleep(0.005)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    return process


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("train_images_per_s", "epoch_time_s")} for r in records]


def test_kill_and_resume_is_bit_exact(tmp_path: Path) -> None:
    overrides = parse_overrides(SETTINGS + [f"output.dir={tmp_path}", "output.name=straight"])
    threads = torch.get_num_threads()
    try:
        reference = train(resolve_config(get_task("classify").config_schema, {"task": "classify"}, overrides))
    finally:
        torch.set_num_threads(threads)

    args = ["train", *[a for s in SETTINGS for a in ("--set", s)], "--output", str(tmp_path), "--name", "killed"]
    run = tmp_path / "killed"
    # SIGKILL from outside once epoch 1 has ended: the last save is epoch 1's mid-epoch one (after step 4), its
    # end, or one in epoch 2 (every 2 steps); the run had not finished
    killed = kill_after_first_epoch(args, run / "metrics.jsonl")
    assert killed.returncode == -signal.SIGKILL, f"the run ended before the kill: {killed.stderr.read()}"
    saved = load_state(run / "train_state.safetensors")
    assert 4 <= saved["global_step"] <= 12 and saved["global_step"] % 2 == 0, saved["global_step"]
    assert not (run / "summary.json").exists()
    resumed = run_cli(["train", "--resume", str(run)])
    assert resumed.returncode == 0, resumed.stderr

    for name in ("last.safetensors", "deploy.safetensors"):
        expected, _ = read_weights(tmp_path / "straight" / name)
        actual, _ = read_weights(run / name)
        assert expected.keys() == actual.keys()
        for key in expected:
            assert torch.equal(expected[key], actual[key]), f"{name}: {key} differs"
    expected_opt = load_state(tmp_path / "straight" / "train_state.safetensors")["optimizer"]["state"]
    actual_opt = load_state(run / "train_state.safetensors")["optimizer"]["state"]
    for key, fields in expected_opt.items():
        for field, value in fields.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(actual_opt[key][field])), (key, field)
    read = lambda p: [json.loads(line) for line in p.read_text().splitlines()]  # noqa: E731
    assert without_timing(read(run / "metrics.jsonl")) == without_timing(read(tmp_path / "straight" / "metrics.jsonl"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval"] == reference["eval"]


def test_resume_refuses_other_options(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from unireplknet.cli import app

    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path), "--epochs", "3"])
    assert result.exit_code == 2 and "drop the other options" in result.output
    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not a run folder" in result.output
