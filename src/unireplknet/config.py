"""Run configuration: one typed schema per task, a YAML file and ``key=value`` overrides.

Every task's config has the same sections for the same things:

* ``task``: the task's name;
* ``model``: the network (variant, initial weights, regularisation, the task's head);
* ``data``: where the dataset is (``data.root``, the dataset's folder; other data paths are relative
  to it) and how samples are prepared (sizes, splits, batch sizes, loader workers);
* ``aug``: training-only augmentation and label regularisation (crops, flips, Mixup, label smoothing);
* ``optim``: the optimizer and learning-rate schedule;
* ``train``: the run (epochs, seed, precision, EMA, device, checkpointing, evaluation during training);
* ``output``: where the run folder goes;
* ``predict`` (some tasks): what ``unireplknet predict`` writes besides its printed results.

A schema is a dataclass whose fields are sections, themselves dataclasses with typed fields
(:class:`RunConfig` and the engine's sections below; each task extends them, see
``Task.config_schema``). Types carry their constraints (``Annotated[int, Range(ge=1)]``,
``Literal[...]``, ``X | None``), and :func:`validate` checks a whole config against them in one pass:
unknown keys, wrong types, out-of-range numbers and values outside a choice are errors naming the key,
what it takes and the value given. A section typed ``X | None`` may be null, meaning "none /
disabled" (e.g. ``aug.spec_augment`` of ``audio``); a free-form mapping (``dict[str, Any]``) takes any
keys, and null as empty. Layers merge in a fixed order before validation::

    task schema defaults  <-  (a run's stored config)  <-  --config FILE  <-  --set a.b=c

Keys that moved between sections (:data:`MOVED_KEYS`) are errors naming the new key in a user's file or
override, and are moved silently in configs stored by older runs and checkpoints.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from .files import atomic_write_text

__all__ = [
    "ConfigError",
    "Range",
    "Len",
    "Check",
    "section",
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "OutputConfig",
    "RunConfig",
    "MOVED_KEYS",
    "validate",
    "config_defaults",
    "merge",
    "load_yaml",
    "parse_overrides",
    "resolve_config",
    "dump_yaml",
]


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key, what it takes and the value."""


# -- constraints carried by types ------------------------------------------------------------------
@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``ge`` / ``gt`` (lower, inclusive / exclusive), ``le`` / ``lt`` (upper)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def holds(self, value: float) -> bool:
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def phrase(self) -> str:
        low = f">= {self.ge:g}" if self.ge is not None else f"> {self.gt:g}" if self.gt is not None else ""
        high = f"<= {self.le:g}" if self.le is not None else f"< {self.lt:g}" if self.lt is not None else ""
        if self.ge is not None and self.le is not None:
            return f"from {self.ge:g} to {self.le:g}"
        return " and ".join(p for p in (low, high) if p)


@dataclass(frozen=True)
class Len:
    """A list of exactly ``n`` items."""

    n: int

    def holds(self, value: list) -> bool:
        return len(value) == self.n


@dataclass(frozen=True)
class Check:
    """Any other property of a value: ``predicate(value)`` must hold; ``phrase`` says what it is."""

    predicate: Callable[[Any], bool]
    phrase: str

    def holds(self, value: Any) -> bool:
        return self.predicate(value)


PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
Probability = Annotated[float, Range(ge=0, le=1)]
Fraction = Annotated[float, Range(ge=0, lt=1)]  # a share that cannot be everything (drop rates, smoothing)


def section(cls: type, **defaults: Any) -> Any:
    """A dataclass field holding section ``cls`` with some defaults changed (a task's own defaults)."""
    return field(default_factory=lambda: cls(**defaults))


# -- the engine's sections -------------------------------------------------------------------------
@dataclass
class ModelConfig:
    """The network; null architecture entries keep the variant's own value."""

    name: str = "unireplknet_a"
    checkpoint: str | None = None  # initial weights (fine-tuning); a classifier of another size starts fresh
    # names or fnmatch patterns of further tensors the checkpoint may lack or hold in another shape
    checkpoint_skip: list[str] = field(default_factory=list)
    drop_path_rate: Fraction = 0.0
    drop_rate: Fraction = 0.0
    layer_scale_init_value: NonNegativeFloat | None = 1e-6
    head_init_scale: PositiveFloat = 1.0
    grad_checkpointing: bool = False
    sync_bn: bool = False
    depths: Annotated[list[PositiveInt], Len(4)] | None = None
    dims: Annotated[list[PositiveInt], Len(4)] | None = None
    kernel_sizes: Annotated[list[list[PositiveInt]], Len(4)] | None = None


@dataclass
class DataConfig:
    """Where the dataset is and how it is loaded; the task adds what its datasets need."""

    root: str | None = None  # the dataset's folder (--data); other data paths are relative to it
    batch_size: PositiveInt = 64  # per process; the global batch is batch_size * world size * accum_steps
    eval_batch_size: PositiveInt = 256
    num_workers: NonNegativeInt = 0


def _is_timm_optimizer(name: str) -> bool:
    from timm.optim import list_optimizers

    return name.lower().removeprefix("lookahead_") in list_optimizers()


@dataclass
class OptimConfig:
    """timm's optimizer and learning-rate schedule (``create_optimizer_v2``, ``create_scheduler_v2``)."""

    opt: Annotated[
        str, Check(_is_timm_optimizer, "a timm optimizer (timm.optim.list_optimizers()), e.g. adamw, sgd")
    ] = "adamw"
    lr: PositiveFloat = 1e-3
    min_lr: NonNegativeFloat = 1e-5
    weight_decay: NonNegativeFloat = 0.05
    momentum: Fraction = 0.9
    sched: Literal["cosine", "tanh", "step", "multistep", "plateau", "poly"] = "cosine"
    warmup_epochs: NonNegativeFloat = 1.0
    warmup_lr: NonNegativeFloat = 1e-5
    layer_decay: Annotated[float, Range(gt=0, le=1)] | None = None  # e.g. 0.8 for fine-tuning
    clip_grad: PositiveFloat | None = None


DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


@dataclass
class TrainConfig:
    """The run: length, seed, precision, EMA, device, checkpointing and evaluation while training."""

    epochs: PositiveInt = 10
    seed: NonNegativeInt = 0
    accum_steps: PositiveInt = 1
    amp: Literal["bf16", "fp16"] | None = None
    channels_last: bool = False
    ema: bool = False
    ema_decay: Annotated[float, Range(gt=0, lt=1)] = 0.9998
    ema_warmup: bool = False
    device: Annotated[str, Check(DEVICE.fullmatch, "auto, cpu, cuda, cuda:N or mps")] = "auto"
    threads: PositiveInt | None = None  # intra-op CPU threads (null: PyTorch's default)
    checkpoint_every_steps: PositiveInt = 50  # training state for --resume, besides every epoch end
    skip_nonfinite_steps: NonNegativeInt = 0  # optimizer steps with a NaN/inf loss skipped before the run stops
    epoch_eval_size: PositiveInt | None = None  # evaluate this many eval samples after each epoch (null: all)
    tensorboard: bool = False


@dataclass
class OutputConfig:
    dir: str = "runs"
    name: str | None = None  # run folder name (null: <task>-<model>-<timestamp>)


@dataclass
class RunConfig:
    """A whole run config; each task's schema extends it (its own sections, defaults and keys)."""

    task: str = "classify"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


# Keys that moved to another section or name (old dotted key -> new one), in the order they are applied.
MOVED_KEYS: dict[str, str] = {
    **{f"train.{k}": f"optim.{k}" for k in (f.name for f in dataclasses.fields(OptimConfig))},
    "data.augment": "aug",  # video, points: the augmentation section
    "data.label_smoothing": "aug.label_smoothing",  # audio, video, points
    "data.mixup": "aug.mixup",  # audio
    "data.noise_prob": "aug.noise_prob",  # audio
    "data.spec_augment": "aug.spec_augment",  # audio
    "data.flip": "aug.hflip",  # detect, segment
    "data.ratio_range": "aug.ratio_range",  # segment
    "data.crop_size": "aug.crop_size",  # segment (the training crop)
    "forecast.input_len": "data.input_len",
    "forecast.pred_len": "data.pred_len",
    "forecast.time_features": "data.time_features",
    "forecast.embed_dim": "model.embed_dim",
    "forecast.head_dropout": "model.head_dropout",
    "forecast.linear_skip": "model.linear_skip",
    "forecast.skip_init": "model.skip_init",
    "forecast.freeze_skip": "model.freeze_skip",
    "grid.input_len": "data.input_len",  # grid_forecast
    "grid.head": "model.head",
    "grid.decoder_channels": "model.decoder_channels",
    "grid.linear_skip": "model.linear_skip",
    "predict.output_dir": "predict.out_dir",  # forecast, grid_forecast
}


# -- validation ------------------------------------------------------------------------------------
_MISSING = object()


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    return typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else None


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def _describe(tp: Any) -> str:
    """What a value of type ``tp`` must be, in words (for error messages)."""
    if typing.get_origin(tp) is Annotated:
        base, *constraints = typing.get_args(tp)
        length = next((c.n for c in constraints if isinstance(c, Len)), None)
        if length is not None:
            text = f"a list of {length} items (each {_describe(typing.get_args(base)[0])})"
        else:
            text = _describe(base)
        for c in constraints:
            if isinstance(c, Range):
                text += f" {c.phrase()}"
            elif isinstance(c, Check):
                text += f", {c.phrase}"
        return text
    if (args := _union_args(tp)) is not None:
        parts = [_describe(a) for a in args if a is not type(None)] + (["null"] if type(None) in args else [])
        return ", ".join(parts[:-1]) + f" or {parts[-1]}" if len(parts) > 1 else parts[0]
    if typing.get_origin(tp) is Literal:
        choices = [_show(a) for a in typing.get_args(tp)]
        return f"one of {', '.join(choices)}" if len(choices) > 1 else choices[0]
    if typing.get_origin(tp) is list:
        return f"a list (each item {_describe(typing.get_args(tp)[0])})"
    if typing.get_origin(tp) is dict:
        return "a mapping"
    if _is_section(tp):
        return "a section"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _nullable_sections(schema: type, where: str = "") -> list[str]:
    out = []
    for name, tp in _hints(schema).items():
        args = _union_args(tp) or (tp,)
        for arg in args:
            if _is_section(arg):
                if type(None) in args:
                    out.append(f"{where}{name}")
                out += _nullable_sections(arg, f"{where}{name}.")
    return out


def _mismatch(path: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(f"config key {path!r} must be {_describe(tp)}, got {_show(value)}")


def _check(tp: Any, value: Any, path: str, default: Any, root: type) -> Any:
    """``value`` converted to ``tp`` (ints to floats, tuples to lists), or ConfigError naming ``path``."""
    if _is_section(tp):
        return _check_section(tp, value, path, default, root)
    if (args := _union_args(tp)) is not None:
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        sections = [a for a in members if _is_section(a)]
        if sections:
            return _check_section(sections[0], value, path, default, root)
        for member in members:
            try:
                return _check(member, value, path, default, root)
            except ConfigError:
                continue
        raise _mismatch(path, tp, value)
    if typing.get_origin(tp) is Annotated:
        base, *constraints = typing.get_args(tp)
        try:
            checked = _check(base, value, path, default, root)
        except ConfigError:
            if typing.get_origin(base) is not None:  # a list: its own message names the bad item
                raise
            raise _mismatch(path, tp, value) from None
        if not all(c.holds(checked) for c in constraints):
            raise _mismatch(path, tp, value)
        return checked
    if typing.get_origin(tp) is Literal:
        for choice in typing.get_args(tp):
            if value == choice and type(value) is type(choice):  # True is not 1
                return value
        raise _mismatch(path, tp, value)
    if typing.get_origin(tp) is list:
        if not isinstance(value, (list, tuple)):
            raise _mismatch(path, tp, value)
        (item,) = typing.get_args(tp)
        return [_check(item, v, f"{path}[{i}]", None, root) for i, v in enumerate(value)]
    if typing.get_origin(tp) is dict:
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"config key {path!r} takes a mapping (any keys), got {_show(value)}")
        return copy.deepcopy(dict(value or {}))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (bool, int, float, str) and isinstance(value, tp) and (tp is bool or not isinstance(value, bool)):
        return value
    if isinstance(value, Mapping):
        raise ConfigError(f"config key {path!r} takes a single value ({_describe(tp)}), not a mapping")
    raise _mismatch(path, tp, value)


def _check_section(cls: type, value: Any, path: str, default: Any, root: type) -> dict[str, Any]:
    hints = _hints(cls)
    first = next(iter(hints))
    if value is None:
        allowed = _nullable_sections(root)
        can = f" (sections that can be: {', '.join(allowed)})" if allowed else ""
        raise ConfigError(f"config section {path!r} cannot be null{can}; set its keys instead, e.g. {path}.{first}=...")
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key {path!r} is a section; set one of its keys, e.g. {path}.{first}=...")
    if not isinstance(default, cls):
        default = cls()
    where = f"{path}." if path else ""
    for key in value:
        if key not in hints:
            dotted = f"{where}{key}"
            inner = value[key] if isinstance(value[key], Mapping) else {}
            for old in (dotted, *(f"{dotted}.{k}" for k in inner)):
                moved = MOVED_KEYS.get(old)
                if moved is not None and _has_key(root, moved):
                    raise ConfigError(f"config key {old!r} moved to {moved!r}; set that instead")
            known = ", ".join(hints)
            raise ConfigError(f"unknown config key {dotted!r}; keys here: {known}")
    out = {}
    for name, tp in hints.items():
        given = value.get(name, _MISSING)
        fallback = getattr(default, name)
        if given is _MISSING:
            given = {} if dataclasses.is_dataclass(fallback) else copy.deepcopy(fallback)
        out[name] = _check(tp, given, f"{where}{name}", fallback, root)
    return out


def _has_key(schema: type, dotted: str) -> bool:
    """Whether ``dotted`` (``section.key``) names a key or section of ``schema``."""
    cls: Any = schema
    for part in dotted.split("."):
        members = [a for a in (_union_args(cls) or (cls,)) if _is_section(a)]
        if not members or part not in _hints(members[0]):
            return False
        cls = _hints(members[0])[part]
    return True


def validate(schema: type, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` checked against ``schema`` (a :class:`RunConfig` dataclass) with missing keys filled in
    from its defaults: a plain, YAML-serialisable dict. ConfigError names the first bad key."""
    return _check_section(schema, cfg, "", schema(), schema)


def config_defaults(schema: type) -> dict[str, Any]:
    """The default config of ``schema`` as a dict."""
    return validate(schema, {})


def _migrate(schema: type, stored: Mapping[str, Any]) -> dict[str, Any]:
    """A config stored by an older run with its :data:`MOVED_KEYS` moved where ``schema`` has them."""
    cfg = copy.deepcopy(dict(stored))
    for old, new in MOVED_KEYS.items():
        *parents, leaf = old.split(".")
        node = cfg
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node or not _has_key(schema, new):
            continue
        value = node.pop(leaf)
        if not node and parents and not _has_key(schema, ".".join(parents)):  # a section that moved entirely
            container = cfg
            for part in parents[:-1]:
                container = container[part]
            del container[parents[-1]]
        *parents, leaf = new.split(".")
        target = cfg
        for part in parents:
            if target.get(part) is None and part in target:
                break  # a section disabled (null) there already: nothing to move into
            target = target.setdefault(part, {})
        else:
            target[leaf] = merge(target[leaf], value) if isinstance(target.get(leaf), dict) and value else value
    return cfg


# -- layers ----------------------------------------------------------------------------------------
def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overlay`` into a copy of ``base`` (mappings merge key by key; anything else replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
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
    """``["optim.lr=1e-3", "data.root=/x"]`` -> nested dict; values are parsed as YAML scalars/lists."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} must look like section.key=value, e.g. optim.lr=0.001")
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
    schema: type,
    user: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    stored: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The full, validated run config: ``schema``'s defaults <- (stored) <- user file <- overrides.

    ``schema`` is the task's :class:`RunConfig` dataclass (``Task.config_schema``); ``stored`` is a
    config saved with a run or checkpoint (its moved keys are moved first). ConfigError names the
    first key that is unknown, of the wrong type or out of range.
    """
    cfg = _migrate(schema, stored) if stored else {}
    for layer in (user or {}, overrides or {}):
        cfg = merge(cfg, layer)
    return validate(schema, cfg)


def dump_yaml(cfg: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``cfg`` as YAML (atomically: a crash leaves the old file or none)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, yaml.safe_dump(dict(cfg), sort_keys=False))
