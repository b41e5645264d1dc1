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


def test_null_sections_only_where_the_task_allows_them(tmp_path: Path) -> None:
    from unireplknet.cli import _resolve

    points = get_task("points")
    assert "data.augment" in points.nullable_sections
    for overrides in (["data.augment=null"], ["data.augment="]):
        cfg = _resolve(None, "points", parse_overrides(overrides))
        assert cfg["data"]["augment"] is None and cfg["data"]["projection"]["resolution"] == 64
    path = tmp_path / "p.yaml"
    path.write_text("task: points\ndata:\n  augment: null\n")
    assert _resolve(path, None, {})["data"]["augment"] is None
    # a section where null means nothing useful: a one-line error naming it and what can be null
    with pytest.raises(ConfigError, match=r"'data\.projection' cannot be null \(sections that can be: data\.augment\)"):
        _resolve(None, "points", parse_overrides(["data.projection=null"]))
    with pytest.raises(ConfigError, match=r"'aug' cannot be null; set its keys instead, e.g. aug\.pad_crop="):
        resolve_config(get_task("classify").default_config, {"aug": None})
    with pytest.raises(ConfigError, match=r"'data\.augment' was set to null .* by an earlier layer"):
        _resolve(path, None, parse_overrides(["data.augment.jitter=0.1"]))
    # a null written into a stored run config is taken as it was validated then
    stored = resolve_config(points.default_config, {"data": {"augment": None}}, nullable=points.nullable_sections)
    assert resolve_config(points.default_config, stored=stored)["data"]["augment"] is None
    # free-form (empty) sections take null as empty
    assert (
        resolve_config(get_task("segment").default_config, {"model": {"head_kwargs": None}})["model"]["head_kwargs"]
        == {}
    )
