"""Run configuration: engine defaults, a task's overlay, a YAML file and ``key=value`` overrides.

A config is a nested dict with the sections ``task``, ``model``, ``data``, ``train`` and ``output``
(tasks may add their own, e.g. ``aug``). Layers are merged in a fixed order::

    ENGINE_DEFAULTS  <-  task.default_config  <-  --config FILE  <-  --set a.b=c

Only keys that exist in the defaults (engine's or the task's) may be set, so a typo is an error
naming the key and the keys that exist. A default that is an empty dict is free-form (any keys; null
gives an empty one). A section (a non-empty dict) may be set to null only where the task declares that
null means "none / disabled" (``Task.nullable_sections``, e.g. ``data.augment`` of ``points``);
elsewhere null is an error naming the section.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ENGINE_DEFAULTS",
    "ConfigError",
    "merge",
    "load_yaml",
    "parse_overrides",
    "resolve_config",
    "dump_yaml",
]


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key and what is allowed."""


ENGINE_DEFAULTS: dict[str, Any] = {
    "task": "classify",
    "model": {
        "name": "unireplknet_a",
        "checkpoint": None,  # initial weights (fine-tuning); a classifier of another size is skipped
        "drop_path_rate": 0.0,
        "drop_rate": 0.0,
        "layer_scale_init_value": 1e-6,
        "head_init_scale": 1.0,
        "grad_checkpointing": False,
        "sync_bn": False,
        "depths": None,
        "dims": None,
        "kernel_sizes": None,
    },
    "data": {
        "root": None,
        "batch_size": 64,  # per process; the global batch is batch_size * world size * accum_steps
        "eval_batch_size": 256,
        "num_workers": 0,
    },
    "train": {
        "epochs": 10,
        "seed": 0,
        "opt": "adamw",
        "lr": 1e-3,
        "min_lr": 1e-5,
        "weight_decay": 0.05,
        "momentum": 0.9,
        "sched": "cosine",
        "warmup_epochs": 1.0,
        "warmup_lr": 1e-5,
        "layer_decay": None,  # e.g. 0.8 for fine-tuning (timm's layer-wise lr decay)
        "clip_grad": None,
        "accum_steps": 1,
        "amp": None,  # null | bf16 | fp16
        "channels_last": False,
        "ema": False,
        "ema_decay": 0.9998,
        "ema_warmup": False,
        "device": "auto",  # auto | cpu | cuda | cuda:N
        "threads": None,  # intra-op CPU threads (null: PyTorch's default)
        "checkpoint_every_steps": 50,  # training state for --resume, besides every epoch end
        "epoch_eval_size": None,  # evaluate this many eval samples after each epoch (null: all)
        "tensorboard": False,
    },
    "output": {
        "dir": "runs",
        "name": None,  # run folder name (null: <task>-<model>-<timestamp>)
    },
}


def merge(
    base: Mapping[str, Any],
    overlay: Mapping[str, Any],
    *,
    strict: bool,
    where: str = "",
    nullable: Collection[str] = (),
) -> dict[str, Any]:
    """Deep-merge ``overlay`` into a copy of ``base``.

    With ``strict``, every key of ``overlay`` must already exist in ``base`` (unless the base value
    is an empty dict, which accepts anything), a mapping cannot replace a scalar or vice versa, and a
    section can be set to null only if its dotted name is in ``nullable``.
    """
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        path = f"{where}{key}"
        if key not in out:
            if strict:
                known = ", ".join(sorted(map(str, out))) or "(none)"
                raise ConfigError(f"unknown config key {path!r}; keys here: {known}")
            out[key] = copy.deepcopy(value)
            continue
        current = out[key]
        if isinstance(current, Mapping) and current:
            if value is None and (path in nullable or not strict):
                out[key] = None
            elif value is None:
                allowed = f" (sections that can be: {', '.join(sorted(nullable))})" if nullable else ""
                raise ConfigError(
                    f"config section {path!r} cannot be null{allowed}; set its keys instead, "
                    f"e.g. {path}.{next(iter(current))}=..."
                )
            elif not isinstance(value, Mapping):
                raise ConfigError(
                    f"config key {path!r} is a section; set one of its keys, e.g. {path}.{next(iter(current))}=..."
                )
            else:
                out[key] = merge(current, value, strict=strict, where=f"{path}.", nullable=nullable)
        elif isinstance(current, Mapping):
            if value is not None and not isinstance(value, Mapping):
                raise ConfigError(f"config key {path!r} takes a mapping, got {value!r}")
            out[key] = copy.deepcopy(dict(value or {}))
        elif current is None and path in nullable and isinstance(value, Mapping):
            raise ConfigError(
                f"config section {path!r} was set to null (disabled) by an earlier layer; "
                "remove that null to set its keys"
            )
        else:
            if isinstance(value, Mapping):
                raise ConfigError(f"config key {path!r} takes a single value, not a mapping")
            out[key] = copy.deepcopy(value)
    return out


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; everyone means the number."""
    if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_number(v) for v in value]
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    return value


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML config file (a mapping at the top level)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return _number(dict(data))


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["train.lr=1e-3", "data.root=/x"]`` -> nested dict; values are parsed as YAML scalars/lists."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} must look like section.key=value, e.g. train.lr=0.001")
        try:
            value = _number(yaml.safe_load(raw)) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {part!r}")
        node[leaf] = value
    return out


def resolve_config(
    task_defaults: Mapping[str, Any],
    user: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    stored: Mapping[str, Any] | None = None,
    *,
    nullable: Collection[str] = (),
) -> dict[str, Any]:
    """The full run config: engine defaults <- task defaults <- (stored) <- user file <- overrides.

    ``stored`` is a config saved with a run or checkpoint; it was validated when written, so it is
    merged leniently. The user file and overrides are validated against all keys known so far;
    ``nullable`` names the sections they may set to null (the task's ``nullable_sections``).
    """
    cfg = merge(ENGINE_DEFAULTS, task_defaults, strict=False)
    if stored:
        cfg = merge(cfg, stored, strict=False)
    for layer in (user or {}, overrides or {}):
        cfg = merge(cfg, layer, strict=True, nullable=nullable)
    return cfg


def dump_yaml(cfg: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``cfg`` as YAML (atomically: a crash leaves the old file or none)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(dict(cfg), sort_keys=False))
    os.replace(tmp, path)
    return path
