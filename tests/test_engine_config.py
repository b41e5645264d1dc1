"""Config layering and the typed schema: key names, types, ranges, choices, nulls, moved keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from unireplknet.config import (
    MOVED_KEYS,
    ConfigError,
    OptimConfig,
    config_defaults,
    dump_yaml,
    load_yaml,
    merge,
    parse_overrides,
    resolve_config,
)
from unireplknet.tasks import BUILTIN_TASKS, get_task

CONFIGS = Path(__file__).parents[1] / "configs"


def schema(name: str) -> type:
    try:
        return get_task(name).config_schema
    except ValueError as e:  # the task's optional packages are not installed
        pytest.skip(str(e))


def test_overrides_parse_yaml_values() -> None:
    parsed = parse_overrides(["optim.lr=2e-3", "model.dims=[8, 16]", "data.root=/x y", "train.amp=null", "a.b.c=true"])
    assert parsed == {
        "optim": {"lr": 2e-3},
        "train": {"amp": None},
        "model": {"dims": [8, 16]},
        "data": {"root": "/x y"},
        "a": {"b": {"c": True}},
    }
    for bad in ("optim.lr", "=3", "optim..lr=1"):
        with pytest.raises(ConfigError, match="section.key=value"):
            parse_overrides([bad])


def test_layers_apply_in_order(tmp_path: Path) -> None:
    classify = schema("classify")
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 0.5\ntrain:\n  epochs: 7\naug:\n  mixup: 0.3\n")
    cfg = resolve_config(classify, load_yaml(path), parse_overrides(["optim.lr=0.25"]))
    assert cfg["optim"]["lr"] == 0.25 and cfg["train"]["epochs"] == 7 and cfg["aug"]["mixup"] == 0.3
    assert cfg["optim"]["weight_decay"] == OptimConfig().weight_decay  # the engine's default
    assert cfg["optim"]["warmup_epochs"] == 0.2 and cfg["data"]["dataset"] == "auto"  # the task's defaults
    dump_yaml(cfg, tmp_path / "out.yaml")
    assert load_yaml(tmp_path / "out.yaml") == cfg
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": 4}) == {"a": {"b": 1, "c": 3}, "d": 4}


@pytest.mark.parametrize("task", sorted(BUILTIN_TASKS))
def test_every_task_has_the_same_sections_and_valid_defaults(task: str) -> None:
    cfg = config_defaults(schema(task))
    assert cfg["task"] == task
    assert {"task", "model", "data", "optim", "train", "output"} <= set(cfg)
    assert {"root", "batch_size", "eval_batch_size", "num_workers"} <= set(cfg["data"])
    if task not in ("forecast", "grid_forecast"):  # every other task augments its training samples
        assert isinstance(cfg["aug"], dict)
    assert resolve_config(schema(task), stored=cfg) == cfg  # a stored config resolves to itself


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_resolve(path: Path) -> None:
    user = load_yaml(path)
    cfg = resolve_config(schema(user["task"]), user)
    assert cfg["task"] == user["task"]


def test_unknown_keys_are_named() -> None:
    classify = schema("classify")
    with pytest.raises(ConfigError, match=r"unknown config key 'train\.lrr'; keys here: epochs, seed"):
        resolve_config(classify, overrides={"train": {"lrr": 1}})
    with pytest.raises(ConfigError, match="unknown config key 'nonsense'"):
        resolve_config(classify, {"nonsense": {"a": 1}})
    with pytest.raises(ConfigError, match=r"'train' is a section; set one of its keys, e\.g\. train\.epochs="):
        resolve_config(classify, overrides={"train": 3})
    with pytest.raises(ConfigError, match=r"'optim\.lr' must be a number > 0, got \{'x': 1\}"):
        resolve_config(classify, overrides={"optim": {"lr": {"x": 1}}})


@pytest.mark.parametrize(
    ("task", "override", "message"),
    [
        ("classify", "train.epochs=2.5", "'train.epochs' must be an integer >= 1, got 2.5"),
        ("classify", "train.epochs=0", "'train.epochs' must be an integer >= 1, got 0"),
        ("classify", "train.epochs=three", "'train.epochs' must be an integer >= 1, got 'three'"),
        ("classify", "train.epochs=true", "'train.epochs' must be an integer >= 1, got true"),
        ("classify", "data.img_size=0", "'data.img_size' must be an integer >= 1 or null, got 0"),
        ("classify", "optim.warmup_epochs=-1", "'optim.warmup_epochs' must be a number >= 0, got -1"),
        ("classify", "optim.lr=0", "'optim.lr' must be a number > 0, got 0"),
        ("classify", "train.epoch_eval_size=0", "'train.epoch_eval_size' must be an integer >= 1 or null, got 0"),
        ("classify", "train.amp=fp32", "'train.amp' must be one of 'bf16', 'fp16' or null, got 'fp32'"),
        ("classify", "train.accum_steps=0", "'train.accum_steps' must be an integer >= 1, got 0"),
        ("classify", "train.device=gpu", "'train.device' must be a string, auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
        ("classify", "train.ema=yes please", "'train.ema' must be true or false, got 'yes please'"),
        ("classify", "data.batch_size=-4", "'data.batch_size' must be an integer >= 1, got -4"),
        ("classify", "data.train_subset=most", "'data.train_subset' must be an integer >= 1, 'auto' or null"),
        ("classify", "data.in_chans=2", "'data.in_chans' must be one of 1, 3 or null, got 2"),
        ("classify", "aug.hflip=1.5", "'aug.hflip' must be a number from 0 to 1, got 1.5"),
        ("classify", "aug.label_smoothing=1", "'aug.label_smoothing' must be a number >= 0 and < 1, got 1"),
        ("classify", "optim.opt=adamx", "'optim.opt' must be a string, a timm optimizer"),
        ("classify", "optim.sched=linear", "'optim.sched' must be one of 'cosine', 'tanh', 'step'"),
        ("classify", "model.depths=[1, 1, 3]", "'model.depths' must be a list of 4 items (each an integer >= 1)"),
        ("classify", "model.depths=[1, 1, 0, 1]", "'model.depths' must be a list of 4 items"),
        ("classify", "output.name=[a, b]", "'output.name' must be a string or null, got ['a', 'b']"),
        ("video", "data.num_frames=5", "'data.num_frames' must be an integer >= 1, a perfect square, got 5"),
        ("forecast", "data.split=[0.5, 0.5, 0.5]", "'data.split' must be a list of 3 items (each a number from 0"),
        ("forecast", "data.time_features=[hour, minute]", "'data.time_features' must be true or false or a list"),
        ("forecast", "model.skip_init=ls", "'model.skip_init' must be one of 'zero', 'least_squares', got 'ls'"),
    ],
)
def test_types_ranges_and_choices_are_checked(task: str, override: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        resolve_config(schema(task), overrides=parse_overrides([override]))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_values_are_converted_to_the_declared_type() -> None:
    cfg = resolve_config(schema("classify"), overrides=parse_overrides(["optim.warmup_epochs=2", "optim.lr=1"]))
    assert cfg["optim"]["warmup_epochs"] == 2.0 and isinstance(cfg["optim"]["warmup_epochs"], float)
    assert isinstance(cfg["optim"]["lr"], float)


def test_moved_keys_name_their_new_place() -> None:
    assert MOVED_KEYS["train.lr"] == "optim.lr"
    cases = [
        ("classify", "train.lr=0.1", "config key 'train.lr' moved to 'optim.lr'"),
        ("audio", "data.mixup=0.2", "config key 'data.mixup' moved to 'aug.mixup'"),
        ("points", "data.augment=null", "config key 'data.augment' moved to 'aug'"),
        ("forecast", "forecast.pred_len=12", "config key 'forecast.pred_len' moved to 'data.pred_len'"),
        ("segment", "data.flip=0.0", "config key 'data.flip' moved to 'aug.hflip'"),
    ]
    for task, override, message in cases:
        with pytest.raises(ConfigError, match=message):
            resolve_config(schema(task), overrides=parse_overrides([override]))
    # a moved key that the task does not have is plainly unknown
    with pytest.raises(ConfigError, match="unknown config key 'data.ratio_range'"):
        resolve_config(schema("classify"), overrides=parse_overrides(["data.ratio_range=[1, 2]"]))


def test_configs_stored_by_older_runs_are_migrated() -> None:
    old_points = {
        "task": "points",
        "data": {"augment": None, "label_smoothing": 0.1, "num_points": 64},
        "train": {"lr": 0.01, "epochs": 2},
    }
    cfg = resolve_config(schema("points"), stored=old_points)
    assert cfg["aug"] is None and cfg["optim"]["lr"] == 0.01 and cfg["train"]["epochs"] == 2
    assert cfg["data"]["num_points"] == 64 and "augment" not in cfg["data"]
    old_video = {"task": "video", "data": {"augment": {"hflip": 0.0}, "label_smoothing": 0.2}}
    cfg = resolve_config(schema("video"), stored=old_video)
    assert cfg["aug"] == {"scale": [0.25, 1.0], "hflip": 0.0, "color_jitter": 0.0, "label_smoothing": 0.2}
    old_forecast = {
        "task": "forecast",
        "forecast": {"pred_len": 12, "linear_skip": True},
        "predict": {"output_dir": "x"},
    }
    cfg = resolve_config(schema("forecast"), stored=old_forecast)
    assert cfg["data"]["pred_len"] == 12 and cfg["model"]["linear_skip"] and cfg["predict"]["out_dir"] == "x"


def test_null_sections_only_where_the_task_allows_them(tmp_path: Path) -> None:
    from unireplknet.cli import _resolve

    for overrides in (["aug=null"], ["aug="]):
        cfg = _resolve(None, "points", parse_overrides(overrides))
        assert cfg["aug"] is None and cfg["data"]["projection"]["resolution"] == 64
    path = tmp_path / "p.yaml"
    path.write_text("task: points\naug: null\n")
    assert _resolve(path, None, {})["aug"] is None
    # a later layer that sets keys of a disabled section enables it again, its other keys at their defaults
    assert _resolve(path, None, parse_overrides(["aug.jitter=0.1"]))["aug"]["rotation"] == "up"
    audio = resolve_config(schema("audio"), {"aug": {"spec_augment": None}})
    assert audio["aug"]["spec_augment"] is None and audio["aug"]["mixup"] == 0.5
    # a section where null means nothing useful: a one-line error naming it and what can be null
    with pytest.raises(ConfigError, match=r"'data\.projection' cannot be null \(sections that can be: aug\)"):
        _resolve(None, "points", parse_overrides(["data.projection=null"]))
    with pytest.raises(ConfigError, match=r"'aug' cannot be null; set its keys instead, e\.g\. aug\.pad_crop="):
        resolve_config(schema("classify"), {"aug": None})
    # a null written into a stored run config is taken as it was validated then
    stored = resolve_config(schema("points"), {"aug": None})
    assert resolve_config(schema("points"), stored=stored)["aug"] is None
    # free-form sections take any keys, and null as empty
    segment = schema("segment")
    assert resolve_config(segment, {"model": {"head_kwargs": None}})["model"]["head_kwargs"] == {}
    assert resolve_config(segment, {"model": {"head_kwargs": {"x": [1]}}})["model"]["head_kwargs"] == {"x": [1]}


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(tmp_path / "bad.yaml")


def test_cli_rejects_a_bad_value_before_writing_anything(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from unireplknet.cli import app

    runs = tmp_path / "runs"
    for args in (["--set", "train.epochs=1.5"], ["--set", "train.epoch_eval_size=0"], ["--epochs", "0"]):
        result = CliRunner().invoke(app, ["train", *args, "--output", str(runs)])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: config key 'train.ep"), result.output
        assert not runs.exists()


def test_data_paths_are_inside_data_root(tmp_path: Path) -> None:
    from unireplknet.tasks.base import Task

    class Paths(Task):
        name = "paths"
        build_datasets = build_model = loss = new_metrics = predict_input = predict_output = None

    task = Paths({"data": {"root": str(tmp_path), "train": "a/train.csv", "val": str(tmp_path / "v"), "x": None}})
    assert task.data_path("train") == tmp_path / "a" / "train.csv"
    assert task.data_path("val") == tmp_path / "v" and task.data_path("x") is None
    assert Paths({"data": {"root": None, "train": "t.csv"}}).data_path("train") == Path("t.csv")


def test_train_checks_a_hand_built_config_like_a_file(tmp_path) -> None:
    """``engine.train`` given a dict built by hand (not through resolve_config) checks it with the task's schema
    before anything is written."""
    from unireplknet.engine import train

    with pytest.raises(ConfigError, match="config key 'task' is missing"):
        train({"train": {"epochs": 1}})
    with pytest.raises(ConfigError, match=r"'train\.epochs' must be an integer >= 1, got 2\.5"):
        train({"task": "classify", "train": {"epochs": 2.5}, "output": {"dir": str(tmp_path / "runs")}})
    with pytest.raises(ConfigError, match=r"data\.no_such_key"):
        train({"task": "classify", "data": {"no_such_key": 1}, "output": {"dir": str(tmp_path / "runs")}})
    assert not (tmp_path / "runs").exists()
