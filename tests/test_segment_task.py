"""``--task segment`` end to end on generated image/mask folders: train, evaluate, predict, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from unireplknet.cli import app
from unireplknet.config import resolve_config
from unireplknet.dense.datasets import read_mask
from unireplknet.engine import train
from unireplknet.tasks import get_task

TINY_MODEL = {
    "name": "unireplknet_a",
    "depths": [1, 1, 1, 1],
    "dims": [8, 16, 32, 64],
    "kernel_sizes": [[3], [7], [7], [3]],
    "head_kwargs": {"decoder_channels": 16},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _scene(rng: np.random.Generator, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A dark image with a bright square (class 1) and a mid-grey disc (class 2)."""
    image = np.full((size, size, 3), 20, dtype=np.uint8)
    mask = np.zeros((size, size), dtype=np.uint8)
    y, x = rng.integers(0, size // 2, 2)
    image[y : y + 12, x : x + 12] = 230
    mask[y : y + 12, x : x + 12] = 1
    cy, cx = rng.integers(8, size - 8, 2)
    disc = (np.arange(size)[:, None] - cy) ** 2 + (np.arange(size)[None] - cx) ** 2 < 25
    image[disc] = 120
    mask[disc] = 2
    return image, mask


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(count):
            image, mask = _scene(rng)
            Image.fromarray(image).save(root / split / "images" / f"{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{i}.png")
    return root


def _cfg(folder, tmp_path, aug=None, **data):
    overrides = {
        "model": TINY_MODEL,
        "data": {
            "dataset": "folder", "root": str(folder), "num_classes": 3, "scale": 32, "eval_scale": None,
            "batch_size": 2, "eval_batch_size": 2, **data,
        },
        "aug": {"crop_size": [32, 32], **(aug or {})},
        "optim": {"lr": 1e-3, "warmup_epochs": 0, "layer_decay": 0.9},
        "train": {"epochs": 1, "device": "cpu", "threads": 1},
        "output": {"dir": str(tmp_path), "name": "run"},
    }  # fmt: skip
    return resolve_config(get_task("segment").config_schema, {"task": "segment"}, overrides)


def test_loss_decreases_over_a_few_steps(folder, tmp_path, assert_loss_decreases):
    task = get_task("segment")(_cfg(folder, tmp_path, aug={"ratio_range": [1.0, 1.0], "hflip": 0.0}))
    train_set, _ = task.build_datasets()
    images, labels = task.collate_fn(True)([train_set[i] for i in range(4)])
    assert_loss_decreases(task, images, labels)


def test_train_eval_predict_end_to_end(folder, tmp_path):
    summary = train(_cfg(folder, tmp_path))
    run = tmp_path / "run"
    assert set(summary["eval"]) >= {"mIoU", "mAcc", "aAcc", "loss"}
    assert summary["deploy_max_abs_diff"] < 1e-4
    assert summary["deploy_eval"]["mIoU"] == pytest.approx(summary["eval"]["mIoU"])

    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(run / "deploy.safetensors"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["mIoU"] == pytest.approx(summary["eval"]["mIoU"], abs=1e-6)

    image = folder / "val" / "images" / "0.png"
    out_dir = tmp_path / "pred"
    result = runner.invoke(
        app, ["predict", str(run / "best.safetensors"), str(image), "--json", "--set", f"predict.out_dir={out_dir}"]
    )
    assert result.exit_code == 0, result.output
    (prediction,) = json.loads(result.output)
    png = out_dir / "0_mask.png"
    assert prediction["mask_png"] == str(png) and prediction["size"] == [32, 32]
    with Image.open(png) as shown:
        assert shown.mode == "P"  # a colour picture whose pixel values are the class ids
    labels = read_mask(png)
    assert labels.shape == (32, 32) and int(labels.max()) < 3
    assert sum(c["area"] for c in prediction["classes"]) == pytest.approx(1.0)


def test_sliding_window_evaluation_of_a_rescaled_image(folder, tmp_path):
    cfg = _cfg(folder, tmp_path, eval_scale=48, eval_batch_size=1)
    cfg["model"].update(inference="slide", crop_size=[32, 32], crop_stride=[16, 16])
    task = get_task("segment")(cfg)
    _, val = task.build_datasets()
    image, labels = val[0]
    assert image.shape[-2:] == (48, 48) and labels.shape == (32, 32)  # scored at label resolution
    model = task.build_model().eval()
    metrics = task.new_metrics()
    with torch.no_grad():
        images, targets = task.collate_fn(False)([val[0]])
        outputs = model(images)
        metrics.update(outputs, targets, task.loss(outputs, targets, False))
    assert outputs.shape == (1, 3, 48, 48) and 0 <= metrics.compute()["mIoU"] <= 100


def test_bad_configs_name_the_fix(folder, tmp_path):
    with pytest.raises(ValueError, match="data.num_classes"):
        get_task("segment")(_cfg(folder, tmp_path, num_classes=None)).build_datasets()
    with pytest.raises(ValueError, match="'data.dataset' must be one of 'ade20k', 'folder', 'coins_demo', got 'voc'"):
        _cfg(folder, tmp_path, dataset="voc")
    result = CliRunner().invoke(app, ["train", "--task", "segment", "--set", "data.dataset=folder"])
    assert result.exit_code == 2 and "needs data.root" in result.output


def test_the_coins_demo_is_written_to_data_demo_dir_and_takes_no_data_root(folder, tmp_path):
    pytest.importorskip("skimage", reason="the demo is scikit-image's coins photograph")
    demo = tmp_path / "demo"
    task = get_task("segment")(_cfg(folder, tmp_path, dataset="coins_demo", root=None, demo_dir=str(demo)))
    train, val = task.build_datasets()
    assert (demo / "VERSION").is_file() and len(train) == 18 and len(val) == 1
    with pytest.raises(ValueError, match=r"coins_demo is a bundled demo .* data\.root \(--data\) is"):
        get_task("segment")(_cfg(folder, tmp_path, dataset="coins_demo")).build_datasets()
