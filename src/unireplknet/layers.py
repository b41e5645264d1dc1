"""UniRepLKNet's building blocks, usable on their own in any network.

Shapes follow PyTorch convention: feature maps are ``(N, C, H, W)`` unless a name says channels-last.
Each re-parameterizable layer has a ``reparameterize()`` method that converts it in place to its
inference structure; :func:`unireplknet.reparameterize` calls them for a whole model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, register_notrace_module
from torch import nn
from torch.utils.checkpoint import checkpoint

from .kernels import DepthwiseConv2d
from .reparam import fuse_bn, merge_dilated_branches

__all__ = [
    "DEFAULT_BRANCHES",
    "LayerNorm2d",
    "GRN",
    "SEBlock",
    "DilatedReparamBlock",
    "UniRepLKNetBlock",
    "depthwise_conv",
    "default_branches",
]

# Paper/code branch tables: large kernel size -> ((small kernel, dilation), ...), in the reference's
# order (the order matters only for the names in the authors' checkpoints).
DEFAULT_BRANCHES: dict[int, tuple[tuple[int, int], ...]] = {
    17: ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7)),
    15: ((5, 1), (7, 2), (3, 3), (3, 5), (3, 7)),
    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
    7: ((5, 1), (3, 2), (3, 3)),
    5: ((3, 1), (3, 2)),
}


def default_branches(kernel_size: int) -> tuple[tuple[int, int], ...]:
    """The paper's (kernel, dilation) branches for a large kernel of ``kernel_size``.

    Sizes in the table use it; any other odd size >= 19 uses the 17x17 table (the reference code
    only defines sizes 5-17).
    """
    if kernel_size in DEFAULT_BRANCHES:
        return DEFAULT_BRANCHES[kernel_size]
    if kernel_size > 17 and kernel_size % 2 == 1:
        return DEFAULT_BRANCHES[17]
    raise ValueError(
        f"Dilated Reparam Block needs an odd kernel size >= 5, got {kernel_size}; "
        "pass `branches=[(k, r), ...]` for a custom table"
    )


# torch.fx traces the dispatch's shape-dependent choices (kernel cropping, Triton or PyTorch) as one leaf call.
register_notrace_module(DepthwiseConv2d)


def depthwise_conv(channels: int, kernel_size: int, bias: bool, dilation: int = 1) -> nn.Module:
    """A stride-1, 'same'-padded (optionally dilated) depthwise convolution: the hot spot of the network.

    A :class:`~unireplknet.kernels.DepthwiseConv2d`: an ``nn.Conv2d`` with the same parameters and
    state-dict keys that runs large and dilated kernels with Triton on the GPU and crops taps that
    cannot reach small maps (see :mod:`unireplknet.kernels`).
    """
    return DepthwiseConv2d(channels, kernel_size, bias=bias, dilation=dilation)


def _batch_norm(channels: int, sync: bool) -> nn.Module:
    return nn.SyncBatchNorm(channels) if sync else nn.BatchNorm2d(channels)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an ``(N, C, H, W)`` map (the reference's 'channels_first' norm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GRN(nn.Module):
    """Global Response Normalization (ConvNeXt V2) on a channels-last ``(N, H, W, D)`` tensor.

    ``G = ||x||_2 over (H, W)``, ``Nx = G / (mean_D(G) + 1e-6)``, ``out = (gamma * Nx + 1) * x + beta``.
    ``gamma``/``beta`` start at zero, so a fresh GRN is the identity. ``use_bias=False`` drops beta
    (the inference structure, where beta lives in the next Linear's bias).
    """

    def __init__(self, dim: int, use_bias: bool = True) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True)
        nx = g / (g.mean(dim=-1, keepdim=True) + 1e-6)
        out = (self.gamma * nx + 1) * x
        return out if self.beta is None else out + self.beta


class SEBlock(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(up(relu(down(mean_hw(x)))))`` on ``(N, C, H, W)``."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, hidden, 1)
        self.up = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = torch.sigmoid(self.up(F.relu(self.down(s))))
        return x * s


class ConvBN(nn.Sequential):
    """A bias-free depthwise (optionally dilated) conv followed by BatchNorm: one reparam branch."""

    def __init__(self, channels: int, kernel_size: int, dilation: int = 1, sync_bn: bool = False) -> None:
        super().__init__()
        self.conv = depthwise_conv(channels, kernel_size, bias=False, dilation=dilation)
        self.bn = _batch_norm(channels, sync_bn)

    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """BN-folded ``(kernel (C, 1, k, k), bias (C,))``."""
        return fuse_bn(self.conv.weight, None, self.bn)


class DilatedReparamBlock(nn.Module):
    """A large depthwise kernel trained beside small dilated depthwise kernels (paper Sec. 3.2).

    Training structure: ``BN(DWConv_K(x)) + sum_i BN_i(DWConv_{k_i, dilation r_i}(x))``.
    Inference structure (after :meth:`reparameterize`, or with ``deploy=True``): one ``K x K``
    depthwise conv with bias that computes exactly the same function.

    Args:
        channels: C of the ``(N, C, H, W)`` input; the output has the same shape.
        kernel_size: K, odd, >= 5.
        branches: ``[(k_i, r_i), ...]``; default: the paper's table for K.
        deploy: build the merged inference structure directly.
        sync_bn: use SyncBatchNorm for the training structure's norms.
    """

    __jit_unused_properties__ = ["is_deploy"]

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        branches: Sequence[tuple[int, int]] | None = None,
        deploy: bool = False,
        sync_bn: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size < 5 or kernel_size % 2 == 0:
            raise ValueError(f"Dilated Reparam Block needs an odd kernel size >= 5, got {kernel_size}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.branch_specs = tuple((int(k), int(r)) for k, r in (branches or default_branches(kernel_size)))
        for k, r in self.branch_specs:
            if k % 2 == 0 or k < 1 or r < 1 or r * (k - 1) + 1 > kernel_size:
                raise ValueError(
                    f"branch (kernel {k}, dilation {r}) spans {r * (k - 1) + 1} pixels: it must be an odd "
                    f"kernel with dilation >= 1 spanning at most the large kernel ({kernel_size})"
                )
        if deploy:
            self.lk_conv = depthwise_conv(channels, kernel_size, bias=True)
            self.lk_bn = None
            self.branches = None
        else:
            self.lk_conv = depthwise_conv(channels, kernel_size, bias=False)
            self.lk_bn = _batch_norm(channels, sync_bn)
            self.branches = nn.ModuleDict({f"k{k}_d{r}": ConvBN(channels, k, r, sync_bn) for k, r in self.branch_specs})

    @property
    def is_deploy(self) -> bool:
        return self.branches is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branches is None:
            return self.lk_conv(x)
        out = self.lk_bn(self.lk_conv(x))
        for branch in self.branches.values():
            out = out + branch(x)
        return out

    def merged_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The equivalent single ``(kernel (C, 1, K, K), bias (C,))``, without changing the module."""
        if self.branches is None:
            return self.lk_conv.weight, self.lk_conv.bias
        large = fuse_bn(self.lk_conv.weight, None, self.lk_bn)
        spec = {f"k{k}_d{r}": r for k, r in self.branch_specs}
        branches = [(*branch.fused(), spec[name]) for name, branch in self.branches.items()]
        return merge_dilated_branches(*large, branches)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Merge all branches into ``lk_conv`` (with bias) in place; a no-op when already merged."""
        if self.branches is None:
            return
        kernel, bias = self.merged_kernel()
        merged = depthwise_conv(self.channels, self.kernel_size, bias=True).to(kernel)
        merged.weight.copy_(kernel)
        merged.bias.copy_(bias)
        self.lk_conv, self.lk_bn, self.branches = merged, None, None


class FFN(nn.Module):
    """Channels-last FFN of a block: Linear C->hC, GELU, GRN, Linear hC->C, then BatchNorm (NCHW).

    Takes and returns ``(N, C, H, W)``. In the inference structure (``deploy=True``) the GRN has no
    beta, the second Linear has a bias and the BatchNorm is gone.
    """

    def __init__(self, dim: int, hidden: int, deploy: bool = False, sync_bn: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.grn = GRN(hidden, use_bias=not deploy)
        self.fc2 = nn.Linear(hidden, dim, bias=deploy)
        self.norm = None if deploy else _batch_norm(dim, sync_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = self.fc2(self.grn(F.gelu(self.fc1(x))))
        x = x.permute(0, 3, 1, 2)
        return x if self.norm is None else self.norm(x)


class UniRepLKNetBlock(nn.Module):
    """One UniRepLKNet block: ``x + drop_path(gamma * FFN(SE(BN(spatial(x)))))``, shape-preserving.

    ``kernel_size`` picks the spatial mixer: >= 7 a :class:`DilatedReparamBlock` (LarK block),
    3 or 5 a plain depthwise conv (SmaK block), 0 none.

    Args:
        dim: channels C of the ``(N, C, H, W)`` input.
        kernel_size: 0, 3, 5, or an odd size >= 7.
        drop_path: stochastic-depth rate of the residual branch.
        layer_scale_init_value: initial per-channel ``gamma``; ``None`` or 0 disables layer scale.
        deploy: build the inference structure directly.
        grad_checkpointing: recompute the block in the backward pass to save memory.
        sync_bn: SyncBatchNorm instead of BatchNorm.
        ffn_factor: FFN hidden width as a multiple of ``dim``.
        branches: custom Dilated Reparam Block branches ``[(k, r), ...]`` for a LarK block.
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        drop_path: float = 0.0,
        layer_scale_init_value: float | None = 1e-6,
        deploy: bool = False,
        grad_checkpointing: bool = False,
        sync_bn: bool = False,
        ffn_factor: int = 4,
        branches: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        super().__init__()
        self.grad_checkpointing = grad_checkpointing
        if kernel_size == 0:
            self.dwconv: nn.Module = nn.Identity()
        elif deploy:
            self.dwconv = depthwise_conv(dim, kernel_size, bias=True)
        elif kernel_size >= 7 or branches:
            self.dwconv = DilatedReparamBlock(dim, kernel_size, branches=branches, sync_bn=sync_bn)
        elif kernel_size in (3, 5):
            self.dwconv = depthwise_conv(dim, kernel_size, bias=False)
        else:
            raise ValueError(f"block kernel size must be 0, 3, 5 or an odd size >= 7, got {kernel_size}")
        self.norm = _batch_norm(dim, sync_bn) if kernel_size and not deploy else None
        self.se = SEBlock(dim, dim // 4)
        self.ffn = FFN(dim, int(ffn_factor * dim), deploy=deploy, sync_bn=sync_bn)
        use_scale = not deploy and layer_scale_init_value is not None and layer_scale_init_value > 0
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init_value))) if use_scale else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x)
        if self.norm is not None:
            y = self.norm(y)
        y = self.ffn(self.se(y))
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, 1, 1)
        return self.drop_path(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and self.grad_checkpointing and x.requires_grad and torch.is_grad_enabled():
            return x + checkpoint(self.residual, x, use_reentrant=False)
        return x + self.residual(x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold every norm, GRN beta and layer scale into convs/linears, in place (exact)."""
        if isinstance(self.dwconv, DilatedReparamBlock):
            kernel, bias = self.dwconv.merged_kernel()
        elif isinstance(self.dwconv, nn.Conv2d):
            kernel, bias = self.dwconv.weight, self.dwconv.bias
        else:
            kernel = None
        if kernel is not None and (self.norm is not None or isinstance(self.dwconv, DilatedReparamBlock)):
            if self.norm is not None:
                kernel, bias = fuse_bn(kernel, bias, self.norm)
            channels, k = kernel.shape[0], kernel.shape[-1]
            conv = depthwise_conv(channels, k, bias=True).to(kernel)
            conv.weight.copy_(kernel)
            conv.bias.copy_(bias)
            self.dwconv = conv
        self.norm = None

        ffn = self.ffn
        if ffn.norm is None and ffn.grn.beta is None and self.gamma is None:
            return
        weight = ffn.fc2.weight
        bias = ffn.fc2.bias if ffn.fc2.bias is not None else torch.zeros_like(weight[:, 0])
        if ffn.grn.beta is not None:
            bias = bias + weight @ ffn.grn.beta  # beta is added right before fc2
            ffn.grn.beta = None
        if ffn.norm is not None:
            weight, bias = fuse_bn(weight, bias, ffn.norm)
            ffn.norm = None
        if self.gamma is not None:
            weight, bias = weight * self.gamma[:, None], bias * self.gamma
            self.gamma = None
        fc2 = nn.Linear(weight.shape[1], weight.shape[0]).to(weight)
        fc2.weight.copy_(weight)
        fc2.bias.copy_(bias)
        ffn.fc2 = fc2
