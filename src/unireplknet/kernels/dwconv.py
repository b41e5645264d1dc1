"""A drop-in depthwise convolution that dispatches per call to the fastest exact implementation.

Paths:

* ``triton``: the kernels in :mod:`unireplknet.kernels.triton_dwconv` (CUDA tensors; CPU tensors only
  under ``TRITON_INTERPRET=1``, for testing), wrapped as custom ops so ``torch.compile`` and
  ``torch.export`` see one opaque op with a shape function.
* ``torch``: ``F.conv2d`` (cuDNN / oneDNN). On the CPU, large kernels run in NCHW even when the
  input is channels_last, because oneDNN's NCHW depthwise kernel is about 2x faster there for
  k >= 7 (measured with ``benchmarks/cpu_inference.py --layers``); small kernels keep channels_last.

``auto`` (the default) considers the Triton algorithms for floating-point CUDA tensors whose (cropped)
kernel is at least :data:`MIN_TRITON_KERNEL` or dilated (the re-parameterization branches), and takes
the PyTorch path everywhere else. Among the candidates -- ``torch`` (cuDNN), ``triton_direct`` (CUDA
cores, every dtype) and ``triton_mma`` (tensor cores, bf16/fp16) -- the :class:`AlgorithmSelector`
times each on the real device the first time it meets a (direction, shape, dtype, layout, kernel,
dilation) and keeps the fastest, like ``torch.backends.cudnn.benchmark``, so no call is slower than
cuDNN whatever the static model got wrong; the choice is cached in memory and, with
``UNIREPLKNET_DWCONV_CACHE=FILE.json``, on disk. Under ``torch.use_deterministic_algorithms(True)`` it
never times (timing noise would change the algorithm, hence the rounding, from run to run): it takes
the first candidate of a fixed preference order. Force a path with the
environment variable ``UNIREPLKNET_DWCONV=auto|triton|torch`` (``triton`` selects among the Triton
algorithms only), :func:`set_backend`, or the :func:`backend` context manager. Tracing, scripting and exporting always take the PyTorch path with
the full kernel, so exported graphs contain a standard ``Conv`` valid for every input size.

Both paths crop the kernel to the taps a 'same' convolution can reach on the input
(:func:`crop_kernel`): exact, and a large saving for 13x13 kernels and dilated kernels on small maps.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import statistics
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ALGORITHMS",
    "BACKENDS",
    "Algorithm",
    "AlgorithmSelector",
    "MIN_TRITON_KERNEL",
    "MAX_TRITON_KERNEL",
    "DepthwiseConv2d",
    "DepthwiseConv2dFunction",
    "backend",
    "crop_kernel",
    "depthwise_conv2d",
    "get_backend",
    "get_selector",
    "set_backend",
    "set_selector",
    "triton_available",
]

# "triton_direct" / "triton_mma" force one Triton algorithm (see ALGORITHMS).
BACKENDS = ("auto", "triton", "torch", "triton_direct", "triton_mma")
ENV_VAR = "UNIREPLKNET_DWCONV"
CACHE_ENV_VAR = "UNIREPLKNET_DWCONV_CACHE"
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
# The Triton algorithms as custom ops: opaque to torch.compile / torch.export, with shape functions.


@torch.library.custom_op("unireplknet::dwconv2d_forward", mutates_args=())
def _dwconv2d_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int, algorithm: str
) -> torch.Tensor:
    if algorithm == "triton_mma":
        from .triton_dwconv_mma import mma_forward

        return mma_forward(x, weight, bias, dilation)
    from .triton_dwconv import dwconv_forward

    return dwconv_forward(x, weight, bias, dilation)


@_dwconv2d_forward.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int, algorithm: str) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("unireplknet::dwconv2d_weight_grad", mutates_args=())
def _dwconv2d_weight_grad(
    x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int, dilation: int, algorithm: str
) -> torch.Tensor:
    if algorithm == "triton_mma":
        from .triton_dwconv_mma import mma_weight_grad

        return mma_weight_grad(x, grad_out, kernel_size, dilation)
    from .triton_dwconv import dwconv_weight_grad

    return dwconv_weight_grad(x, grad_out, kernel_size, dilation)


@_dwconv2d_weight_grad.register_fake
def _(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int, dilation: int, algorithm: str) -> torch.Tensor:
    return x.new_empty(x.shape[1], 1, kernel_size, kernel_size)


def _torch_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int) -> torch.Tensor:
    k = weight.shape[-1]
    return F.conv2d(x, weight, bias, padding=dilation * (k // 2), dilation=dilation, groups=x.shape[1])


def _torch_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    shape = (x.shape[1], 1, kernel_size, kernel_size)
    padding = dilation * (kernel_size // 2)
    return torch.nn.grad.conv2d_weight(x, shape, grad_out, padding=padding, dilation=dilation, groups=x.shape[1])


@dataclass(frozen=True)
class Algorithm:
    """One way to compute the three directions of a depthwise conv.

    ``forward(x, weight, bias, dilation) -> y`` (also the input gradient: for stride 1 and 'same'
    padding the transposed convolution is the convolution with the kernel rotated by 180 degrees) and
    ``weight_grad(x, grad_out, kernel_size, dilation) -> (C, 1, k, k)``; ``dtypes``: what it takes.
    """

    name: str
    dtypes: tuple[torch.dtype, ...]
    forward: Callable[..., torch.Tensor]
    weight_grad: Callable[..., torch.Tensor]
    triton: bool = True


def _triton_algorithm(name: str, dtypes: tuple[torch.dtype, ...]) -> Algorithm:
    return Algorithm(
        name,
        dtypes,
        lambda x, w, b, d: _dwconv2d_forward(x, w, b, d, name),
        lambda x, g, k, d: _dwconv2d_weight_grad(x, g, k, d, name),
    )


# In preference order: the order taken without timing (deterministic mode, or off the GPU).
ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        _triton_algorithm("triton_mma", (torch.bfloat16, torch.float16)),
        _triton_algorithm("triton_direct", _TRITON_DTYPES),
        Algorithm("torch", _TRITON_DTYPES, _torch_forward, _torch_weight_grad, triton=False),
    )
}


def _candidates(choice: str, dtype: torch.dtype) -> list[str]:
    if choice in ALGORITHMS:
        return [choice]
    return [a.name for a in ALGORITHMS.values() if dtype in a.dtypes and (a.triton or choice == "auto")]


# --------------------------------------------------------------------------------------------------
# Run-time algorithm selection.


def cuda_event_timer(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` runs after one warm-up, timed with CUDA events."""
    fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


class AlgorithmSelector:
    """Times every candidate algorithm once per call signature and keeps the fastest.

    Args:
        timer: ``timer(fn) -> milliseconds``; default: CUDA events (median of 5 after a warm-up).
        cache_path: a JSON file the choices are read from and written to (atomically); default
            ``$UNIREPLKNET_DWCONV_CACHE``, unset: memory only.
    """

    def __init__(self, timer: Callable[[Callable[[], object]], float] | None = None, cache_path: str | None = None):
        self.timer = timer or cuda_event_timer
        path = cache_path if cache_path is not None else os.environ.get(CACHE_ENV_VAR, "")
        self.cache_path = Path(path) if path else None
        self.choices: dict[str, str] = {}
        self.timings: dict[str, dict[str, float]] = {}
        if self.cache_path is not None and self.cache_path.exists():
            try:
                self.choices = dict(json.loads(self.cache_path.read_text()))
            except (OSError, ValueError) as e:
                raise ValueError(
                    f"the depthwise-conv algorithm cache {self.cache_path} is unreadable ({e}); delete it or "
                    f"point ${CACHE_ENV_VAR} elsewhere"
                ) from e

    def choose(self, key: str, candidates: dict[str, Callable[[], object]], timed: bool) -> str:
        """The algorithm for ``key``: the cached choice, else (``timed``) the fastest, else the first.

        A candidate that fails (e.g. a kernel the device cannot compile) is never chosen."""
        names = list(candidates)
        if len(names) == 1 or not timed or torch.are_deterministic_algorithms_enabled():
            return names[0]
        cached = self.choices.get(key)
        if cached in candidates:
            return cached
        times = {}
        for name, fn in candidates.items():
            try:
                times[name] = self.timer(fn)
            except Exception:  # noqa: BLE001 -- a candidate that cannot run here is skipped, not fatal
                times[name] = float("inf")
        best = min(names, key=lambda n: times[n])
        if times[best] == float("inf"):
            raise RuntimeError(f"no depthwise-conv algorithm ran for {key}: tried {', '.join(names)}")
        self.choices[key] = best
        self.timings[key] = times
        self._save()
        return best

    def _save(self) -> None:
        if self.cache_path is None:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.choices, f, indent=1, sort_keys=True)
            os.replace(tmp, self.cache_path)
        except BaseException:
            os.unlink(tmp)
            raise


_selector: AlgorithmSelector | None = None


def get_selector() -> AlgorithmSelector:
    """The process-wide :class:`AlgorithmSelector` (created on first use)."""
    global _selector
    if _selector is None:
        _selector = AlgorithmSelector()
    return _selector


def set_selector(selector: AlgorithmSelector | None) -> AlgorithmSelector | None:
    """Install ``selector`` process-wide (``None``: a fresh default one on next use); returns the previous."""
    global _selector
    previous, _selector = _selector, selector
    return previous


def _accelerated(x: torch.Tensor) -> bool:
    """Whether ``x`` lives where the Triton kernels run compiled and candidates can be timed."""
    return x.is_cuda


def selection_key(direction: str, x: torch.Tensor, kernel_size: int, dilation: int) -> str:
    """``direction|NxCxHxW|k|d|dtype|layout|device``: what the choice of algorithm depends on."""
    layout = "channels_last" if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else "nchw"
    device = torch.cuda.get_device_name(x.device) if x.is_cuda else x.device.type
    shape = "x".join(map(str, x.shape))
    return f"{direction}|{shape}|k{kernel_size}|d{dilation}|{str(x.dtype).removeprefix('torch.')}|{layout}|{device}"


def _select(direction: str, x: torch.Tensor, kernel_size: int, dilation: int, choice: str, run) -> str:
    names = _candidates(choice, x.dtype)
    candidates = {name: (lambda name=name: run(ALGORITHMS[name])) for name in names}
    return get_selector().choose(selection_key(direction, x, kernel_size, dilation), candidates, _accelerated(x))


def _dense_like(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # Autograd may hand over expanded (stride-0) or permuted gradients; the kernels accept any strides
    # but are fast only on the two dense layouts.
    if grad.is_contiguous() or grad.is_contiguous(memory_format=torch.channels_last):
        return grad
    channels_last = like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous()
    return grad.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class DepthwiseConv2dFunction(torch.autograd.Function):
    """Autograd wrapper that runs each direction on its selected algorithm.

    ``apply(x (N, C, H, W), weight (C, 1, k, k), bias (C,) | None, dilation: int, choice: "auto" | "triton")
    -> (N, C, H, W)``. Input, weight and bias must share a dtype (callers cast under autocast). Every
    algorithm's weight gradient is deterministic; the bias gradient is ``grad.sum((0, 2, 3))``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, dilation, choice):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.dilation, ctx.choice = dilation, choice
        k = weight.shape[-1]
        name = _select("forward", x, k, dilation, choice, lambda a: a.forward(x, weight, bias, dilation))
        return ALGORITHMS[name].forward(x, weight, bias, dilation)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad = _dense_like(grad, x)
        need_x, need_w, need_b, _, _ = ctx.needs_input_grad
        d, k = ctx.dilation, weight.shape[-1]
        grad_x = grad_w = None
        if need_x:
            rotated = weight.flip(-1, -2)
            name = _select("input_grad", grad, k, d, ctx.choice, lambda a: a.forward(grad, rotated, None, d))
            grad_x = ALGORITHMS[name].forward(grad, rotated, None, d)
        if need_w:
            name = _select("weight_grad", x, k, d, ctx.choice, lambda a: a.weight_grad(x, grad, k, d))
            grad_w = ALGORITHMS[name].weight_grad(x, grad, k, d)
        grad_b = grad.sum((0, 2, 3)) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b, None, None


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
    if choice != "auto":
        if choice in ALGORITHMS and x.dtype not in ALGORITHMS[choice].dtypes:
            names = ", ".join(str(d).removeprefix("torch.") for d in ALGORITHMS[choice].dtypes)
            raise ValueError(f"the {choice} depthwise conv takes {names}, not {x.dtype}; use backend 'triton'")
        if not supported:
            raise ValueError(
                f"the Triton depthwise conv cannot run here (device {x.device.type}, dtype {x.dtype}, "
                f"kernel {kernel_size}, triton installed: {triton_available()}): it needs Triton, a CUDA "
                f"tensor (or TRITON_INTERPRET=1 on CPU), a floating dtype and k <= {MAX_TRITON_KERNEL}; "
                f"use backend 'auto' or 'torch'"
            )
        return True
    worth_it = kernel_size >= MIN_TRITON_KERNEL or (dilation > 1 and kernel_size > 1)
    return supported and _accelerated(x) and x.dtype != torch.float64 and worth_it


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
    return DepthwiseConv2dFunction.apply(x, weight, bias, dilation, choice)


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
