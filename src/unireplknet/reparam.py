"""Exact structural re-parameterization: the math, and the walk over a model.

Everything here is linear algebra on weights, done in the weights' own dtype and device, so it is
exact up to floating-point rounding in fp64 and works for fp32/bf16/fp16 and CUDA tensors alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "fuse_bn",
    "dilate_kernel",
    "pad_kernel_to",
    "merge_dilated_branches",
    "reparameterize",
]


def fuse_bn(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d | nn.BatchNorm1d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm that follows a linear map (conv or linear) into its weight and bias.

    ``weight`` has the output channels first (``(C_out, ...)``); returns ``(weight', bias')`` with
    ``bn(x @ weight + bias) == x @ weight' + bias'``.
    """
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    bias = torch.zeros_like(bn.running_mean) if bias is None else bias
    fused_weight = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    fused_bias = bn.bias + (bias - bn.running_mean) * scale
    return fused_weight, fused_bias


def dilate_kernel(kernel: torch.Tensor, dilation: int) -> torch.Tensor:
    """A depthwise kernel ``(C, 1, k, k)`` with dilation ``r`` as the equivalent dense kernel.

    The result has size ``r * (k - 1) + 1`` with zeros between the taps. Built with a transposed
    convolution of stride ``r`` by a 1x1 identity, in the kernel's own dtype (the reference builds
    that identity in fp32, which breaks fp64/fp16 re-parameterization).
    """
    if dilation == 1:
        return kernel
    identity = torch.ones(1, 1, 1, 1, dtype=kernel.dtype, device=kernel.device)
    return F.conv_transpose2d(kernel, identity, stride=dilation)


def pad_kernel_to(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a square ``(..., k, k)`` kernel symmetrically to ``(..., size, size)`` (both odd)."""
    k = kernel.shape[-1]
    if k > size or (size - k) % 2:
        raise ValueError(f"cannot centre a {k}x{k} kernel in a {size}x{size} one")
    pad = (size - k) // 2
    return F.pad(kernel, [pad] * 4)


def merge_dilated_branches(
    large_kernel: torch.Tensor,
    large_bias: torch.Tensor,
    branches: list[tuple[torch.Tensor, torch.Tensor, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge parallel (BN-folded) dilated depthwise branches into one large kernel.

    Args:
        large_kernel: ``(C, 1, K, K)`` BN-folded large kernel.
        large_bias: ``(C,)`` its bias.
        branches: ``(kernel (C, 1, k, k), bias (C,), dilation)`` per branch; every dilated
            kernel's equivalent size ``r * (k - 1) + 1`` must fit in ``K``.

    Returns:
        ``(kernel (C, 1, K, K), bias (C,))`` equal to the sum of all branches.
    """
    size = large_kernel.shape[-1]
    kernel, bias = large_kernel, large_bias
    for branch_kernel, branch_bias, dilation in branches:
        kernel = kernel + pad_kernel_to(dilate_kernel(branch_kernel, dilation), size)
        bias = bias + branch_bias
    return kernel, bias


def reparameterize(model: nn.Module) -> nn.Module:
    """Convert ``model`` in place to its inference structure and return it.

    Every sub-module with a ``reparameterize()`` method is converted, outermost first, so a
    UniRepLKNet block folds its norms around an already merged Dilated Reparam Block. Works on any
    network that contains UniRepLKNet layers (a detector, a segmenter, your own model). Converting
    is idempotent: a module already in its inference structure is left as it is.
    """
    for module in list(model.modules()):  # snapshot: conversion replaces children during the walk
        convert = getattr(module, "reparameterize", None)
        if callable(convert):
            convert()
    return model
