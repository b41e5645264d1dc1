"""``--task audio`` (unireplknet.tasks.audio) on tiny generated wav files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("librosa")
soundfile = pytest.importorskip("soundfile")

from unireplknet.config import resolve_config  # noqa: E402
from unireplknet.engine import predict  # noqa: E402
from unireplknet.tasks import get_task  # noqa: E402

TINY_MODEL = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [7], [7], [3]]}
TINY_DATA = {"frames": 20, "n_mels": 32}
TINY_AUG = {"spec_augment": {"freq_mask": 4, "time_mask": 4}}


pytestmark = pytest.mark.usefixtures("one_thread")


def tone(path, freq: float, seconds: float = 0.3, rate: int = 16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return path


def make_task(data: dict, **aug):
    task_cls = get_task("audio")
    cfg = resolve_config(
        task_cls.config_schema, {"model": TINY_MODEL, "data": {**TINY_DATA, **data}, "aug": {**TINY_AUG, **aug}}
    )
    return task_cls(cfg)


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sounds")
    for label, freq in (("high", 2000), ("low", 200)):
        for i in range(5):
            tone(root / label / f"{i}.wav", freq * (1 + 0.05 * i))
    return root


def test_datasets_stats_and_model(folder_root):
    task = make_task({"dataset": "folders", "root": str(folder_root), "val_fraction": 0.2, "test_fraction": 0.0})
    train, val = task.build_datasets()
    assert task.classes == ["high", "low"] and (len(train), len(val)) == (8, 2)
    assert task.frontend.std > 0 and task.frontend.mean < 0
    x, y = train[0]
    assert x.shape == (1, 20, 32) and y in (0, 1)
    model = task.build_model()
    assert model.in_chans == 1 and model.num_classes == 2
    batch = torch.stack([val[i][0] for i in range(2)])
    logits = model(batch)
    assert logits.shape == (2, 2)
    loss = task.loss(logits, torch.tensor([0, 1]), train=False)
    assert torch.isclose(loss, torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])))


def test_end_of_run_report_uses_the_test_split(folder_root):
    task = make_task({"dataset": "folders", "root": str(folder_root), "val_fraction": 0.2, "test_fraction": 0.2})
    _, val = task.build_datasets()
    test = task.build_test_dataset()
    assert (len(val), len(test)) == (2, 2)
    assert not {path for path, _ in val.items} & {path for path, _ in test.items}
    on_test = make_task({"dataset": "folders", "root": str(folder_root), "val_fraction": 0.2, "test_fraction": 0.2})
    on_test.data["eval_split"] = "test"
    on_test.build_datasets()
    assert on_test.build_test_dataset() is None  # the evaluation set is already the test split


def test_spec_augment_null_disables_it(folder_root):
    task_cls = get_task("audio")
    data = {**TINY_DATA, "dataset": "folders", "root": str(folder_root), "val_fraction": 0.2, "test_fraction": 0.0}
    on = task_cls(resolve_config(task_cls.config_schema, {"model": TINY_MODEL, "data": data, "aug": TINY_AUG}))
    assert on.build_datasets()[0].spec_augment_args == {"freq_mask": 4, "time_mask": 4, "num_masks": 2}
    cfg = resolve_config(
        task_cls.config_schema, {"model": TINY_MODEL, "data": data, "aug": {**TINY_AUG, "spec_augment": None}}
    )
    assert task_cls(cfg).build_datasets()[0].spec_augment_args is None


def test_mixup_batch_transform_gives_soft_targets(folder_root):
    task = make_task({"dataset": "folders", "root": str(folder_root)}, mixup=0.5, label_smoothing=0.1)
    task.build_datasets()
    mix = task.batch_transform()
    for batch in (4, 3):
        x, y = mix(torch.randn(batch, 1, 20, 32), torch.arange(batch) % 2)
        assert x.shape == (batch, 1, 20, 32) and y.shape == (batch, 2)
        torch.testing.assert_close(y.sum(1), torch.ones(batch))
    logits = torch.randn(3, 2)
    expected = -(y * logits.log_softmax(-1)).sum(1).mean()
    torch.testing.assert_close(task.loss(logits, y, train=True), expected)
    assert make_task({"dataset": "folders", "root": str(folder_root)}, mixup=0).batch_transform() is None


def test_state_round_trip_and_predict(folder_root, tmp_path):
    task = make_task({"dataset": "folders", "root": str(folder_root)})
    task.build_datasets()
    model = task.build_model()
    restored = make_task({"dataset": "folders", "root": str(folder_root)})
    restored.load_state_dict(task.state_dict())
    assert (restored.classes, restored.frontend.mean, restored.frontend.std) == (
        task.classes,
        task.frontend.mean,
        task.frontend.std,
    )
    restored.build_datasets()  # keeps the checkpoint's statistics
    assert restored.frontend.mean == task.frontend.mean
    clip = tone(tmp_path / "query.ogg", 2000, rate=44100)
    (result,) = predict(restored, model, [clip], top_k=5)
    assert result["path"] == str(clip) and [t["class"] for t in result["top"]] in (["high", "low"], ["low", "high"])
    assert sum(t["probability"] for t in result["top"]) == pytest.approx(1.0, abs=1e-5)
    assert result["top"][0]["probability"] >= result["top"][1]["probability"]


def test_speech_commands_task_loads_noise(tmp_path):
    for word in ("go", "stop"):
        for i in range(3):
            tone(tmp_path / word / f"{i}.wav", 300 + 100 * i)
    tone(tmp_path / "_background_noise_" / "hum.wav", 50, seconds=2.0)
    (tmp_path / "validation_list.txt").write_text("go/0.wav\nstop/0.wav\n")
    (tmp_path / "testing_list.txt").write_text("go/1.wav\n")
    task = make_task({"dataset": "speech_commands", "root": str(tmp_path), "eval_split": "test"})
    train, test = task.build_datasets()
    assert (len(train), len(test), len(train.noise)) == (3, 1, 1) and task.classes == ["go", "stop"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dataset": "speech_commands"}, "needs data.root"),
        ({"dataset": "mp3s", "root": "."}, "'data.dataset' must be one of 'speech_commands', 'folders', 'sound_types'"),
        (
            {"dataset": "sound_types", "root": ".", "eval_split": "train"},
            "'data.eval_split' must be one of 'val', 'test'",
        ),
    ],
)
def test_bad_data_config(data, message):
    with pytest.raises(ValueError, match=message):
        make_task(data).build_datasets()


def test_cli_train_eval_predict(folder_root, tmp_path, cli):
    config = {
        "task": "audio",
        "model": TINY_MODEL,
        "data": {**TINY_DATA, "dataset": "folders", "root": str(folder_root), "batch_size": 4},
        "optim": {"warmup_epochs": 0},
        "train": {"epochs": 1, "threads": 1},
        "output": {"dir": str(tmp_path / "runs"), "name": "run"},
    }
    best = cli.train(config, tmp_path / "audio.yaml") / "best.safetensors"
    metrics = cli.json("eval", best)
    assert metrics["samples"] == 2 and 0 <= metrics["top1"] <= 100
    clip = tone(tmp_path / "query.flac", 200)
    (prediction,) = cli.json("predict", best, clip, "--top-k", "1")
    assert prediction["path"] == str(clip) and prediction["top"][0]["class"] in ("high", "low")


@pytest.mark.parametrize("name", ["audio_sound_types", "audio_speech_commands"])
def test_shipped_configs_resolve(name):
    from pathlib import Path

    from unireplknet.config import load_yaml

    user = load_yaml(Path(__file__).parents[1] / "configs" / f"{name}.yaml")
    task = get_task(user["task"])(resolve_config(get_task(user["task"]).config_schema, user))
    assert task.name == "audio" and task.frontend.n_mels == 128 and task.frontend.frames == 100
