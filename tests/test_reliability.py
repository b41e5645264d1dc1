"""Failures end cleanly (issue 13): a non-finite loss stops training and keeps the good checkpoints, JSON
files stay strict JSON, every error is one line with exit code 2 (OS errors, exports onto a full disk,
outputs under a regular file), interrupted writes leave nothing behind, resume is checked against the run,
and `check-data` finds bad samples up front."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from unireplknet.cli import DEBUG_ENV, app
from unireplknet.config import parse_overrides, resolve_config
from unireplknet.engine import NonFiniteError, train
from unireplknet.engine.report import append_jsonl, write_json
from unireplknet.files import describe_os_error, remove_stale_temp_files
from unireplknet.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")

# 2 classes x 8 images of 16x16 in train and val: 4 optimizer steps of 4 images per epoch.
TINY = [
    "model.depths=[1,1,1,1]",
    "model.dims=[8,16,32,64]",
    "model.kernel_sizes=[[3],[7],[7],[3]]",
    "data.img_size=16",
    "data.batch_size=4",
    "data.eval_batch_size=8",
    "train.threads=1",
]


def invoke(*args: object) -> object:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def one_error(result: object, *words: str) -> str:
    """The single ``error:`` line of a failed command (exit code 2, no traceback), checked for ``words``."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.output.rstrip().endswith(errors[0]), result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def strict_json(text: str) -> object:
    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def image_folders(root: Path, per_class: int = 8) -> Path:
    for split in ("train", "val"):
        for c, cls in enumerate(("cat", "dog")):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                color = (c * 200, i * 30, 50)
                Image.new("RGB", (16, 16), color=color).save(root / split / cls / f"{i}.png")
    return root


def config(tmp_path: Path, name: str, *extra: str) -> dict:
    data = tmp_path / "data" if (tmp_path / "data").is_dir() else image_folders(tmp_path / "data")
    items = [*TINY, f"data.root={data}", f"output.dir={tmp_path / 'runs'}", f"output.name={name}", *extra]
    return resolve_config(get_task("classify").config_schema, {"task": "classify"}, parse_overrides(items))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("finished")
    train(config(tmp, "done", "train.epochs=1"))
    return tmp / "runs" / "done"


# -- point 3: non-finite loss ---------------------------------------------------------------------
def test_diverging_run_stops_with_one_line_and_keeps_good_checkpoints(tmp_path: Path) -> None:
    image_folders(tmp_path / "data")
    # lr 1e30: the first step leaves huge (finite) weights, the second step's loss is not finite
    result = invoke(
        "train", *sets([*TINY, "optim.lr=1e30", "optim.warmup_epochs=0", "train.epochs=2"]),
        "--data", tmp_path / "data", "--output", tmp_path / "runs", "--name", "diverged",
    )  # fmt: skip
    one_error(result, "training loss is", "epoch 1, step 2", "train.skip_nonfinite_steps", "check-data")
    run = tmp_path / "runs" / "diverged"
    assert not (run / "summary.json").exists() and not (run / "last.safetensors").exists()
    assert not (run / "best.safetensors").exists()
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


class _NanGrad(torch.autograd.Function):
    """Identity forward, NaN gradient: a finite loss whose step makes the weights NaN."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return torch.full_like(grad, float("nan"))


def _poisoned_loss(
    monkeypatch: pytest.MonkeyPatch, *, nan_loss: set[int] = frozenset(), nan_grad: set[int] = frozenset()
):
    """Replace the classify loss so that the given (1-based) training calls return NaN / give NaN gradients."""
    task_cls = get_task("classify")
    original = task_cls.loss
    calls = {"train": 0}

    def loss(self, outputs, targets, train):
        if not train:
            return original(self, outputs, targets, train)
        calls["train"] += 1
        if calls["train"] in nan_grad:
            outputs = _NanGrad.apply(outputs)
        value = original(self, outputs, targets, train)
        return value * float("nan") if calls["train"] in nan_loss else value

    monkeypatch.setattr(task_cls, "loss", loss)
    return calls


def test_nonfinite_steps_are_skipped_up_to_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _poisoned_loss(monkeypatch, nan_loss={2, 3})
    summary = train(config(tmp_path, "skips", "train.epochs=1", "train.skip_nonfinite_steps=2"))
    assert "step skipped (2 of at most 2" in capsys.readouterr().err
    run = tmp_path / "runs" / "skips"
    record = strict_json((run / "metrics.jsonl").read_text())
    assert record["step"] == 4 and record["train_loss"] is not None  # two steps applied, two dropped
    assert summary["eval"]["loss"] == pytest.approx(summary["eval"]["loss"])  # finite, not NaN
    strict_json((run / "summary.json").read_text())

    _poisoned_loss(monkeypatch, nan_loss={2, 3, 4})
    with pytest.raises(NonFiniteError, match="after 2 skipped steps"):
        train(config(tmp_path, "too-many", "train.epochs=1", "train.skip_nonfinite_steps=2"))


def test_nan_weights_never_replace_good_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # epoch 1 trains normally; the last step of epoch 2 (call 8) makes the weights NaN with a finite loss
    _poisoned_loss(monkeypatch, nan_grad={8})
    cfg = config(tmp_path, "nan-weights", "train.epochs=2")
    run = tmp_path / "runs" / "nan-weights"
    with pytest.raises(NonFiniteError, match="weights became non-finite"):
        train(cfg)
    records = (run / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 1  # epoch 1 only
    from unireplknet.engine import load_state, read_weights

    for name in ("last.safetensors", "best.safetensors"):
        weights, info = read_weights(run / name)
        assert info["epoch"] == 1 and all(torch.isfinite(v).all() for v in weights.values())
    saved = load_state(run / "train_state.safetensors")
    assert saved["epoch"] == 1 and all(torch.isfinite(v).all() for v in saved["model"].values())


def test_finiteness_check_sees_nan_and_inf_anywhere() -> None:
    from unireplknet.engine.trainer import _all_finite

    weights = {"w": torch.ones(4, 3), "steps": torch.zeros(2, dtype=torch.long), "empty": torch.zeros(0)}
    assert _all_finite(weights) and _all_finite({})
    for bad in (float("nan"), float("inf"), float("-inf")):
        weights["w"][2, 1] = bad
        assert not _all_finite(weights)
        assert not _all_finite({"half": weights["w"].bfloat16()})
        weights["w"][2, 1] = 1.0


def test_metrics_files_are_strict_json(tmp_path: Path) -> None:
    append_jsonl(tmp_path / "m.jsonl", {"loss": float("nan"), "top1": float("inf"), "nested": [float("-inf"), 1.5]})
    assert strict_json((tmp_path / "m.jsonl").read_text()) == {"loss": None, "top1": None, "nested": [None, 1.5]}
    write_json(tmp_path / "s.json", {"eval": {"loss": float("nan")}})
    assert strict_json((tmp_path / "s.json").read_text()) == {"eval": {"loss": None}}
    assert not list(tmp_path.glob(".*"))


# -- point 5: one line, exit code 2 ---------------------------------------------------------------
def test_outputs_under_a_regular_file(finished_run: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    last = finished_run / "last.safetensors"
    one_error(invoke("export", last, blocker / "m.onnx"), str(blocker), "is a file, not a folder")
    one_error(invoke("export", last, blocker / "sub" / "m.pt"), str(blocker), "is a file, not a folder")
    one_error(invoke("reparam", last, blocker / "d.safetensors"), str(blocker), "is a file, not a folder")
    result = invoke("train", *sets(TINY), "--data", tmp_path / "data", "--output", blocker, "--epochs", "1")
    one_error(result, str(blocker), "is a file, not a folder")
    assert blocker.read_text() == "x"


def test_os_errors_are_one_line(finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import unireplknet.export as exporter

    def refuse(path: object, data: bytes) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(exporter, "atomic_write_bytes", refuse)
    one_error(invoke("export", finished_run / "last.safetensors", tmp_path / "m.pt"), "m.pt", "no permission")
    error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/y")
    assert describe_os_error(error) == "No space left on device: /x/y; free some space or write to another location"


def test_unexpected_errors_are_one_line_unless_debug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import unireplknet.flops

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("deep failure\nsecond line of a C++ message")

    monkeypatch.setattr(unireplknet.flops, "model_info", broken)
    one_error(invoke("info", "unireplknet_a"), "RuntimeError: deep failure", "--debug")
    monkeypatch.setenv(DEBUG_ENV, "0")  # restored after the test: --debug sets it
    with pytest.raises(RuntimeError, match="deep failure"):
        invoke("--debug", "info", "unireplknet_a")


def _export_subprocess(args: list[str], preexec=None, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "unireplknet", *args],
        env=env, capture_output=True, text=True, timeout=300, preexec_fn=preexec,
    )  # fmt: skip


def _limit_file_size() -> None:
    # Writes beyond 20 kB fail (EFBIG) as on a full disk; ignore the signal so the write returns the error.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


@pytest.mark.parametrize("name", ["m.pt", "m.onnx"])
def test_export_onto_a_full_disk_is_one_line(finished_run: Path, tmp_path: Path, name: str) -> None:
    """TorchScript's C++ writer used to abort the process here (c10::Error, exit code 134)."""
    target = tmp_path / name
    (tmp_path / f".{name}.tmp").write_bytes(b"left by a crashed export")
    (tmp_path / f"{name}.tmp").write_bytes(b"left by an older version")
    result = _export_subprocess(["export", str(finished_run / "last.safetensors"), str(target)], _limit_file_size)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "File too large" in lines[-1] and str(target) in lines[-1], lines
    assert "Traceback" not in result.stderr and "c10::Error" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no temporary file (old ones removed)


def _tiny_tmpfs_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _tiny_tmpfs_available(), reason="needs `unshare` with user namespaces to mount a tiny tmpfs")
def test_torchscript_export_onto_a_really_full_filesystem(finished_run: Path, tmp_path: Path) -> None:
    """A 64 kB tmpfs (mounted in a private user+mount namespace, no root needed) really runs out of space."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    command = (
        f"mount -t tmpfs -o size=64k tmpfs {mount} && "
        f"{sys.executable} -m unireplknet export {finished_run / 'last.safetensors'} {mount / 'm.pt'}; "
        f"echo rc=$?; ls -A {mount}"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", command],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "rc=2" in result.stdout, result.stdout + result.stderr[-2000:]
    assert result.stdout.strip().endswith("rc=2"), result.stdout  # `ls -A` listed nothing: no file left
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: No space left on device") and "m.pt" in error, result.stderr[-2000:]


# -- point 7: nothing left behind -----------------------------------------------------------------
def test_stale_temp_files_are_named_precisely(tmp_path: Path) -> None:
    for name in (".m.onnx.tmp", ".m.onnx.ab12.tmp", "m.onnx.tmp", ".other.onnx.tmp", "keep.tmp", "m.onnx"):
        (tmp_path / name).write_text("x")
    removed = remove_stale_temp_files(tmp_path, ["m.onnx"])
    assert sorted(p.name for p in removed) == [".m.onnx.ab12.tmp", ".m.onnx.tmp", "m.onnx.tmp"]
    assert sorted(p.name for p in remove_stale_temp_files(tmp_path)) == [".other.onnx.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tmp", "m.onnx"]


def _unfinished_copy(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of a finished run as a crash during the final evaluation leaves it (no summary, no deploy file)."""
    run = tmp_path / "runs" / finished_run.name
    shutil.copytree(finished_run, run)
    (run / "summary.json").unlink()
    (run / "deploy.safetensors").unlink()
    config_file = run / "config.yaml"
    cfg = yaml.safe_load(config_file.read_text())
    cfg["output"]["dir"] = str(tmp_path / "runs")
    config_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return run


def test_resume_cleans_up_and_finishes(finished_run: Path, tmp_path: Path) -> None:
    run = _unfinished_copy(finished_run, tmp_path)
    leftovers = [".train_state.safetensors.x1y2.tmp", ".last.safetensors.tmp", ".summary.json.tmp"]
    for name in leftovers:
        (run / name).write_bytes(b"\0" * 1000)
    result = invoke("train", "--resume", run)
    assert result.exit_code == 0, result.output
    assert "removed 3 temporary file(s)" in result.output
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert (run / "summary.json").is_file() and (run / "deploy.safetensors").is_file()


# -- point 8: resume is checked -------------------------------------------------------------------
def test_resume_of_a_finished_run_does_nothing(finished_run: Path) -> None:
    before = {p.name: p.read_bytes() for p in finished_run.iterdir() if p.is_file()}
    result = invoke("train", "--resume", finished_run)
    assert result.exit_code == 0, result.output
    assert "is a finished run" in result.output and "nothing to do" in result.output
    assert {p.name: p.read_bytes() for p in finished_run.iterdir() if p.is_file()} == before


def test_resume_refuses_a_weights_file_as_train_state(finished_run: Path, tmp_path: Path) -> None:
    run = _unfinished_copy(finished_run, tmp_path)
    shutil.copy(run / "last.safetensors", run / "train_state.safetensors")
    one_error(invoke("train", "--resume", run), "is a weights file", "not a training state", "model.checkpoint")


def test_resume_refuses_an_edited_config(finished_run: Path, tmp_path: Path) -> None:
    run = _unfinished_copy(finished_run, tmp_path)
    config_file = run / "config.yaml"
    cfg = yaml.safe_load(config_file.read_text())
    cfg["data"]["batch_size"] = 8
    cfg["train"]["threads"] = 2  # how the run executes may change
    config_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    one_error(invoke("train", "--resume", run), "config.yaml changed", "data.batch_size 4 -> 8")
    assert not (run / "summary.json").exists()


def test_resume_refuses_changed_data(finished_run: Path, tmp_path: Path) -> None:
    run = _unfinished_copy(finished_run, tmp_path)
    data = Path(yaml.safe_load((run / "config.yaml").read_text())["data"]["root"])
    extra = data / "train" / "cat" / "extra.png"
    Image.new("RGB", (16, 16)).save(extra)
    try:
        one_error(invoke("train", "--resume", run), "the data changed", "train_samples 16 -> 17")
    finally:
        extra.unlink()


# -- point 2 / case 12: check the data up front ---------------------------------------------------
def test_check_data_lists_bad_images(tmp_path: Path) -> None:
    data = image_folders(tmp_path / "data")
    ok = invoke("check-data", "--data", data, *sets(["data.img_size=16"]))
    assert ok.exit_code == 0, ok.output
    assert "checked 32 samples (train 16, val 16)" in ok.output
    (data / "train" / "dog" / "3.png").write_bytes(b"not an image")
    (data / "val" / "cat" / "5.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = invoke("check-data", "--data", data, *sets(["data.img_size=16"]))
    one_error(result, "2 of 32 samples", "fix or remove")
    bad = [line for line in result.output.splitlines() if line.startswith("bad: ")]
    assert len(bad) == 2 and "dog/3.png" in bad[0] and "cat/5.png" in bad[1], result.output
    # train --check-data stops before the run folder exists
    result = invoke("train", "--check-data", "--data", data, *sets(TINY), "--output", tmp_path / "runs")
    one_error(result, "2 of 32 samples")
    assert not (tmp_path / "runs").exists()


def test_check_data_flags_non_finite_samples() -> None:
    from torch.utils.data import Subset, TensorDataset

    from unireplknet.engine.check import check_dataset, sample_name

    values = torch.ones(6, 3)
    values[4, 1] = float("nan")
    dataset = Subset(TensorDataset(values, torch.zeros(6)), [0, 2, 4])
    bad = list(check_dataset("train", dataset))
    assert [(b.index, b.name, b.problem) for b in bad] == [(2, "sample 4", "holds NaN or inf values")]

    class Files(TensorDataset):
        samples = [("a.wav", 0), ("b.wav", 1)]

    assert sample_name(Files(values[:2]), 1) == "b.wav"


# -- point 2: data validated where it enters ------------------------------------------------------
CSV_HEAD = "time,a,b\n"
CSV_ROWS = [f"2020-01-01 {h:02d}:00,{h},{10 * h}" for h in range(6)]


def write_csv(path: Path, rows: list[str], head: str = CSV_HEAD) -> Path:
    path.write_text(head + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda rows: rows.__setitem__(3, "2020-01-01 03:00,inf,30"), ["column 'a' row 5", "infinite"]),
        (
            lambda rows: rows.__setitem__(2, "2020-01-01 02:00,12..5,20"),
            ["column 'a' row 4", "'12..5'", "not a number"],
        ),
        (lambda rows: rows.__setitem__(4, "yesterday,4,40"), ["column 'time' row 6", "'yesterday'", "not a timestamp"]),
        (lambda rows: rows.__setitem__(1, "2020-01-01 01:00,,10"), ["column 'a' row 3", "empty", "data.gaps=ffill"]),
    ],
)
def test_csv_problems_name_file_column_and_row(tmp_path: Path, edit, words: list[str]) -> None:
    from unireplknet.modalities.forecast import load_csv_series

    rows = list(CSV_ROWS)
    edit(rows)
    path = write_csv(tmp_path / "s.csv", rows)
    with pytest.raises(ValueError) as error:
        load_csv_series(path)
    message = str(error.value)
    assert message.startswith(str(path)) and "\n" not in message
    for word in words:
        assert word in message, message


def test_csv_without_time_column_or_values(tmp_path: Path) -> None:
    from unireplknet.modalities.forecast import load_csv_series

    no_time = write_csv(tmp_path / "nt.csv", [f"{h},{10 * h}" for h in range(6)], head="a,b\n")
    with pytest.raises(ValueError, match="'a' holds numbers, not timestamps: the CSV needs a time column"):
        load_csv_series(no_time)
    empty_column = write_csv(tmp_path / "e.csv", [f"2020-01-01 {h:02d}:00,{h}," for h in range(6)])
    with pytest.raises(ValueError, match="column 'b' has no values"):
        load_csv_series(empty_column)


def test_csv_gap_repairs_are_opt_in_and_reported(tmp_path: Path, capsys) -> None:
    from unireplknet.modalities.forecast import load_csv_series

    rows = list(CSV_ROWS)
    rows[2] = "2020-01-01 02:00,,20"
    rows[0], rows[5] = rows[5], rows[0]  # out of order: sorted by time first
    path = write_csv(tmp_path / "g.csv", [r + ",site" for r in rows], head="time,a,b,station\n")
    values, _, names = load_csv_series(path, gaps="interpolate")
    assert names == ["a", "b"]
    assert values[:, 0].tolist() == [0, 1, 2, 3, 4, 5]  # linear in time
    err = capsys.readouterr().err
    assert "filled 1 empty cells (a 1) by data.gaps=interpolate" in err and "left out: station" in err
    values, _, _ = load_csv_series(path, gaps="ffill")
    assert values[:, 0].tolist() == [0, 1, 1, 3, 4, 5]


def test_bad_csv_stops_training_before_the_run_folder(tmp_path: Path) -> None:
    rows = list(CSV_ROWS) * 20
    rows = [f"2020-01-{1 + i // 24:02d} {i % 24:02d}:00,{i % 7},{i % 5}" for i in range(len(rows))]
    rows[50] = rows[50].rsplit(",", 1)[0] + ",inf"
    path = write_csv(tmp_path / "s.csv", rows)
    result = invoke(
        "train", "--task", "forecast", "--set", "data.dataset=csv", "--set", f"data.path={path}",
        "--set", "data.columns=null", "--output", tmp_path / "runs",
    )  # fmt: skip
    one_error(result, str(path), "column 'b' row 52", "infinite")
    assert not (tmp_path / "runs").exists()


def test_audio_with_nan_or_no_samples_names_the_file(tmp_path: Path) -> None:
    import numpy as np
    import soundfile

    from unireplknet.modalities.audio import load_audio

    wave = np.zeros(1600, dtype=np.float32)
    wave[800] = np.nan
    soundfile.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"nan.wav' holds NaN/inf samples \(1 of 1600, the first at 0.050 s\)"):
        load_audio(tmp_path / "nan.wav")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match=r"empty.wav' is empty \(0 samples\)"):
        load_audio(tmp_path / "empty.wav")
    soundfile.write(tmp_path / "ok.wav", np.full(800, 0.5, dtype=np.float32), 8000)
    assert load_audio(tmp_path / "ok.wav").shape == (1600,)  # resampled to 16 kHz


def test_full_disk_during_training_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """safetensors reports a failed write as its own error type; it reaches the user as the OS error it is."""
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*args: object, **kwargs: object) -> None:
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    image_folders(tmp_path / "data")
    result = invoke(
        "train", *sets([*TINY, "train.epochs=1"]), "--data", tmp_path / "data",
        "--output", tmp_path / "runs", "--name", "full",
    )  # fmt: skip
    one_error(result, "No space left on device", "last.safetensors", "free some space")
    assert not [p for p in (tmp_path / "runs" / "full").iterdir() if p.name.endswith(".tmp")]


def test_figures_are_written_atomically(tmp_path, monkeypatch):
    """A report figure is rendered in memory and renamed into place: a failure while writing leaves the
    previous file intact and no temporary file behind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from unireplknet import files

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = files.atomic_save_figure(fig, tmp_path / "curves.png", dpi=50)
    assert path.read_bytes().startswith(b"\x89PNG")
    previous = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        files.atomic_save_figure(fig, path, dpi=80)
    plt.close(fig)
    assert path.read_bytes() == previous and sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]
