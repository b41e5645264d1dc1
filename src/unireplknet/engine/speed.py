"""Exact speed-ups applied to a task's model before training or evaluation.

UniRepLKNet's dilated re-parameterization branches are plain depthwise ``nn.Conv2d`` layers with
'same' padding. On the small maps of late stages (2 x 2 or 1 x 1 for 28 x 28 inputs) most of their
taps fall on the zero padding; oneDNN still computes them, slowly, because padding that exceeds the
input is its worst case. Dropping the taps that cannot reach the map gives the same outputs and
gradients (the dropped taps' gradients are exactly zero either way) at about a third of the CPU cost
for Fashion-MNIST-sized inputs. The large kernels themselves are cropped by
:func:`unireplknet.kernels.crop_kernel` already.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ReachCroppedConv2d", "crop_unreachable_taps"]


class ReachCroppedConv2d(nn.Conv2d):
    """A stride-1, 'same'-padded depthwise ``nn.Conv2d`` (any dilation) that skips unreachable taps.

    Same parameters and state-dict keys as the ``nn.Conv2d`` it replaces. Tap ``t`` of a kernel with
    centre ``c`` and dilation ``r`` reads ``r * |t - c|`` pixels away, so on an ``H x W`` map only the
    central ``2 * min(c, (H - 1) // r) + 1`` rows (and likewise columns) can touch the input.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (rh, rw), (ch, cw) = self.dilation, (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
        mh, mw = min(ch, (x.shape[-2] - 1) // rh), min(cw, (x.shape[-1] - 1) // rw)
        if (mh, mw) == (ch, cw):
            return super().forward(x)
        weight = self.weight[..., ch - mh : ch + mh + 1, cw - mw : cw + mw + 1]
        return F.conv2d(x, weight, self.bias, padding=(mh * rh, mw * rw), dilation=self.dilation, groups=self.groups)


def _is_same_depthwise(m: nn.Module) -> bool:
    if type(m) is not nn.Conv2d or m.padding_mode != "zeros" or isinstance(m.padding, str):
        return False
    kh, kw = m.kernel_size
    same = all(p == d * (k - 1) // 2 for p, d, k in zip(m.padding, m.dilation, (kh, kw), strict=True))
    depthwise = m.groups == m.in_channels == m.out_channels
    return depthwise and same and m.stride == (1, 1) and kh % 2 == 1 and kw % 2 == 1 and max(kh, kw) > 1


def crop_unreachable_taps(model: nn.Module) -> int:
    """Replace, in place, every plain stride-1 'same' depthwise ``nn.Conv2d`` of ``model`` by a
    :class:`ReachCroppedConv2d` sharing its parameters; returns how many were replaced.
    Call before building the optimizer (the parameters stay the same objects anyway)."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _is_same_depthwise(child):
                fast = ReachCroppedConv2d(
                    child.in_channels, child.out_channels, child.kernel_size, padding=child.padding,
                    dilation=child.dilation, groups=child.groups, bias=child.bias is not None, device="meta",
                )  # fmt: skip
                fast.weight, fast.bias = child.weight, child.bias
                fast.train(child.training)
                setattr(parent, name, fast)
                replaced += 1
    return replaced
