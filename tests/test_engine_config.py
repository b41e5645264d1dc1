"""Config layering and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from unireplknet.config import (
    ENGINE_DEFAULTS,
    ConfigError,
    dump_yaml,
    load_yaml,
    merge,
    parse_overrides,
    resolve_config,
)
from unireplknet.tasks import get_task


def test_overrides_parse_yaml_values() -> None:
    parsed = parse_overrides(["train.lr=2e-3", "model.dims=[8, 16]", "data.root=/x y", "train.amp=null", "a.b.c=true"])
    assert parsed == {
        "train": {"lr": 2e-3, "amp": None},
        "model": {"dims": [8, 16]},
        "data": {"root": "/x y"},
        "a": {"b": {"c": True}},
    }
    for bad in ("train.lr", "=3", "train..lr=1"):
        with pytest.raises(ConfigError, match="section.key=value"):
            parse_overrides([bad])


def test_layers_apply_in_order(tmp_path: Path) -> None:
    task = get_task("classify")
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 0.5\n  epochs: 7\naug:\n  mixup: 0.3\n")
    cfg = resolve_config(task.default_config, load_yaml(path), parse_overrides(["train.lr=0.25"]))
    assert cfg["train"]["lr"] == 0.25 and cfg["train"]["epochs"] == 7 and cfg["aug"]["mixup"] == 0.3
    assert cfg["train"]["weight_decay"] == ENGINE_DEFAULTS["train"]["weight_decay"]
    assert cfg["data"]["dataset"] == "auto"  # from the task's overlay
    dump_yaml(cfg, tmp_path / "out.yaml")
    assert load_yaml(tmp_path / "out.yaml") == cfg


def test_unknown_keys_are_named() -> None:
    with pytest.raises(ConfigError, match=r"'train\.lrr'.*lr"):
        resolve_config({}, overrides={"train": {"lrr": 1}})
    with pytest.raises(ConfigError, match="'nonsense'"):
        resolve_config({}, {"nonsense": {"a": 1}})
    with pytest.raises(ConfigError, match="is a section"):
        resolve_config({}, overrides={"train": 3})
    with pytest.raises(ConfigError, match="single value"):
        resolve_config({}, overrides={"train": {"lr": {"x": 1}}})


def test_stored_config_is_lenient_and_empty_dicts_are_free_form() -> None:
    cfg = resolve_config({"extra": {}}, {"extra": {"anything": 1}}, stored={"train": {"old_key": 1}})
    assert cfg["extra"] == {"anything": 1} and cfg["train"]["old_key"] == 1
    assert merge({"a": 1}, {"b": 2}, strict=False) == {"a": 1, "b": 2}


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(tmp_path / "bad.yaml")
