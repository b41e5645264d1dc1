"""The paper-recipe switches run through the engine together: bf16 autocast, channels_last, layer-wise
lr decay, gradient checkpointing, clipping, EMA, Mixup/CutMix, RandAugment-free tensor augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from unireplknet.config import parse_overrides, resolve_config
from unireplknet.engine import train
from unireplknet.tasks import get_task


@pytest.fixture(autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_recipe_switches(tmp_path: Path) -> None:
    settings = [
        "model.depths=[1,1,1,1]", "model.dims=[8,16,32,64]", "model.kernel_sizes=[[3],[7],[7],[3]]",
        "model.drop_path_rate=0.1", "model.grad_checkpointing=true",
        "data.train_subset=64", "data.eval_subset=32", "data.batch_size=16", "data.img_size=32",
        "aug.mixup=0.3", "aug.cutmix=0.3",
        "train.epochs=1", "train.amp=bf16", "train.channels_last=true", "optim.layer_decay=0.8",
        "optim.clip_grad=1.0", "train.ema=true", "train.ema_decay=0.5", "train.accum_steps=2",
        f"output.dir={tmp_path}", "output.name=recipe",
    ]  # fmt: skip
    cfg = resolve_config(get_task("classify").config_schema, {"task": "classify"}, parse_overrides(settings))
    summary = train(cfg)
    record = json.loads((tmp_path / "recipe" / "metrics.jsonl").read_text())
    assert record["step"] == 2 and torch.isfinite(torch.tensor(record["train_loss"]))
    assert 0 <= summary["eval"]["top1"] <= 100 and summary["eval_samples"] == 32
    assert summary["deploy_max_abs_diff"] < 0.1  # bf16 outputs of two arithmetically different graphs


def test_bad_engine_settings(tmp_path: Path) -> None:
    base = ["data.train_subset=8", "data.eval_subset=8", "data.batch_size=4", f"output.dir={tmp_path}"]
    schema = get_task("classify").config_schema
    for extra, message in (
        (["train.amp=fp8"], "'train.amp' must be one of 'bf16', 'fp16' or null"),
        (["train.accum_steps=0"], "'train.accum_steps' must be an integer >= 1"),
    ):
        with pytest.raises(ValueError, match=message):  # the schema refuses them
            resolve_config(schema, {"task": "classify"}, parse_overrides(base + extra))
    cfg = resolve_config(schema, {"task": "classify"}, parse_overrides([*base, "data.batch_size=16"]))
    with pytest.raises(ValueError, match="fewer than one optimizer step"):
        train(cfg)
    assert not any(tmp_path.iterdir())  # nothing written for a run that could not start
