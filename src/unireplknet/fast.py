"""Fast inference: the re-parameterized model, channels_last, with the per-block arithmetic fused.

>>> fast = unireplknet.fast.optimize_for_inference(model)     # a copy; `model` is untouched
>>> logits = fast(images.contiguous(memory_format=torch.channels_last))

What :func:`optimize_for_inference` does, each step exact up to floating-point rounding:

1. Re-parameterizes (every norm, branch and layer scale folded into the convs and linears).
2. Replaces each block by :class:`FusedInferenceBlock`. On the CPU (oneDNN, fp32 or bf16, no
   autograd) its FFN is two oneDNN matmuls with fused epilogues: ``fc1 + bias + GELU`` and
   ``fc2 + bias + residual``, on weights pre-packed once into oneDNN's blocked layout. SE's channel
   scale goes onto the (4x narrower) FFN input in place, GRN's onto the hidden tensor in place, and
   GRN's norm is a per-sample square-sum through a reused buffer. Together these cut UniRepLKNet-T's
   batch-8 CPU time by about 15% (1 thread), most of it in the early stages, where every extra pass
   over the 4x-wide hidden tensor is expensive.

   oneDNN's packed linear needs CPU support for the dtype: bf16 needs AVX-512 BW/VL/DQ or
   AVX-NE-CONVERT (:func:`onednn_linear_supported` asks PyTorch, as inductor does). Where it is
   missing (AVX2-only CPUs) the block runs the same arithmetic in plain PyTorch ops instead: the
   choice is made by capability, per call. Force a path with ``UNIREPLKNET_FFN=auto|onednn|torch``
   or ``optimize_for_inference(..., ffn_backend=...)``.
3. Converts to channels_last, where the FFN's permutes are free (the large depthwise conv itself picks
   its fastest layout per device, see :mod:`unireplknet.kernels`).
4. Optionally wraps the result in ``torch.compile`` (blocks then take the plain-PyTorch path, which
   inductor fuses itself). On the CPU this measured slower than the eager oneDNN path for
   UniRepLKNet-T (``benchmarks/cpu_inference.py --compile``), so leave it off there.
"""

from __future__ import annotations

import copy
import functools
import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary

from .layers import UniRepLKNetBlock
from .reparam import reparameterize

__all__ = [
    "FFN_BACKENDS",
    "FusedInferenceBlock",
    "get_ffn_backend",
    "onednn_linear_supported",
    "optimize_for_inference",
]

FFN_BACKENDS = ("auto", "onednn", "torch")
FFN_ENV_VAR = "UNIREPLKNET_FFN"
_ONEDNN_DTYPES = (torch.float32, torch.bfloat16)
# Pre-packed oneDNN copies of linear weights, keyed by the weight tensor itself; an entry is rebuilt
# when the weight's storage or version changes (in-place updates, .to(), load_state_dict).
_PACKED = WeakIdKeyDictionary()


def _packed(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """``weight (out, in)`` in oneDNN's blocked layout for matmuls with about ``rows`` input rows."""
    key = (weight.data_ptr(), weight._version, weight.dtype)
    entry = _PACKED.get(weight)
    if entry is None or entry[0] != key:
        entry = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows))
        _PACKED[weight] = entry
    return entry[1]


@functools.cache
def onednn_linear_supported(dtype: torch.dtype) -> bool:
    """Whether this PyTorch build and CPU run oneDNN's packed linear in ``dtype``.

    fp32 needs a oneDNN build; bf16 also needs AVX-512 BW/VL/DQ or AVX-NE-CONVERT (x86) or the ARM
    equivalent, the condition under which ``mkldnn._reorder_linear_weight`` accepts bf16 weights.
    """
    if dtype not in _ONEDNN_DTYPES or not torch.backends.mkldnn.is_available():
        return False
    return dtype != torch.bfloat16 or torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _check_ffn_backend(name: str) -> str:
    if name not in FFN_BACKENDS:
        raise ValueError(f"unknown fused-FFN backend {name!r}; choose one of {', '.join(FFN_BACKENDS)}")
    return name


def get_ffn_backend() -> str:
    """The process-wide fused-FFN path: ``$UNIREPLKNET_FFN`` (``auto``, ``onednn`` or ``torch``), else ``auto``."""
    return _check_ffn_backend(os.environ.get(FFN_ENV_VAR, "auto").strip().lower() or "auto")


def _use_onednn(x: torch.Tensor, block: FusedInferenceBlock) -> bool:
    """oneDNN's fused linears: CPU, no autograd (they have no backward), not being compiled, and
    (unless forced either way) a dtype this CPU runs them in."""
    if (
        torch.compiler.is_compiling()
        or x.device.type != "cpu"
        or (torch.is_grad_enabled() and (x.requires_grad or block.fc1.weight.requires_grad))
    ):
        return False
    backend = block.ffn_backend or get_ffn_backend()
    if backend == "torch":
        return False
    supported = onednn_linear_supported(x.dtype)
    if backend == "onednn" and not supported:
        raise RuntimeError(
            f"the fused FFN was forced onto oneDNN ({FFN_ENV_VAR}=onednn or ffn_backend='onednn'), but this "
            f"PyTorch build or CPU cannot run oneDNN's packed linear in {x.dtype} (bf16 needs AVX-512 BW/VL/DQ "
            "or AVX-NE-CONVERT); use 'auto' to fall back to plain PyTorch where it is missing"
        )
    return supported


class FusedInferenceBlock(nn.Module):
    """A re-parameterized :class:`UniRepLKNetBlock` with SE, GRN and the residual fused into the FFN.

    Shares the block's parameters. ``(N, C, H, W) -> (N, C, H, W)`` (channels_last output; feed
    channels_last input to avoid copies); for inference: it takes the oneDNN path (see the module
    docstring) when it can, and plain PyTorch ops otherwise (other devices, autograd, compilation, a
    dtype the CPU's oneDNN lacks). ``ffn_backend``: ``"auto"`` chooses by capability, ``"onednn"`` or
    ``"torch"`` force a path on the CPU, ``None`` defers to :func:`get_ffn_backend`.
    """

    def __init__(self, block: UniRepLKNetBlock, ffn_backend: str | None = None) -> None:
        super().__init__()
        self.ffn_backend = None if ffn_backend is None else _check_ffn_backend(ffn_backend)
        ffn = block.ffn
        if block.norm is not None or block.gamma is not None or ffn.norm is not None or ffn.grn.beta is not None:
            raise ValueError(
                "FusedInferenceBlock needs a re-parameterized block; call unireplknet.reparameterize first"
            )
        self.dwconv = block.dwconv
        self.se_down = block.se.down
        self.se_up = block.se.up
        self.fc1 = ffn.fc1
        self.grn_gamma = ffn.grn.gamma
        self.fc2 = ffn.fc2

    def _grn_scale(self, norm: torch.Tensor) -> torch.Tensor:
        """GRN's per-sample channel scale ``(N, 4C)`` from the hidden tensor's norms over the pixels."""
        return self.grn_gamma * (norm / (norm.mean(-1, keepdim=True) + 1e-6)) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        pixels = h * w
        y = self.dwconv(x)
        squeeze = F.relu(F.linear(y.mean((2, 3)), self.se_down.weight.flatten(1), self.se_down.bias))
        se_scale = torch.sigmoid(F.linear(squeeze, self.se_up.weight.flatten(1), self.se_up.bias))  # (N, C)
        # (N, P, C) views for channels_last tensors; the SE scale goes onto the FFN input, 4x narrower
        # than its output. y is this block's own intermediate, so scaling it in place is safe.
        tokens = y.permute(0, 2, 3, 1).reshape(n, pixels, c).mul_(se_scale[:, None, :])
        residual = x.permute(0, 2, 3, 1).reshape(n * pixels, c)
        if _use_onednn(x, self):
            rows = n * pixels
            fc1_weight, fc2_weight = _packed(self.fc1.weight, rows), _packed(self.fc2.weight, rows)
            linear = torch.ops.mkldnn._linear_pointwise
            hidden = linear(tokens.reshape(rows, c), fc1_weight, self.fc1.bias, "gelu", [], "none")
            hidden = hidden.view(n, pixels, -1)
            hidden.mul_(self._grn_scale(_pixel_norms(hidden))[:, None, :])
            out = linear.binary(hidden.view(rows, -1), residual, fc2_weight, self.fc2.bias, "add")
        else:
            hidden = F.gelu(self.fc1(tokens))
            hidden = hidden * self._grn_scale(torch.linalg.vector_norm(hidden, dim=1))[:, None, :]
            out = torch.add(self.fc2(hidden).view(n * pixels, c), residual)
        return out.view(n, h, w, c).permute(0, 3, 1, 2)


def _pixel_norms(hidden: torch.Tensor) -> torch.Tensor:
    """``||hidden||_2`` over the pixels: ``(N, P, D) -> (N, D)``.

    One sample at a time through a reused square buffer: on the CPU this beats both
    ``vector_norm(dim=1)`` (a slow strided reduction) and one batch-sized temporary.
    """
    n, pixels, dim = hidden.shape
    squares = hidden.new_empty(pixels, dim)
    sums = hidden.new_empty(n, dim)
    for sample, total in zip(hidden, sums, strict=True):
        torch.sum(torch.mul(sample, sample, out=squares), 0, out=total)
    return sums.sqrt_()


def _fuse_blocks(module: nn.Module, ffn_backend: str | None) -> None:
    for name, child in module.named_children():
        if isinstance(child, UniRepLKNetBlock):
            setattr(module, name, FusedInferenceBlock(child, ffn_backend))
        else:
            _fuse_blocks(child, ffn_backend)


def optimize_for_inference(
    model: nn.Module,
    *,
    channels_last: bool = True,
    fuse: bool = True,
    compile: bool = False,
    inplace: bool = False,
    ffn_backend: str | None = None,
) -> nn.Module:
    """The fastest exact inference version of any model containing UniRepLKNet blocks.

    Args:
        model: a UniRepLKNet (or a network built from its blocks), training or deploy structure.
        channels_last: convert weights to channels_last; feed ``x.contiguous(memory_format=torch.channels_last)``.
        fuse: replace blocks by :class:`FusedInferenceBlock`.
        compile: wrap the result in ``torch.compile`` (first call compiles; on the CPU the eager
            oneDNN path is faster, see the module docstring).
        inplace: convert ``model`` itself instead of a copy.
        ffn_backend: the fused blocks' FFN path for CPU inference: ``"auto"`` (oneDNN where
            :func:`onednn_linear_supported` for the input's dtype, plain PyTorch ops elsewhere),
            ``"onednn"`` (error where this CPU lacks it), ``"torch"``, or ``None``:
            :func:`get_ffn_backend` at each call.

    Returns:
        The converted model in eval mode with ``requires_grad=False`` parameters (an ``OptimizedModule``
        when ``compile``), computing the same function as ``model.eval()`` up to rounding.
    """
    if ffn_backend is not None:
        _check_ffn_backend(ffn_backend)  # also when there is nothing to fuse
    model = model if inplace else copy.deepcopy(model)
    reparameterize(model.eval())
    model.requires_grad_(False)
    if fuse:
        _fuse_blocks(model, ffn_backend)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if compile else model
