"""The training loop: any :class:`~unireplknet.tasks.Task`, one process or many (``torchrun``).

A run folder holds::

    config.yaml            the resolved config (written first)
    metrics.jsonl          one line per epoch
    train_state.safetensors  everything --resume needs (model, optimizer, scheduler, EMA, RNG, position)
    last.safetensors       weights after the last epoch  (plus config and task state in the metadata)
    best.safetensors       weights of the epoch with the best primary metric
    deploy.safetensors     re-parameterized ``last`` weights, checked against the trained structure
    curves.png             loss and primary metric per epoch
    summary.json           written last: its presence marks a finished run

Resuming is exact: the sample order of an epoch depends only on (seed, epoch), the training state
(including every process's RNG) is saved every ``train.checkpoint_every_steps`` optimizer steps and
at each epoch end, and a resumed run replays the steps after the last save identically. With
``data.num_workers > 0`` per-sample augmentation runs in worker processes whose RNG streams depend
on how batches were spread over workers, so mid-epoch resumption is then exact only in distribution.
``--resume`` first checks that the run's config (except how it runs: device, threads, workers, paths),
its data sizes and its model still match the saved training state, and refuses naming what changed.

A non-finite (NaN/inf) training loss stops the run with :class:`NonFiniteError` (after up to
``train.skip_nonfinite_steps`` dropped steps, each reported); weights that became non-finite are never
written, so the run folder keeps its last good checkpoints. JSON files are strict (non-finite -> null).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint import CheckpointError
from ..config import ConfigError, dump_yaml, validate
from ..files import check_output_path, remove_stale_temp_files
from ..reparam import reparameterize
from ..tasks import Metrics, Task, get_task
from . import distributed, state
from .data import eval_loader, fixed_subset, to_device, train_loader
from .evaluate import autocast, evaluate
from .progress import TrainProgress, console, print_table, summary_table
from .report import append_jsonl, plot_curves, read_jsonl, truncate_jsonl, write_json

__all__ = ["train", "RunPaths", "new_run_dir", "build_task", "NonFiniteError"]


class RunPaths:
    """Where each output of a run lives."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.metrics = self.root / "metrics.jsonl"
        self.state = self.root / "train_state.safetensors"
        self.last = self.root / "last.safetensors"
        self.best = self.root / "best.safetensors"
        self.deploy = self.root / "deploy.safetensors"
        self.curves = self.root / "curves.png"
        self.summary = self.root / "summary.json"
        self.tensorboard = self.root / "tensorboard"


def new_run_dir(cfg: dict[str, Any]) -> Path:
    """``output.dir / output.name`` (default name: ``<task>-<model>-<date-time>``)."""
    out = cfg["output"]
    name = out["name"] or f"{cfg['task']}-{cfg['model']['name']}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return Path(out["dir"]) / name


def build_task(cfg: dict[str, Any]) -> Task:
    return get_task(cfg["task"])(cfg)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


# Settings that change how a run executes, not what it computes: a resumed run may differ in them.
_RESUME_FREE_KEYS = (
    "train.device",
    "train.threads",
    "train.tensorboard",
    "data.num_workers",
    "data.eval_batch_size",
    "data.root",  # the data may move; its size is checked instead
    "output.dir",
    "output.name",
)


def _flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train.lr": 0.001, ...}`` (sequences as lists, so a tuple equals the list YAML reads back)."""
    if isinstance(cfg, dict) and cfg:
        return {k: v for key, value in cfg.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): _plain(cfg)}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _config_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``["data.batch_size 16 -> 32", ...]``: the keys of both configs whose values differ, except
    :data:`_RESUME_FREE_KEYS` (a key only one side has comes from another package version, not an edit)."""
    old, new = _flatten(before), _flatten(after)
    return [
        f"{k} {old[k]!r} -> {new[k]!r}"
        for k in old
        if k in new and not k.startswith(_RESUME_FREE_KEYS) and old[k] != new[k]
    ]


# What every training state holds (the keys --resume reads first).
_STATE_KEYS = ("model", "optimizer", "scheduler", "rng", "epoch", "step_in_epoch", "global_step", "world_size")


def _read_train_state(path: Path) -> dict[str, Any]:
    """The training state at ``path``; CheckpointError when the file is another kind (e.g. a weights file)."""
    saved = state.load_state(path)
    missing = [k for k in _STATE_KEYS if k not in saved] if isinstance(saved, dict) else list(_STATE_KEYS)
    if missing:
        weights_file = isinstance(saved, dict) and "structure" in saved
        kind = "a weights file (model weights only), not" if weights_file else "not"
        raise CheckpointError(
            f"{path} is {kind} a training state (it lacks {', '.join(missing[:3])}); --resume needs the "
            "train_state.safetensors that `unireplknet train` wrote in the run folder. To start from these "
            "weights instead, train a new run with model.checkpoint=FILE"
        )
    return saved


def _clean_run_dir(root: Path) -> None:
    removed = remove_stale_temp_files(root)
    if removed:
        console.print(
            f"removed {len(removed)} temporary file(s) of interrupted writes in {root}: "
            + ", ".join(p.name for p in removed),
            soft_wrap=True,
            markup=False,
            highlight=False,
        )


class NonFiniteError(ValueError):
    """Training produced a NaN/inf loss or weights; the run stops and keeps its last good checkpoints."""


def _all_finite(tensors: dict[str, torch.Tensor]) -> bool:
    # min and max of each tensor in one pass (NaN propagates into both, inf shows in one): 4-7x faster
    # than isfinite(t).all() over a whole state dict, which allocates a mask per tensor.
    extremes = [torch.stack(torch.aminmax(t)) for t in tensors.values() if t.is_floating_point() and t.numel()]
    return not extremes or bool(torch.isfinite(torch.cat(extremes)).all())


class _Trainer:
    def __init__(self, cfg: dict[str, Any], run_dir: Path | None, resume: bool) -> None:
        self.cfg = cfg
        tcfg = cfg["train"]
        self.tcfg = tcfg
        self.dist, self.device = distributed.setup(tcfg["device"])
        if tcfg["threads"]:
            torch.set_num_threads(int(tcfg["threads"]))
        _seed_everything(tcfg["seed"])

        # Everything that can fail on bad input happens before the run folder exists.
        check_output_path(run_dir if run_dir is not None else cfg["output"]["dir"], folder=True)
        self.task = build_task(cfg)
        self.train_set, self.eval_set = self.task.build_datasets()
        test_set = self.task.build_test_dataset()
        self.final_set = self.eval_set if test_set is None else test_set
        self.epoch_eval_set = fixed_subset(self.eval_set, tcfg["epoch_eval_size"], seed=tcfg["seed"])
        model = self.task.build_model()
        if cfg["model"]["sync_bn"] and self.dist.enabled:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(self.device)
        if tcfg["channels_last"]:
            model.to(memory_format=torch.channels_last)
        self.model = model

        bs, accum = cfg["data"]["batch_size"], tcfg["accum_steps"]
        per_process = math.ceil(len(self.train_set) / self.dist.world_size)
        self.steps_per_epoch = per_process // (bs * accum)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the training set has {len(self.train_set)} samples, fewer than one optimizer step needs "
                f"({bs} x {accum} accumulation steps x {self.dist.world_size} processes); lower data.batch_size"
            )
        from timm.optim import create_optimizer_v2
        from timm.scheduler import create_scheduler_v2
        from timm.utils import ModelEmaV3

        ocfg = cfg["optim"]
        self.optimizer = create_optimizer_v2(
            model,
            opt=ocfg["opt"],
            lr=ocfg["lr"],
            weight_decay=ocfg["weight_decay"],
            momentum=ocfg["momentum"],
            layer_decay=ocfg["layer_decay"],
        )
        self.scheduler, _ = create_scheduler_v2(
            self.optimizer,
            sched=ocfg["sched"],
            num_epochs=tcfg["epochs"],
            min_lr=ocfg["min_lr"],
            warmup_lr=ocfg["warmup_lr"],
            warmup_epochs=ocfg["warmup_epochs"],
            step_on_epochs=False,
            updates_per_epoch=self.steps_per_epoch,
        )
        self.ema = ModelEmaV3(model, decay=tcfg["ema_decay"], use_warmup=tcfg["ema_warmup"]) if tcfg["ema"] else None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=tcfg["amp"] == "fp16")
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model: nn.Module = DistributedDataParallel(model, device_ids=ids)
        else:
            self.ddp_model = model

        pin = self.device.type == "cuda"
        self.train_loader = train_loader(
            self.train_set,
            self.dist,
            batch_size=bs,
            steps=self.steps_per_epoch,
            accum_steps=accum,
            seed=tcfg["seed"],
            num_workers=cfg["data"]["num_workers"],
            collate_fn=self.task.collate_fn(True),
            pin_memory=pin,
        )
        self.eval_loaders = {
            name: eval_loader(
                dataset,
                self.dist,
                batch_size=cfg["data"]["eval_batch_size"],
                num_workers=cfg["data"]["num_workers"],
                collate_fn=self.task.collate_fn(False),
                pin_memory=pin,
            )
            for name, dataset in (("epoch", self.epoch_eval_set), ("final", self.final_set))
        }
        self.batch_transform = self.task.batch_transform()
        self.train_metrics = self.task.train_metrics()

        # position in the schedule
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best: float | None = None
        self.skipped_steps = 0  # optimizer steps dropped for a non-finite loss (train.skip_nonfinite_steps)
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.samples_seen = torch.zeros((), dtype=torch.int64)

        if resume:
            if run_dir is None:
                raise ValueError("resume needs the run folder")
            self.paths = RunPaths(run_dir)
            if self.dist.is_main:
                _clean_run_dir(self.paths.root)
            self._load_state(_read_train_state(self.paths.state))
        else:
            root = Path(distributed.gather_objects(str(run_dir or new_run_dir(cfg)))[0])
            self.paths = RunPaths(root)
            if self.dist.is_main:
                if self.paths.state.exists() or self.paths.summary.exists():
                    raise ValueError(
                        f"{root} already holds a run; continue it with --resume {root} or choose another output folder"
                    )
                root.mkdir(parents=True, exist_ok=True)
                _clean_run_dir(root)
                dump_yaml(cfg, self.paths.config)
                self.paths.metrics.unlink(missing_ok=True)
            _seed_everything(tcfg["seed"] + self.dist.rank)  # distinct augmentation per process
        self.tb = None
        if tcfg["tensorboard"] and self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.paths.tensorboard))

    # -- state ------------------------------------------------------------------------------------
    def _train_state(self) -> dict[str, Any]:
        rngs = distributed.gather_objects(state.capture_rng())
        return {
            "model": _unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": rngs,
            "train_metrics": [t.clone() for t in self.train_metrics.state_tensors()] if self.train_metrics else None,
            "loss_sum": self.loss_sum.clone(),
            "samples_seen": self.samples_seen.clone(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "best": self.best,
            "skipped_steps": self.skipped_steps,
            "world_size": self.dist.world_size,
            "task_state": self.task.state_dict(),
            # what --resume checks the run against (see _check_resumable)
            "config": self.cfg,
            "data": self._data_fingerprint(),
        }

    def _data_fingerprint(self) -> dict[str, int]:
        return {
            "train_samples": len(self.train_set),
            "val_samples": len(self.eval_set),
            "eval_samples": len(self.final_set),
            "steps_per_epoch": self.steps_per_epoch,
        }

    def _check_resumable(self, saved: dict[str, Any]) -> None:
        """Refuse to resume when the config, model or data differ from the run's (naming what changed)."""
        where = self.paths.root
        if "config" in saved:  # training states written before these checks hold no config
            changed = _config_changes(saved["config"], self.cfg)
            if changed:
                raise ValueError(
                    f"cannot resume {where}: its config.yaml changed since the run started ({'; '.join(changed)}); "
                    "resuming would not continue the same run (schedule, batches, model). Restore those values, "
                    "or start a new run with them (optionally from this run's weights via model.checkpoint)"
                )
        if "data" in saved:
            now = self._data_fingerprint()
            changed = [f"{k} {saved['data'][k]} -> {now[k]}" for k in now if saved["data"].get(k, now[k]) != now[k]]
            if changed:
                raise ValueError(
                    f"cannot resume {where}: the data changed since the run started ({'; '.join(changed)}); "
                    "restore the dataset the run used, or start a new run"
                )
        mine = _unwrap(self.model).state_dict()
        theirs = saved["model"]
        differ = sorted(set(mine) ^ set(theirs)) + sorted(
            k for k in set(mine) & set(theirs) if tuple(mine[k].shape) != tuple(theirs[k].shape)
        )
        if differ:
            raise ValueError(
                f"cannot resume {where}: the model built from its config does not match the saved training state "
                f"({len(differ)} tensors differ, e.g. {', '.join(differ[:3])}); was the run folder's config or the "
                "package changed? Start a new run instead"
            )

    def _save_state(self) -> None:
        snapshot = self._train_state()  # collective: every process takes part
        self._check_finite_weights(snapshot["model"], "training state")  # same weights everywhere: all stop
        if self.dist.is_main:
            state.save_state(self.paths.state, snapshot)

    def _load_state(self, saved: dict[str, Any]) -> None:
        if saved["world_size"] != self.dist.world_size:
            raise ValueError(
                f"{self.paths.root} was trained with {saved['world_size']} processes; resume it with the same number"
            )
        self._check_resumable(saved)
        _unwrap(self.model).load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if self.ema is not None:
            self.ema.module.load_state_dict(saved["ema"])
        self.scaler.load_state_dict(saved["scaler"])
        if self.train_metrics is not None:
            for mine, stored in zip(self.train_metrics.state_tensors(), saved["train_metrics"], strict=True):
                mine.copy_(stored)
        self.loss_sum.copy_(saved["loss_sum"])
        self.samples_seen.copy_(saved["samples_seen"])
        self.epoch, self.step_in_epoch = saved["epoch"], saved["step_in_epoch"]
        self.global_step, self.best = saved["global_step"], saved["best"]
        self.skipped_steps = saved.get("skipped_steps", 0)
        self.task.load_state_dict(saved["task_state"])
        state.restore_rng(saved["rng"][self.dist.rank])
        if self.dist.is_main:
            truncate_jsonl(self.paths.metrics, before_epoch=self.epoch)

    def _weights_info(self, structure: str, metrics: dict[str, float] | None = None) -> dict[str, Any]:
        return {
            "config": self.cfg,
            "task_state": self.task.state_dict(),
            "structure": structure,
            "epoch": self.epoch,
            "metrics": metrics or {},
        }

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else _unwrap(self.model)

    # -- loop -------------------------------------------------------------------------------------
    def _reset_epoch_accumulators(self) -> None:
        self.loss_sum.zero_()
        self.samples_seen.zero_()
        if self.train_metrics is not None:
            for t in self.train_metrics.state_tensors():
                t.zero_()

    def _step_is_finite(self, step_loss: torch.Tensor) -> bool:
        """Whether this optimizer step's loss is finite on every process (all of them agree)."""
        bad = (~torch.isfinite(step_loss)).to(torch.float64).reshape(1)
        distributed.all_reduce_sum([bad])
        return bool(bad.item() == 0)

    def _skip_nonfinite_step(self, mean_loss: torch.Tensor) -> None:
        """Drop this step (no optimizer update); stop the run once more than the allowed number were dropped."""
        self.skipped_steps += 1
        allowed = self.tcfg["skip_nonfinite_steps"]
        where = f"epoch {self.epoch + 1}, step {self.step_in_epoch + 1} (global step {self.global_step + 1})"
        value = "nan" if mean_loss.isnan() else f"{mean_loss.item():g}"
        if self.skipped_steps > allowed or not _all_finite(_unwrap(self.model).state_dict()):
            skipped = f" after {allowed} skipped steps" if allowed else ""
            raise NonFiniteError(
                f"training loss is {value} at {where}{skipped}; the run stopped and {self.paths.root} keeps the last "
                "good checkpoints. Likely causes: NaN/inf in the input data (`unireplknet check-data` finds them), "
                "a learning rate too high (optim.lr), fp16 overflow (train.amp=bf16); to skip a few such steps set "
                "train.skip_nonfinite_steps=N"
            )
        if self.dist.is_main:
            console.print(
                f"warning: training loss is {value} at {where}: step skipped "
                f"({self.skipped_steps} of at most {allowed}, train.skip_nonfinite_steps)",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )

    def _check_finite_weights(self, weights: dict[str, torch.Tensor], what: str) -> None:
        """Refuse to write non-finite weights over good files."""
        if not _all_finite(weights):
            bad = next(k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all())
            raise NonFiniteError(
                f"the model's weights became non-finite ({bad} holds NaN/inf) by epoch {self.epoch} "
                f"(global step {self.global_step}); {what} not written, {self.paths.root} keeps the last good "
                "checkpoints. Lower optim.lr, set optim.clip_grad, or check the input data with `unireplknet check-data`"
            )

    def _train_epoch(self, bar: TrainProgress) -> None:
        tcfg, accum = self.tcfg, self.tcfg["accum_steps"]
        sampler = self.train_loader.sampler
        sampler.set_epoch(self.epoch)
        sampler.start = self.step_in_epoch * accum * self.cfg["data"]["batch_size"]
        self.train_loader.generator.manual_seed(tcfg["seed"] * 1_000_003 + self.epoch)
        if self.step_in_epoch == 0:
            self._reset_epoch_accumulators()
        self.ddp_model.train()
        bar.start_pass(f"train {self.epoch + 1}", self.steps_per_epoch, self.step_in_epoch)
        batches = iter(self.train_loader)
        started, images = time.perf_counter(), 0
        while self.step_in_epoch < self.steps_per_epoch:
            step_loss = torch.zeros((), dtype=torch.float64)
            step_samples, step_outputs = 0, []
            for micro in range(accum):
                inputs, targets = next(batches)
                inputs = to_device(inputs, self.device, tcfg["channels_last"])
                targets = to_device(targets, self.device)
                if self.batch_transform is not None:
                    inputs, targets = self.batch_transform(inputs, targets)
                sync = micro == accum - 1 or not self.dist.enabled
                with contextlib.nullcontext() if sync else self.ddp_model.no_sync(), autocast(self.device, tcfg["amp"]):
                    outputs = self.ddp_model(inputs)
                    loss = self.task.loss(outputs, targets, True)
                # Backward even on a non-finite loss: under DDP every process must join the gradient
                # all-reduce; the step is then dropped by all of them together below.
                self.scaler.scale(loss / accum).backward()
                n = len(inputs) if isinstance(inputs, torch.Tensor) else self.cfg["data"]["batch_size"]
                step_loss += loss.detach().double().cpu() * n
                step_samples += n
                images += n
                if self.train_metrics is not None:
                    step_outputs.append((outputs.detach() if isinstance(outputs, torch.Tensor) else outputs, targets))
            if not self._step_is_finite(step_loss):
                self.optimizer.zero_grad(set_to_none=True)
                self._skip_nonfinite_step(step_loss / max(step_samples, 1))
            else:
                self.loss_sum += step_loss
                self.samples_seen += step_samples
                for outputs, targets in step_outputs:
                    self.train_metrics.update(outputs, targets)
                if self.cfg["optim"]["clip_grad"]:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg["optim"]["clip_grad"])
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
            self.global_step += 1
            self.step_in_epoch += 1
            self.scheduler.step_update(num_updates=self.global_step)
            if self.ema is not None:
                self.ema.update(_unwrap(self.model), step=self.global_step)

            elapsed = time.perf_counter() - started
            stats = {"loss": (self.loss_sum / self.samples_seen.clamp(min=1)).item()}
            if self.train_metrics is not None:
                stats.update({k: v for k, v in self.train_metrics.compute().items() if k == self.task.primary_metric})
            stats["img/s"] = images * self.dist.world_size / max(elapsed, 1e-9)
            stats["lr"] = self.optimizer.param_groups[0]["lr"]
            bar.step(stats)
            if self.global_step % tcfg["checkpoint_every_steps"] == 0 and self.step_in_epoch < self.steps_per_epoch:
                self._save_state()
        self.epoch_throughput = images * self.dist.world_size / max(time.perf_counter() - started, 1e-9)

    def _evaluate(
        self, models: list[nn.Module], loader: str, title: str, bar: TrainProgress
    ) -> tuple[list[Metrics], float]:
        """One pass of ``self.eval_loaders[loader]`` through ``models`` (see :func:`evaluate`), shown on ``bar``."""
        bar.start_pass(title, len(self.eval_loaders[loader]))
        return evaluate(
            models,
            self.eval_loaders[loader],
            self.task.new_metrics,
            self.task.loss,
            self.device,
            amp=self.tcfg["amp"],
            channels_last=self.tcfg["channels_last"],
            on_batch=lambda _: bar.step({}),
        )

    def _epoch_end(self, bar: TrainProgress, epoch_started: float) -> None:
        (metrics,), _ = self._evaluate([self.eval_model], "epoch", f"eval {self.epoch + 1}", bar)
        eval_values = metrics.compute()
        train_values = {"loss": (self.loss_sum / self.samples_seen.clamp(min=1)).item()}
        if self.train_metrics is not None:
            train_values.update({k: v for k, v in self.train_metrics.compute().items() if k != "loss"})
        record = {
            "epoch": self.epoch,
            "step": self.global_step,
            "lr": self.optimizer.param_groups[0]["lr"],
            **{f"train_{k}": v for k, v in train_values.items()},
            **{f"eval_{k}": v for k, v in eval_values.items()},
            "train_images_per_s": round(self.epoch_throughput, 2),
            "epoch_time_s": round(time.perf_counter() - epoch_started, 2),
        }
        eval_loss = eval_values.get("loss")
        if eval_loss is not None and not math.isfinite(eval_loss) and _all_finite(self.eval_model.state_dict()):
            raise NonFiniteError(
                f"evaluation after epoch {self.epoch + 1} gives loss {eval_loss} with finite weights: the validation "
                "data holds NaN/inf values; find them with `unireplknet check-data` and fix or drop them"
            )
        primary = eval_values.get(self.task.primary_metric)
        improved = (
            primary is not None
            and math.isfinite(primary)
            and (self.best is None or (primary > self.best if self.task.higher_is_better else primary < self.best))
        )
        if improved:
            self.best = primary
        self.epoch += 1
        self.step_in_epoch = 0
        weights = self.eval_model.state_dict()
        self._check_finite_weights(weights, "weights")
        if self.dist.is_main:
            append_jsonl(self.paths.metrics, record)
            state.save_weights(self.paths.last, weights, self._weights_info("train", eval_values))
            if improved:
                state.save_weights(self.paths.best, weights, self._weights_info("train", eval_values))
            if self.tb is not None:
                for key, value in record.items():
                    if key != "epoch" and isinstance(value, (int, float)):
                        self.tb.add_scalar(key, value, self.epoch)
        self._save_state()
        bar.end_epoch(
            {
                k: v
                for k, v in record.items()
                if k
                in (
                    "epoch",
                    "train_loss",
                    "eval_loss",
                    f"eval_{self.task.primary_metric}",
                    "train_images_per_s",
                    "epoch_time_s",
                )
            }
        )

    def _finish(self, bar: TrainProgress, wall_start: float) -> dict[str, Any]:
        """Full evaluation of the last weights, trained vs re-parameterized, and the run's artifacts."""
        trained = self.eval_model.eval()
        deployed = reparameterize(copy.deepcopy(trained))
        (train_metrics, deploy_metrics), max_diff = self._evaluate(
            [trained, deployed], "final", "final eval (trained + deploy)", bar
        )
        final, deploy_values = train_metrics.compute(), deploy_metrics.compute()
        summary: dict[str, Any] = {}
        if self.dist.is_main:
            state.save_weights(self.paths.deploy, deployed.state_dict(), self._weights_info("deploy", deploy_values))
            outputs = {"run": self.paths.root, "config": self.paths.config, "metrics": self.paths.metrics}
            outputs.update(last=self.paths.last, best=self.paths.best, deploy=self.paths.deploy, state=self.paths.state)
            curves = plot_curves(read_jsonl(self.paths.metrics), self.paths.curves, self.task.primary_metric)
            if curves is not None:
                outputs["curves"] = curves
            outputs.update(train_metrics.report(self.paths.root))
            outputs.update(self.task.write_report(trained, self.final_set, self.paths.root))
            summary = {
                "task": self.cfg["task"],
                "model": self.cfg["model"]["name"],
                "epochs": self.epoch,
                "params": sum(p.numel() for p in trained.parameters()),
                "train_samples": len(self.train_set),
                "val_samples": len(self.eval_set),  # score every epoch, pick best.safetensors
                "eval_samples": len(self.final_set),  # the final evaluation ("eval")
                "eval": final,
                "deploy_eval": deploy_values,
                "deploy_max_abs_diff": max_diff,
                "wall_time_s": round(time.perf_counter() - wall_start, 1),
                "outputs": {k: str(v) for k, v in outputs.items()},
            }
            write_json(self.paths.summary, summary)
        return summary

    def fit(self) -> dict[str, Any]:
        wall_start = time.perf_counter()
        with TrainProgress(self.dist.is_main, self.tcfg["epochs"], self.epoch) as bar:
            if self.dist.is_main:
                bar.log(
                    f"task {self.cfg['task']}, model {self.cfg['model']['name']}, {len(self.train_set)} training / "
                    f"{len(self.eval_set)} validation"
                    + (f" / {len(self.final_set)} test" if self.final_set is not self.eval_set else "")
                    + f" samples, {self.steps_per_epoch} steps per epoch, device {self.device}"
                    + (f" x {self.dist.world_size} processes" if self.dist.enabled else "")
                    + f", run folder {self.paths.root}"
                )
            while self.epoch < self.tcfg["epochs"]:
                epoch_started = time.perf_counter()
                self._train_epoch(bar)
                self._epoch_end(bar, epoch_started)
            summary = self._finish(bar, wall_start)
        if self.tb is not None:
            self.tb.close()
        if self.dist.is_main:
            print_table(summary_table("run summary", _summary_rows(summary, self.task.primary_metric)))
        distributed.barrier()
        return summary


def _summary_rows(summary: dict[str, Any], primary: str) -> dict[str, Any]:
    rows: dict[str, Any] = {
        "task / model": f"{summary['task']} / {summary['model']}",
        "epochs": summary["epochs"],
        "training samples": summary["train_samples"],
    }
    for key, value in summary["eval"].items():
        rows[f"eval {key} ({summary['eval_samples']} samples)"] = value
    rows[f"deploy {primary}"] = summary["deploy_eval"].get(primary)
    rows["deploy vs train max |logit diff|"] = f"{summary['deploy_max_abs_diff']:.3g}"
    rows["wall time"] = f"{summary['wall_time_s']:.1f} s"
    rows.update({f"output: {k}": v for k, v in summary["outputs"].items()})
    return rows


def train(cfg: dict[str, Any], run_dir: str | os.PathLike | None = None, *, resume: bool = False) -> dict[str, Any]:
    """Train ``cfg['task']`` as configured; returns the run summary (empty on non-main processes).

    Args:
        cfg: a resolved config (:func:`unireplknet.config.resolve_config`).
        run_dir: the run folder (default: from ``cfg['output']``); with ``resume`` the folder to continue.
        resume: continue the run in ``run_dir`` from its last saved training state.
    """
    if not isinstance(cfg, Mapping) or "task" not in cfg:
        raise ConfigError("config key 'task' is missing: set 'task' to one of the tasks of 'unireplknet train --help'")
    # A config built by hand (not through resolve_config) gets the same defaults and checks as a YAML file.
    cfg = validate(get_task(cfg["task"]).config_schema, cfg)
    if resume and run_dir is not None and (Path(run_dir) / "summary.json").is_file():
        import json

        summary = json.loads((Path(run_dir) / "summary.json").read_text())
        console.print(
            f"{run_dir} is a finished run ({summary.get('epochs')} epochs, summary.json written); nothing to do. "
            "To train longer, start a new run (e.g. from its weights with model.checkpoint)",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
        return summary
    try:
        return _Trainer(cfg, Path(run_dir) if run_dir is not None else None, resume).fit()
    finally:
        distributed.teardown()
