"""The command line: a tiny end-to-end run, then eval / predict / reparam / info / export on it, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import unireplknet
from unireplknet.cli import app
from unireplknet.data import FASHION_MNIST_DIRS, find_fashion_mnist, read_idx
from unireplknet.engine import read_weights

TINY = [
    "model.depths=[1,1,1,1]",
    "model.dims=[8,16,32,64]",
    "model.kernel_sizes=[[3],[7],[7],[3]]",
    "data.train_subset=128",
    "data.eval_subset=96",
    "data.batch_size=32",
    "data.eval_batch_size=48",
    "train.epochs=2",
    "train.epoch_eval_size=48",
    "train.threads=1",
]

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


def sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def invoke(*args: str) -> object:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    result = invoke("train", *sets(TINY), "--output", out, "--name", "tiny")
    assert result.exit_code == 0, result.output
    return out / "tiny"


@pytest.fixture(scope="module")
def fmnist_pngs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """Four Fashion-MNIST test images written as PNG files, with their labels."""
    folder = tmp_path_factory.mktemp("pngs")
    root = find_fashion_mnist()
    images = read_idx(root / "t10k-images-idx3-ubyte.gz")[:4]
    labels = read_idx(root / "t10k-labels-idx1-ubyte.gz")[:4].tolist()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"img{i}.png")
    return folder, labels


def test_help_everywhere() -> None:
    for command in ([], ["train"], ["eval"], ["predict"], ["reparam"], ["info"], ["export"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_train_outputs(run_dir: Path) -> None:
    for name in ("config.yaml", "metrics.jsonl", "last.safetensors", "best.safetensors", "deploy.safetensors",
                 "train_state.safetensors", "curves.png", "confusion_matrix.png", "summary.json"):  # fmt: skip
        assert (run_dir / name).is_file(), name
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]
    assert {"train_loss", "train_top1", "eval_loss", "eval_top1", "eval_top5", "lr"} <= set(records[0])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["eval_samples"] == 96 and summary["train_samples"] == 128
    assert summary["deploy_max_abs_diff"] < 1e-4
    assert summary["eval"]["top1"] == pytest.approx(summary["deploy_eval"]["top1"])
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["model"]["dims"] == [8, 16, 32, 64] and cfg["data"]["train_subset"] == 128
    # the deploy file is the re-parameterized structure and loads with the public API
    weights, info = read_weights(run_dir / "deploy.safetensors")
    assert info["structure"] == "deploy" and not any("running_var" in k for k in weights)
    model = unireplknet.create_model(
        "unireplknet_a", num_classes=10, in_chans=1, deploy=True, depths=[1, 1, 1, 1], dims=[8, 16, 32, 64],
        kernel_sizes=[[3], [7], [7], [3]], checkpoint=run_dir / "deploy.safetensors",
    )  # fmt: skip
    assert model.is_deploy


def test_eval_both_structures_agree(run_dir: Path) -> None:
    results = []
    for name in ("last.safetensors", "deploy.safetensors"):
        # training validated on held-out training images and reported on the test images
        result = invoke("eval", run_dir / name, "--set", "data.eval_split=test", "--json")
        assert result.exit_code == 0, result.output
        results.append(json.loads(result.output))
    summary = json.loads((run_dir / "summary.json").read_text())
    for r in results:
        assert r["samples"] == 96
        assert r["top1"] == pytest.approx(summary["eval"]["top1"])
        assert r["top5"] == pytest.approx(summary["eval"]["top5"])
        assert r["loss"] == pytest.approx(summary["eval"]["loss"], rel=1e-4)
    table = invoke("eval", run_dir / "last.safetensors")
    assert "top1" in table.output and "top5" in table.output


def test_predict_json_matches_model(run_dir: Path, fmnist_pngs: tuple[Path, list[int]]) -> None:
    folder, _ = fmnist_pngs
    result = invoke("predict", run_dir / "last.safetensors", folder, "--top-k", 3, "--json")
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.output)
    assert [Path(p["path"]).name for p in predictions] == [f"img{i}.png" for i in range(4)]
    # same probabilities as running the model on the IDX pixels directly
    weights, _ = read_weights(run_dir / "last.safetensors")
    model = unireplknet.create_model(
        "unireplknet_a", num_classes=10, in_chans=1, depths=[1, 1, 1, 1], dims=[8, 16, 32, 64],
        kernel_sizes=[[3], [7], [7], [3]],
    )  # fmt: skip
    model.load_state_dict(weights)
    model.eval()
    pixels = np.stack([np.array(Image.open(folder / f"img{i}.png")) for i in range(4)])
    x = (torch.from_numpy(pixels).float()[:, None] / 255 - 0.2860) / 0.3530
    with torch.no_grad():
        probs = model(x).softmax(-1)
    for p, row in zip(predictions, probs, strict=True):
        assert len(p["top"]) == 3
        best = p["top"][0]
        assert best["index"] == int(row.argmax())
        assert best["probability"] == pytest.approx(float(row.max()), abs=1e-5)
        assert best["class"] == unireplknet.data.FASHION_MNIST_CLASSES[best["index"]]
    text = invoke("predict", run_dir / "last.safetensors", folder / "img0.png")
    assert text.exit_code == 0 and "img0.png" in text.output and "%" in text.output


def test_reparam_command(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy.safetensors"
    result = invoke("reparam", run_dir / "last.safetensors", out)
    assert result.exit_code == 0, result.output
    assert "max |train - deploy|" in result.output
    diff = float(result.output.split("):")[1].split()[0])
    assert diff < 1e-4
    weights, info = read_weights(out)
    assert info["structure"] == "deploy" and not any(k.endswith("running_var") for k in weights)
    again = invoke("reparam", out, tmp_path / "again.safetensors")
    assert again.exit_code == 2 and "already" in again.output


def test_reparam_foreign_checkpoint(tmp_path: Path) -> None:
    model = unireplknet.create_model("unireplknet_a", num_classes=7, in_chans=3).eval()
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    missing = invoke("reparam", tmp_path / "plain.pth", tmp_path / "out.safetensors")
    assert missing.exit_code == 2 and "--model" in missing.output
    result = invoke(
        "reparam", tmp_path / "plain.pth", tmp_path / "out.safetensors", "--model", "unireplknet_a", "--size", 64
    )
    assert result.exit_code == 0, result.output
    deployed = unireplknet.create_model(
        "unireplknet_a", num_classes=7, deploy=True, checkpoint=tmp_path / "out.safetensors"
    )
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (deployed(x) - model(x)).abs().max() < 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_torchscript(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("export", run_dir / "last.safetensors", tmp_path / "model.pt")
    assert result.exit_code == 0, result.output
    scripted = torch.jit.load(str(tmp_path / "model.pt"))
    weights, _ = read_weights(run_dir / "deploy.safetensors")
    model = unireplknet.create_model(
        "unireplknet_a", num_classes=10, in_chans=1, deploy=True, depths=[1, 1, 1, 1], dims=[8, 16, 32, 64],
        kernel_sizes=[[3], [7], [7], [3]],
    )  # fmt: skip
    model.load_state_dict(weights)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model.eval()(x), atol=1e-5, rtol=1e-4)
    assert_clean_error(invoke("export", run_dir / "last.safetensors", tmp_path / "model.xyz"), "--format onnx")


def test_info_json() -> None:
    result = invoke("info", "unireplknet_a", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["params_deploy"] < info["params_train"]
    assert abs(info["params_deploy"] / 1e6 - 4.4) < 0.1
    table = invoke("info", "unireplknet_f", "--size", 32)
    assert "FLOPs" in table.output and "params" in table.output
    assert invoke("info", "unireplknet_zz").exit_code == 2


# -- bad input: one line, exit code 2, nothing that looks like a finished run ----------------------
def assert_clean_error(result: object, *words: str) -> None:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.output.rstrip().endswith(errors[0]), result.output
    for word in words:
        assert word in errors[0], errors[0]


def test_missing_data_folder(tmp_path: Path) -> None:
    result = invoke("train", "--data", tmp_path / "nowhere", "--output", tmp_path / "runs")
    assert_clean_error(result, "nowhere", "dataset-fashion-mnist")
    assert not (tmp_path / "runs").exists()


def test_missing_default_dataset_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import unireplknet.data.fashion_mnist as fm

    monkeypatch.setattr(fm, "FASHION_MNIST_DIRS", (tmp_path / "a", tmp_path / "b"))
    result = invoke("train", "--output", tmp_path / "runs")
    assert_clean_error(result, "apt-get install dataset-fashion-mnist", "--data")
    assert FASHION_MNIST_DIRS[0].name == "fashion-mnist"


def test_empty_class_folder(tmp_path: Path) -> None:
    for split in ("train", "val"):
        (tmp_path / "data" / split / "cat").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "data" / split / "cat" / "a.png")
    (tmp_path / "data" / "train" / "dog").mkdir()
    result = invoke("train", "--data", tmp_path / "data", "--output", tmp_path / "runs")
    assert_clean_error(result, "dog", "no images")
    assert not (tmp_path / "runs").exists()


def test_unreadable_image(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / "data" / split / cls).mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (16, 16), color=(i * 40, 0, 0)).save(tmp_path / "data" / split / cls / f"{i}.png")
    (tmp_path / "data" / "train" / "dog" / "2.png").write_bytes(b"not an image")
    result = invoke(
        "train", "--data", tmp_path / "data", "--output", tmp_path / "runs", "--name", "bad",
        *sets(TINY[:3] + ["data.img_size=16", "data.batch_size=4", "train.epochs=1"]),
    )  # fmt: skip
    assert_clean_error(result, "cannot read image", "2.png")
    assert not (tmp_path / "runs" / "bad" / "summary.json").exists()
    assert not (tmp_path / "runs" / "bad" / "last.safetensors").exists()


def test_unknown_config_key(tmp_path: Path) -> None:
    result = invoke("train", "--set", "train.lrr=0.1", "--output", tmp_path / "runs")
    assert_clean_error(result, "train.lrr")
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  nmae: unireplknet_f\n")
    assert_clean_error(invoke("train", "--config", config, "--output", tmp_path / "runs"), "model.nmae")
    assert_clean_error(invoke("train", "--set", "nonsense", "--output", tmp_path / "runs"), "section.key=value")
    assert not (tmp_path / "runs").exists()


def test_checkpoint_of_another_variant(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("eval", run_dir / "last.safetensors", "--set", "model.dims=[16,32,64,128]")
    assert_clean_error(result, "checkpoint does not fit the model")
    other = unireplknet.create_model("unireplknet_f", num_classes=10, in_chans=1)
    torch.save(other.state_dict(), tmp_path / "f.pth")
    result = invoke("reparam", tmp_path / "f.pth", tmp_path / "out.safetensors", "--model", "unireplknet_a")
    assert_clean_error(result, "unireplknet_f")
    assert not (tmp_path / "out.safetensors").exists()


def test_unreadable_predict_input(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    assert_clean_error(invoke("predict", run_dir / "last.safetensors", tmp_path / "broken.png"), "broken.png")
    assert_clean_error(invoke("predict", run_dir / "last.safetensors", tmp_path / "nothing.png"), "nothing.png")


def test_run_folder_is_not_overwritten(run_dir: Path) -> None:
    result = invoke("train", *sets(TINY), "--output", run_dir.parent, "--name", run_dir.name)
    assert_clean_error(result, "already holds a run", "--resume")
