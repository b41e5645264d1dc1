"""The task interface: what the training engine needs to know about a learning problem.

A task turns raw samples into ``C x H x W`` maps, builds the model around the unchanged UniRepLKNet
backbone, and defines loss, metrics and prediction output. The engine (``unireplknet.engine``)
handles everything else: optimisation, schedules, EMA, mixed precision, checkpoints, resume,
distributed training, logging. Adding a modality means adding a Task subclass and registering it;
the engine does not change.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import RunConfig
from ..metrics import Metrics
from ..variants import VARIANTS

__all__ = [
    "Task",
    "ClassListTask",
    "Metrics",
    "register_task",
    "get_task",
    "model_kwargs",
    "encoder_kwargs",
    "require_data",
    "TASKS",
    "UNIREPLKNET_KWARGS",
]

TASKS: dict[str, type[Task]] = {}

# UniRepLKNet keywords a ``model`` config section may set (sync_bn is not among them: the engine converts
# the whole model when it runs distributed)
UNIREPLKNET_KWARGS = (
    "drop_path_rate", "drop_rate", "layer_scale_init_value", "head_init_scale", "grad_checkpointing",
    "depths", "dims", "kernel_sizes",
)  # fmt: skip
# those of a features-only backbone (dense prediction), which has no classifier
BACKBONE_KWARGS = tuple(k for k in UNIREPLKNET_KWARGS if k not in ("drop_rate", "head_init_scale"))


def model_kwargs(model_cfg: dict[str, Any], keys: Sequence[str] = UNIREPLKNET_KWARGS) -> dict[str, Any]:
    """The ``keys`` set (not null) in a ``model`` config section; null ones keep the variant's own value."""
    return {k: model_cfg[k] for k in keys if model_cfg.get(k) is not None}


def encoder_kwargs(model_cfg: dict[str, Any], keys: Sequence[str] = UNIREPLKNET_KWARGS) -> dict[str, Any]:
    """The architecture keywords of ``model.name``: :func:`model_kwargs` for a UniRepLKNet variant; for any
    other timm model (a same-input baseline, e.g. ``resnet18``) only its drop path, and ValueError when the
    section sets one of our architecture keys, which would not apply."""
    if model_cfg["name"] in VARIANTS:
        return model_kwargs(model_cfg, keys)
    ours = [k for k in ("depths", "dims", "kernel_sizes") if model_cfg.get(k) is not None]
    if ours:
        raise ValueError(
            f"model.{ours[0]} applies to UniRepLKNet variants only, not to {model_cfg['name']}; "
            f"set it to null (--set model.{ours[0]}=null)"
        )
    return {"drop_path_rate": model_cfg["drop_path_rate"]} if model_cfg.get("drop_path_rate") else {}


def require_data(data: dict[str, Any], *keys: str, what: str = "") -> None:
    """ValueError unless every ``data.<key>`` of the ``data`` config section is set (not null or empty):
    ``data.dataset=NAME needs data.KEY [and data.KEY2] (what)``."""
    if not all(data.get(key) for key in keys):
        needs = " and ".join(f"data.{key}" for key in keys)
        raise ValueError(f"data.dataset={data['dataset']} needs {needs}" + (f" ({what})" if what else ""))


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available as ``--task NAME``."""
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> type[Task]:
    """The registered task class for ``name``; raises ValueError listing the known names."""
    import importlib

    from . import BUILTIN_TASKS

    if name not in TASKS and name in BUILTIN_TASKS:
        module, extra = BUILTIN_TASKS[name]
        try:
            importlib.import_module(f"unireplknet.tasks.{module}")
        except ImportError as e:
            hint = f"; install it with: pip install 'unireplknet[{extra}]'" if extra else ""
            raise ValueError(f"task {name!r} needs a package that is missing ({e.name or e}){hint}") from None
    if name not in TASKS:
        known = sorted(set(TASKS) | set(BUILTIN_TASKS))
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(known)}")
    return TASKS[name]


class Task(abc.ABC):
    """One learning problem for the engine.

    ``cfg`` is the whole resolved run config: a nested, YAML-serialisable dict validated against
    :attr:`config_schema` (sections ``model``, ``data``, ``aug``, ``optim``, ``train``, ``output``, see
    :mod:`unireplknet.config`). The command line builds it from the schema's defaults, then the user's
    YAML file, then command-line overrides (:func:`unireplknet.config.resolve_config`), and the engine
    writes it next to the run's outputs.
    """

    name: ClassVar[str]
    primary_metric: ClassVar[str]  # the metric that picks the best checkpoint
    higher_is_better: ClassVar[bool] = True
    # the task's config: a RunConfig dataclass with the task's sections, keys and defaults
    config_schema: ClassVar[type[RunConfig]] = RunConfig

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg

    def data_path(self, key: str) -> Path | None:
        """``data.<key>`` as a path: relative ones are inside ``data.root`` (when set); None when null."""
        value, root = self.cfg["data"][key], self.cfg["data"]["root"]
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() or root is None else Path(root).expanduser() / path

    def bundled_dataset(self) -> None:
        """ValueError when ``data.root`` (``--data``, a dataset's folder) is set for a bundled demo dataset,
        which reads none: nothing the user gave is ignored silently."""
        if self.cfg["data"]["root"] is not None:
            raise ValueError(
                f"data.dataset={self.cfg['data']['dataset']} is a bundled demo and reads no dataset folder, "
                f"but data.root (--data) is {self.cfg['data']['root']!r}; drop it or pick another data.dataset"
            )

    # -- data -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def build_datasets(self) -> tuple[Dataset, Dataset]:
        """(train, evaluation) datasets whose items are ``(input map (C, H, W), target)``."""

    def build_eval_dataset(self) -> Dataset:
        """The evaluation dataset alone (``unireplknet eval``). Called after :meth:`load_state_dict` has restored
        a checkpoint's task state; tasks whose evaluation data does not depend on the training data build it
        without reading the training set. Default: the evaluation half of :meth:`build_datasets`."""
        return self.build_datasets()[1]

    def build_test_dataset(self) -> Dataset | None:
        """A held-out test dataset that the end-of-run evaluation reports on, when it is not the evaluation
        dataset of :meth:`build_datasets` (which scores every epoch and picks ``best.safetensors``), or None
        (the default): the final evaluation then uses the evaluation dataset too. Called after
        :meth:`build_datasets`; its items and collate function are those of the evaluation dataset."""
        return None

    def collate_fn(self, train: bool) -> Callable | None:
        """A DataLoader collate function, or None for PyTorch's default."""
        return None

    def batch_transform(self) -> Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]] | None:
        """A training-only transform applied to each collated batch (e.g. Mixup/CutMix), or None."""
        return None

    # -- model ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def build_model(self) -> nn.Module:
        """The network to train (a UniRepLKNet, or one built around its backbone)."""

    @abc.abstractmethod
    def loss(self, outputs: Any, targets: Any, train: bool) -> torch.Tensor:
        """Scalar loss; ``train`` tells whether targets went through :meth:`batch_transform`."""

    @abc.abstractmethod
    def new_metrics(self) -> Metrics:
        """A fresh accumulator for one evaluation pass."""

    def train_metrics(self) -> Metrics | None:
        """A cheap accumulator fed with training batches (after :meth:`batch_transform`) for the progress
        bar and ``metrics.jsonl``, or None. Its ``state_tensors`` are saved for exact resumption."""
        return None

    # -- state that must travel with a checkpoint (e.g. normalisation statistics, class names) ---
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook, no-op by default
        """Restore what :meth:`state_dict` returned (called before evaluation or resumed training)."""

    # -- outputs (the engine's prediction loop, :func:`unireplknet.engine.predict`, feeds these) ---
    @abc.abstractmethod
    def predict_input(self, path: Path) -> tuple[Any, Any]:
        """One raw input file -> ``(inputs, context)``: the model's input as a batch (this file's sample, or
        several views of it), and whatever :meth:`predict_output` needs besides it (or None)."""

    @abc.abstractmethod
    def predict_output(
        self, path: Path, outputs: Any, *, inputs: Any, context: Any, model: nn.Module, top_k: int
    ) -> dict[str, Any]:
        """The JSON-serialisable result for one file from the model's ``outputs`` on ``inputs`` (on the
        model's device); the engine puts ``"path"`` first. ``top_k``: how many classes to list, if any."""

    def write_report(self, model: nn.Module, dataset: Dataset, run_dir: Path) -> dict[str, Any]:
        """Extra end-of-run artifacts (e.g. a confusion-matrix PNG); returns paths/values to summarise."""
        return {}


class ClassListTask(Task):
    """A task whose outputs name classes from a list (classification, segmentation, detection).

    The list comes from the training data (:meth:`set_classes` in ``build_datasets``) or from a
    checkpoint's task state, and travels with every checkpoint so ``eval`` / ``predict`` can name classes
    without the training data.
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.classes: list[str] = []

    @property
    def num_classes(self) -> int:
        """The number of classes; ValueError while the list is unknown (before datasets or a checkpoint)."""
        if not self.classes:
            raise ValueError(
                f"the {self.name} task's class list is unknown: build the datasets or load a checkpoint's task state first"
            )
        return len(self.classes)

    def set_classes(self, classes: Sequence[str]) -> None:
        """Take the dataset's class list; ValueError if a loaded checkpoint named other classes."""
        classes = list(classes)
        if self.classes and self.classes != classes:
            raise ValueError(
                f"the dataset's {len(classes)} classes ({', '.join(classes[:4])}, ...) differ from the checkpoint's "
                f"{len(self.classes)} ({', '.join(self.classes[:4])}, ...)"
            )
        self.classes = classes

    def state_dict(self) -> dict[str, Any]:
        return {"classes": list(self.classes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.classes = list(state["classes"])
