"""Fast inference: the re-parameterized model, channels_last, with the per-block arithmetic fused.

>>> fast = unireplknet.fast.optimize_for_inference(model)     # a copy; `model` is untouched
>>> logits = fast(images.contiguous(memory_format=torch.channels_last))

What :func:`optimize_for_inference` does, each step exact up to floating-point rounding:

1. Re-parameterizes (every norm, branch and layer scale folded into the convs and linears).
2. Replaces each block by :class:`FusedInferenceBlock`, which applies SE's and GRN's per-sample channel
   scales to the next linear layer's weight columns where the weight is smaller than the activation
   (early, high-resolution stages) and in place on the activation elsewhere, and adds the residual in
   place. This removes up to three full passes over the block's activations, two of them over the
   4x-wide hidden tensor.
3. Converts to channels_last, where the FFN's permutes are free (the large depthwise conv itself picks
   its fastest layout per device, see :mod:`unireplknet.kernels`).
4. Optionally wraps the result in ``torch.compile``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .layers import UniRepLKNetBlock
from .reparam import reparameterize

__all__ = ["FusedInferenceBlock", "optimize_for_inference"]


class FusedInferenceBlock(nn.Module):
    """A re-parameterized :class:`UniRepLKNetBlock` with SE and GRN folded into the FFN's matmuls.

    Shares the block's parameters. ``(N, C, H, W) -> (N, C, H, W)`` (channels_last output); for
    inference only (the per-sample weight scaling is differentiable but not memory-efficient).
    """

    def __init__(self, block: UniRepLKNetBlock) -> None:
        super().__init__()
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        pixels = h * w
        y = self.dwconv(x)
        squeeze = F.relu(F.linear(y.mean((2, 3)), self.se_down.weight.flatten(1), self.se_down.bias))
        se_scale = torch.sigmoid(F.linear(squeeze, self.se_up.weight.flatten(1), self.se_up.bias))  # (N, C)
        tokens = y.permute(0, 2, 3, 1).reshape(n, pixels, c)  # a view for channels_last input
        # fc1(y * s) == y @ (W1 * s)^T: scale whichever is smaller, the weight or the activation.
        hidden = F.gelu(
            _scaled_linear(tokens, se_scale, self.fc1.weight, self.fc1.bias, pixels > self.fc1.out_features)
        )
        # GRN: (gamma * nx + 1) * hidden, its norm over the pixels; beta is folded in fc2's bias.
        norm = hidden.square().sum(1).sqrt()  # (N, 4C); a fused square-sum beats vector_norm on CPU
        grn_scale = self.grn_gamma * (norm / (norm.mean(-1, keepdim=True) + 1e-6)) + 1
        out = _scaled_linear(hidden, grn_scale, self.fc2.weight, self.fc2.bias, pixels > self.fc2.out_features)
        out += x.permute(0, 2, 3, 1).reshape(n, pixels, c)
        return out.view(n, h, w, c).permute(0, 3, 1, 2)


def _scaled_linear(
    x: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, fold: bool
) -> torch.Tensor:
    """``F.linear(x * scale[:, None, :], weight, bias)`` for ``x (N, P, D)``, ``scale (N, D)``.

    With ``fold`` the scale goes into each sample's copy of the weight (cheaper when the weight is
    smaller than the activation); otherwise the activation is scaled in place.
    """
    if not fold:
        return F.linear(x.mul_(scale[:, None, :]), weight, bias)
    return torch.stack([F.linear(sample, weight * s, bias) for sample, s in zip(x, scale, strict=True)])


def _fuse_blocks(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, UniRepLKNetBlock):
            setattr(module, name, FusedInferenceBlock(child))
        else:
            _fuse_blocks(child)


def optimize_for_inference(
    model: nn.Module,
    *,
    channels_last: bool = True,
    fuse: bool = True,
    compile: bool = False,
    inplace: bool = False,
) -> nn.Module:
    """The fastest exact inference version of any model containing UniRepLKNet blocks.

    Args:
        model: a UniRepLKNet (or a network built from its blocks), training or deploy structure.
        channels_last: convert weights to channels_last; feed ``x.contiguous(memory_format=torch.channels_last)``.
        fuse: replace blocks by :class:`FusedInferenceBlock`.
        compile: wrap the result in ``torch.compile`` (first call compiles; worth it for long runs).
        inplace: convert ``model`` itself instead of a copy.

    Returns:
        The converted model in eval mode (an ``OptimizedModule`` when ``compile``), computing the same
        function as ``model.eval()`` up to rounding.
    """
    model = model if inplace else copy.deepcopy(model)
    reparameterize(model.eval())
    if fuse:
        _fuse_blocks(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if compile else model
