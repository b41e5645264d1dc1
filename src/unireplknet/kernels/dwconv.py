"""A drop-in depthwise convolution that dispatches per call to the fastest exact implementation.

Paths:

* ``triton``: the kernels in :mod:`unireplknet.kernels.triton_dwconv` (CUDA tensors; CPU tensors only
  under ``TRITON_INTERPRET=1``, for testing), wrapped as custom ops so ``torch.compile`` and
  ``torch.export`` see one opaque op with a shape function.
* ``torch``: ``F.conv2d`` (cuDNN / oneDNN). On the CPU, large kernels run in NCHW even when the
  input is channels_last, because oneDNN's NCHW depthwise kernel is about 2x faster there for
  k >= 7 (measured with ``benchmarks/cpu_inference.py --layers``); small kernels keep channels_last.

``auto`` (the default) takes the Triton path for floating-point CUDA tensors whose (cropped) kernel
is at least :data:`MIN_TRITON_KERNEL` or dilated (the re-parameterization branches), and the PyTorch
path everywhere else. Force a path with the
environment variable ``UNIREPLKNET_DWCONV=auto|triton|torch``, :func:`set_backend`, or the
:func:`backend` context manager. Tracing, scripting and exporting always take the PyTorch path with
the full kernel, so exported graphs contain a standard ``Conv`` valid for every input size.

Both paths crop the kernel to the taps a 'same' convolution can reach on the input
(:func:`crop_kernel`): exact, and a large saving for 13x13 kernels and dilated kernels on small maps.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BACKENDS",
    "MIN_TRITON_KERNEL",
    "MAX_TRITON_KERNEL",
    "DepthwiseConv2d",
    "DepthwiseConv2dFunction",
    "backend",
    "crop_kernel",
    "depthwise_conv2d",
    "get_backend",
    "set_backend",
    "triton_available",
]

BACKENDS = ("auto", "triton", "torch")
ENV_VAR = "UNIREPLKNET_DWCONV"
# Below this (cropped) kernel size cuDNN's depthwise kernels are already near memory bandwidth
# (anchors: 3x3 at 1.6 TB/s), so the Triton kernel has nothing to win. Dilated kernels take the
# Triton path at any size, so a training step's re-parameterization branches run there too
# (benchmarks/gpu_benchmark.py times them against cuDNN).
MIN_TRITON_KERNEL = 7
MAX_TRITON_KERNEL = 31
# oneDNN's NCHW depthwise kernel beats its channels_last one from this kernel size on.
CPU_NCHW_MIN_KERNEL = 7
_TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)

_backend_override: str | None = None


def _check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown depthwise-conv backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def get_backend() -> str:
    """The backend in force: :func:`set_backend`'s, else ``$UNIREPLKNET_DWCONV``, else ``auto``."""
    if _backend_override is not None:
        return _backend_override
    return _check_backend(os.environ.get(ENV_VAR, "auto").strip().lower() or "auto")


def set_backend(name: str | None) -> str | None:
    """Force ``"triton"`` or ``"torch"`` (or ``"auto"``) process-wide; ``None`` defers to the env var.

    Returns the previous override, so it can be restored.
    """
    global _backend_override
    previous = _backend_override
    _backend_override = None if name is None else _check_backend(name)
    return previous


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """``with backend("torch"): ...`` runs the block on the given depthwise-conv path."""
    previous = set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


def triton_available() -> bool:
    """True when Triton is installed (the Triton path also needs a CUDA tensor or the interpreter)."""
    return _TRITON_INSTALLED


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _exporting() -> bool:
    return (
        torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_exporting()
    )


def crop_kernel(weight: torch.Tensor, height: int, width: int, dilation: int = 1) -> torch.Tensor:
    """Drop the taps a stride-1 'same' convolution can never reach on a ``height x width`` map.

    Tap ``t`` of a ``(C, 1, k, k)`` kernel reads ``dilation * |t - k // 2|`` pixels away from the
    output pixel, and only offsets up to ``height - 1`` (resp. ``width - 1``) land inside the map: the
    kernel acts exactly like its central ``2 * min(k // 2, (height - 1) // dilation) + 1`` rows (likewise
    columns) with the same dilation and 'same' padding. The dropped taps' gradients are zero either way.
    """
    kh, kw = weight.shape[-2:]
    crop_h = kh // 2 - min(kh // 2, max(0, height - 1) // dilation)
    crop_w = kw // 2 - min(kw // 2, max(0, width - 1) // dilation)
    if crop_h == 0 and crop_w == 0:
        return weight
    return weight[..., crop_h : kh - crop_h, crop_w : kw - crop_w]


# --------------------------------------------------------------------------------------------------
# The Triton path as custom ops: opaque to torch.compile / torch.export, with shape functions.


@torch.library.custom_op("unireplknet::dwconv2d_forward", mutates_args=())
def _dwconv2d_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int) -> torch.Tensor:
    from .triton_dwconv import dwconv_forward

    return dwconv_forward(x, weight, bias, dilation)


@_dwconv2d_forward.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("unireplknet::dwconv2d_weight_grad", mutates_args=())
def _dwconv2d_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    from .triton_dwconv import dwconv_weight_grad

    return dwconv_weight_grad(x, grad_out, kernel_size, dilation)


@_dwconv2d_weight_grad.register_fake
def _(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    return x.new_empty(x.shape[1], 1, kernel_size, kernel_size)


def _dense_like(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # Autograd may hand over expanded (stride-0) or permuted gradients; the kernels accept any strides
    # but are fast only on the two dense layouts.
    if grad.is_contiguous() or grad.is_contiguous(memory_format=torch.channels_last):
        return grad
    channels_last = like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous()
    return grad.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class DepthwiseConv2dFunction(torch.autograd.Function):
    """Autograd wrapper of the Triton kernels.

    ``apply(x (N, C, H, W), weight (C, 1, k, k), bias (C,) | None, dilation: int) -> (N, C, H, W)``.
    Input, weight and bias must share a dtype (callers cast under autocast). The weight gradient is
    deterministic; the bias gradient is ``grad.sum((0, 2, 3))``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.dilation = dilation
        return _dwconv2d_forward(x, weight, bias, dilation)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad = _dense_like(grad, x)
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        # Stride 1, 'same' padding: the transposed convolution is the convolution with the kernel
        # rotated by 180 degrees, at the same dilation.
        grad_x = _dwconv2d_forward(grad, weight.flip(-1, -2), None, ctx.dilation) if need_x else None
        grad_w = _dwconv2d_weight_grad(x, grad, weight.shape[-1], ctx.dilation) if need_w else None
        grad_b = grad.sum((0, 2, 3)) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b, None


# --------------------------------------------------------------------------------------------------
# Dispatch.


def _use_triton(x: torch.Tensor, kernel_size: int, dilation: int, choice: str) -> bool:
    supported = (
        triton_available()
        and x.dtype in _TRITON_DTYPES
        and kernel_size <= MAX_TRITON_KERNEL
        and (x.is_cuda or _interpreting())
    )
    if choice == "torch":
        return False
    if choice == "triton":
        if not supported:
            raise ValueError(
                f"the Triton depthwise conv cannot run here (device {x.device.type}, dtype {x.dtype}, "
                f"kernel {kernel_size}, triton installed: {triton_available()}): it needs Triton, a CUDA "
                f"tensor (or TRITON_INTERPRET=1 on CPU), a floating dtype and k <= {MAX_TRITON_KERNEL}; "
                f"use backend 'auto' or 'torch'"
            )
        return True
    worth_it = kernel_size >= MIN_TRITON_KERNEL or (dilation > 1 and kernel_size > 1)
    return supported and x.is_cuda and x.dtype != torch.float64 and worth_it


def _torch_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int) -> torch.Tensor:
    kh, kw = weight.shape[-2:]
    padding = (dilation * (kh // 2), dilation * (kw // 2))
    channels = x.shape[1]
    if (
        x.device.type == "cpu"
        and min(kh, kw) >= CPU_NCHW_MIN_KERNEL
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
        and not _exporting()
    ):
        y = F.conv2d(x.contiguous(), weight, bias, padding=padding, dilation=dilation, groups=channels)
        return y.contiguous(memory_format=torch.channels_last)
    return F.conv2d(x, weight, bias, padding=padding, dilation=dilation, groups=channels)


def depthwise_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    dilation: int = 1,
    backend: str | None = None,
) -> torch.Tensor:
    """Stride-1, 'same'-padded depthwise convolution, on the fastest exact path for this call.

    Args:
        x: ``(N, C, H, W)``, channels_last or contiguous, fp32 / bf16 / fp16 (fp64 too).
        weight: ``(C, 1, k, k)`` with odd ``k``.
        bias: ``(C,)`` or None.
        dilation: spacing of the kernel taps (an int >= 1).
        backend: ``"auto"``, ``"triton"`` or ``"torch"``; default: :func:`get_backend`.

    Returns:
        ``(N, C, H, W)``, equal to
        ``F.conv2d(x, weight, bias, padding=dilation * (k // 2), dilation=dilation, groups=C)``.
    """
    if x.dim() != 4 or weight.dim() != 4 or weight.shape[0] != x.shape[1] or weight.shape[1] != 1:
        raise ValueError(
            f"depthwise conv expects x (N, C, H, W) and weight (C, 1, k, k); got x {tuple(x.shape)} "
            f"and weight {tuple(weight.shape)}"
        )
    kh, kw = weight.shape[-2:]
    if kh != kw or kh % 2 == 0:
        raise ValueError(f"depthwise conv needs a square odd kernel for 'same' padding, got {kh}x{kw}")
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"depthwise conv dilation must be an int >= 1, got {dilation!r}")
    choice = _check_backend(backend) if backend is not None else get_backend()
    if _exporting():
        return _torch_conv(x, weight, bias, dilation)
    height, width = x.shape[2:]
    # The Triton kernels take square kernels: crop to the reach of the map's longer side.
    square = crop_kernel(weight, max(height, width), max(height, width), dilation)
    if not _use_triton(x, square.shape[-1], dilation, choice):
        return _torch_conv(x, crop_kernel(weight, height, width, dilation), bias, dilation)
    weight = square
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
    elif weight.dtype != x.dtype:
        raise ValueError(f"input dtype {x.dtype} and weight dtype {weight.dtype} differ; cast one of them")
    bias = bias.to(x.dtype) if bias is not None else None
    return DepthwiseConv2dFunction.apply(x, weight, bias, dilation)


class DepthwiseConv2d(nn.Conv2d):
    """Drop-in for ``nn.Conv2d(C, C, k, padding=dilation * (k // 2), dilation=dilation, groups=C, bias=bias)``
    on the fast dispatch.

    Same parameters, state-dict keys (``weight (C, 1, k, k)``, ``bias (C,)``) and ``isinstance``
    relation as the ``nn.Conv2d`` it replaces, so checkpoints, re-parameterization, export and
    ``torch.compile`` work unchanged. ``backend`` pins this module to a path (default: global choice).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        bias: bool = True,
        dilation: int = 1,
        backend: str | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"a 'same'-padded depthwise conv needs an odd kernel size, got {kernel_size}")
        if dilation < 1:
            raise ValueError(f"depthwise conv dilation must be >= 1, got {dilation}")
        super().__init__(
            channels,
            channels,
            kernel_size,
            padding=dilation * (kernel_size // 2),
            dilation=dilation,
            groups=channels,
            bias=bias,
            device=device,
            dtype=dtype,
        )
        self.backend = None if backend is None else _check_backend(backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():  # TorchScript compiles only this branch: the standard full-kernel conv
            return self._conv_forward(x, self.weight, self.bias)
        return depthwise_conv2d(x, self.weight, self.bias, self.dilation[0], self.backend)
