"""Measure a model's inference and training-step throughput on this machine, beside timm's ConvNeXt-T.

Both models run in the same process, with the same batch, size, dtype and memory format, so the ratio is
a like-for-like measurement of this hardware. Inference runs the deploy (re-parameterized) structure;
the training step is forward + backward + AdamW on the training structure. On CUDA the depthwise convs
choose their algorithm at run time (:class:`unireplknet.kernels.AlgorithmSelector`); the choice per
layer is part of the result.

>>> from unireplknet.bench import run_bench
>>> result = run_bench("unireplknet_t", batch=128, dtype="bf16")      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["DTYPES", "run_bench"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _build(name: str, num_classes: int) -> tuple[nn.Module, bool]:
    """(model, is_unireplknet): a UniRepLKNet variant by name, anything else from timm's registry."""
    import unireplknet

    if name in unireplknet.list_models():
        return unireplknet.create_model(name, num_classes=num_classes), True
    import timm

    if name not in timm.list_models():
        raise ValueError(
            f"unknown model {name!r}: use a UniRepLKNet variant ({', '.join(unireplknet.list_models())}) "
            f"or a timm model name (e.g. convnext_tiny)"
        )
    return timm.create_model(name, num_classes=num_classes), False


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _timed(step: Callable[[], None], steps: int, warmup: int, device: torch.device, advance: Callable[[], None]):
    for _ in range(warmup):
        step()
        advance()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
        advance()
    _sync(device)
    return (time.perf_counter() - start) / steps


def _measure(
    name: str,
    *,
    batch: int,
    size: int,
    dtype: torch.dtype,
    channels_last: bool,
    compile: bool,
    steps: int,
    warmup: int,
    device: torch.device,
    advance: Callable[[], None],
) -> dict[str, Any]:
    model, is_ours = _build(name, num_classes=1000)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
    target = torch.randint(0, 1000, (batch,), device=device)

    deploy = copy.deepcopy(model).eval()
    if is_ours:
        import unireplknet

        unireplknet.reparameterize(deploy)
    infer_model = torch.compile(deploy) if compile else deploy

    def infer() -> None:
        with torch.no_grad(), _autocast(device, dtype):
            infer_model(x)

    model.train()
    train_model = torch.compile(model) if compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()

    def train_step() -> None:
        with _autocast(device, dtype):
            loss = loss_fn(train_model(x), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    infer_s = _timed(infer, steps, warmup, device, advance)
    train_s = _timed(train_step, steps, warmup, device, advance)
    row = {
        "model": name,
        "inference_img_per_s": round(batch / infer_s, 2),
        "train_img_per_s": round(batch / train_s, 2),
    }
    if device.type == "cuda":
        row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return row


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), disable=not enabled, transient=True
    ) as bar:
        task = bar.add_task("bench", total=total)
        yield lambda: bar.advance(task)


def run_bench(
    model: str = "unireplknet_t",
    *,
    baseline: str = "convnext_tiny",
    batch: int = 128,
    size: int = 224,
    dtype: str = "bf16",
    channels_last: bool = True,
    compile: bool = False,
    steps: int = 10,
    warmup: int = 3,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Inference and training-step images/s of ``model`` and ``baseline`` on ``device``, same run.

    Args:
        model, baseline: a UniRepLKNet variant or any timm model name.
        batch, size: input ``(batch, 3, size, size)``.
        dtype: ``fp32``, ``bf16`` or ``fp16`` (the low-precision ones under autocast).
        channels_last: run model and input in channels_last.
        compile: wrap both structures in ``torch.compile``.
        steps, warmup: timed and untimed iterations per measurement.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``.
        progress: draw a progress bar.

    Returns:
        ``{"device", "torch", "settings", "models": [row, row], "speed_vs_baseline", "algorithms"}``; each row
        has ``inference_img_per_s``, ``train_img_per_s`` (and ``peak_memory_gib`` on CUDA); ``algorithms``
        maps each depthwise-conv call signature to the algorithm chosen for it (CUDA only).
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if batch < 1 or size < 1 or steps < 1 or warmup < 0:
        raise ValueError(f"batch, size and steps must be >= 1 and warmup >= 0, got {batch}, {size}, {steps}, {warmup}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    from .kernels import get_selector

    settings = dict(batch=batch, size=size, dtype=DTYPES[dtype], channels_last=channels_last, compile=compile)
    rows = []
    with _progress(2 * 2 * (steps + warmup), progress) as advance:
        for name in (model, baseline):
            rows.append(_measure(name, **settings, steps=steps, warmup=warmup, device=dev, advance=advance))
    ours, base = rows
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "settings": {**settings, "dtype": dtype, "steps": steps, "warmup": warmup},
        "models": rows,
        "speed_vs_baseline": {
            "inference": round(ours["inference_img_per_s"] / base["inference_img_per_s"], 3),
            "train": round(ours["train_img_per_s"] / base["train_img_per_s"], 3),
        },
        "algorithms": dict(get_selector().choices) if dev.type == "cuda" else {},
    }
