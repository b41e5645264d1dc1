"""Distributed data parallel on CPU (2 gloo processes) and gradient accumulation match one process on
the same global batch. The toy task's network has no BatchNorm: per-process batch statistics (CPU has
no SyncBatchNorm) would otherwise make the runs differ by design, not by a bug."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from unireplknet.config import resolve_config
from unireplknet.engine import read_weights, train
from unireplknet.tasks import Task, register_task
from unireplknet.tasks.classification import ClassificationMetrics


@register_task
class ToyTask(Task):
    name = "toy_ddp"
    primary_metric = "top1"

    def build_datasets(self) -> tuple[TensorDataset, TensorDataset]:
        x = torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        y = (x[:, 0].mean((1, 2)) > 0).long()
        return TensorDataset(x, y), TensorDataset(x[:24], y[:24])

    def build_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)
        )

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, train: bool) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def new_metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics(2)

    def predict_input(self, path: Path) -> tuple[Any, Any]:
        raise NotImplementedError("the toy task trains only")

    def predict_output(self, path: Path, outputs: Any, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError("the toy task trains only")


def config(out: Path, name: str, batch_size: int, accum_steps: int = 1) -> dict[str, Any]:
    overrides = {
        "data": {"batch_size": batch_size, "eval_batch_size": 8},
        "optim": {"lr": 0.01, "warmup_epochs": 0},
        "train": {"epochs": 2, "accum_steps": accum_steps, "threads": 1},
        "output": {"dir": str(out), "name": name},
    }
    return resolve_config(ToyTask.config_schema, {"task": "toy_ddp"}, overrides)


def _worker(rank: int, world_size: int, port: int, cfg: dict[str, Any]) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    train(cfg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_same_weights(a: Path, b: Path, atol: float) -> None:
    wa, _ = read_weights(a / "last.safetensors")
    wb, _ = read_weights(b / "last.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=atol, rtol=0)


def test_two_gloo_processes_match_one(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    try:
        single = train(config(tmp_path, "single", batch_size=16))
    finally:
        torch.set_num_threads(threads)
    mp.spawn(_worker, args=(2, free_port(), config(tmp_path, "ddp", batch_size=8)), nprocs=2, join=True)
    run = tmp_path / "ddp"
    assert_same_weights(tmp_path / "single", run, atol=1e-6)
    # rank 0 alone wrote the outputs: one line per epoch, one summary, the same metrics
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1] and records[-1]["step"] == 8
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval"]["top1"] == single["eval"]["top1"]
    assert abs(summary["eval"]["loss"] - single["eval"]["loss"]) < 1e-5
    assert not list(tmp_path.glob("toy_ddp-*"))  # no stray per-rank run folders


def test_gradient_accumulation_matches_large_batch(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    try:
        train(config(tmp_path, "large", batch_size=16))
        train(config(tmp_path, "accumulated", batch_size=8, accum_steps=2))
    finally:
        torch.set_num_threads(threads)
    assert_same_weights(tmp_path / "large", tmp_path / "accumulated", atol=1e-6)
