"""Export the re-parameterized (deploy) structure to ONNX and TorchScript.

Both exporters work on a re-parameterized copy of the model (the caller's model is not modified),
in fp32 on the CPU. Exported graphs contain standard ``Conv`` nodes with the full kernels: the
Triton path and the kernel cropping of :mod:`unireplknet.kernels` are switched off while tracing,
so one file serves every input size. Both serialise into memory and write the file atomically
(through a hidden temporary file that the next export of the same file cleans up after a crash), so a
failed export (a full disk, no permission) raises an ``OSError`` and leaves no file that looks finished.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .files import atomic_write_bytes, check_output_path, remove_stale_temp_files
from .reparam import reparameterize

__all__ = ["deploy_copy", "export_onnx", "export_torchscript"]

MIN_OPSET = 17


def deploy_copy(model: nn.Module) -> nn.Module:
    """A re-parameterized fp32 CPU copy of ``model`` in eval mode (``model`` itself is untouched)."""
    model = copy.deepcopy(model).float().cpu().eval()
    return reparameterize(model)


def _example_input(input_size: Sequence[int], batch_size: int) -> torch.Tensor:
    if len(input_size) != 3 or any(int(s) <= 0 for s in input_size):
        raise ValueError(f"input_size must be (channels, height, width) with positive sizes, got {tuple(input_size)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return torch.randn(batch_size, *(int(s) for s in input_size))


def _prepare_path(path: str | os.PathLike) -> Path:
    """Check the output location before the (slow) export and remove what earlier crashed exports left."""
    path = check_output_path(path)
    if not path.parent.exists():
        raise ValueError(f"output directory {path.parent} does not exist; create it first")
    remove_stale_temp_files(path.parent, [path.name])
    return path


def _output_names(outputs: torch.Tensor | Sequence[torch.Tensor]) -> list[str]:
    if isinstance(outputs, torch.Tensor):
        return ["output"]
    return [f"output{i}" for i in range(len(outputs))]


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_size: Sequence[int] = (3, 224, 224),
    batch_size: int = 1,
    opset: int = 17,
    dynamic_batch: bool = True,
) -> Path:
    """Write the deploy structure of ``model`` as an ONNX file.

    Args:
        model: any model containing UniRepLKNet layers (training or deploy structure).
        path: the ``.onnx`` file to write (its directory must exist).
        input_size: ``(C, H, W)`` of the example input used for tracing.
        batch_size: batch of the example input (and the fixed batch when ``dynamic_batch=False``).
        opset: ONNX opset, >= 17.
        dynamic_batch: make the batch dimension of the input and every output symbolic (``batch``).

    Returns:
        ``path``. The graph has one input ``input`` ``(batch, C, H, W)`` and outputs ``output``
        (or ``output0``, ``output1``, ... for a model returning a list, e.g. ``features_only``).
    """
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET} (LayerNormalization), got {opset}")
    path = _prepare_path(path)
    model = deploy_copy(model)
    example = _example_input(input_size, batch_size)
    with torch.no_grad():
        names = _output_names(model(example))
    dynamic_axes = {name: {0: "batch"} for name in ["input", *names]} if dynamic_batch else None
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks become constants: intended
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter, chosen on purpose
        torch.onnx.export(
            model,
            (example,),
            buffer,
            input_names=["input"],
            output_names=names,
            opset_version=opset,
            dynamic_axes=dynamic_axes,
            dynamo=False,
        )
    return atomic_write_bytes(path, buffer.getvalue())


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_size: Sequence[int] = (3, 224, 224),
    batch_size: int = 1,
) -> Path:
    """Trace the deploy structure of ``model`` and save it as TorchScript (``torch.jit.load`` reads it).

    Args:
        model: any model containing UniRepLKNet layers (training or deploy structure).
        path: the ``.pt`` file to write (its directory must exist).
        input_size: ``(C, H, W)`` of the example input used for tracing.
        batch_size: batch of the example input; the traced module accepts any batch size and any
            spatial size the network's downsampling allows.

    Returns:
        ``path``.
    """
    path = _prepare_path(path)
    model = deploy_copy(model)
    example = _example_input(input_size, batch_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated; asking for it is explicit
        traced = torch.jit.trace(model, example, check_trace=False)
        # Serialised in memory, then written by Python: TorchScript's own file writer aborts the process
        # (an uncaught C++ c10::Error) when the disk fills up, where Python raises an OSError the caller handles.
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    return atomic_write_bytes(path, buffer.getvalue())
