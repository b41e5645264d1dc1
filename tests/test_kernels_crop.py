"""Kernel cropping: dropping the taps that cannot reach a small map changes nothing, dilated or not."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unireplknet
from unireplknet.kernels import DepthwiseConv2d, crop_kernel


@pytest.mark.parametrize("dilation", [1, 3])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 2), (5, 9), (20, 20)])
def test_crop_kernel_is_exact(height, width, dilation):
    weight = torch.randn(4, 1, 13, 13, dtype=torch.float64)
    x = torch.randn(2, 4, height, width, dtype=torch.float64)
    cropped = crop_kernel(weight, height, width, dilation)
    # Taps 6 - r .. 6 + r survive, r = the most taps (dilation apart) that still land on the map.
    reach_h, reach_w = min(6, (height - 1) // dilation), min(6, (width - 1) // dilation)
    assert cropped.shape[-2:] == (2 * reach_h + 1, 2 * reach_w + 1)
    if (reach_h, reach_w) == (6, 6):
        assert cropped is weight
    expected = F.conv2d(x, weight, padding=6 * dilation, dilation=dilation, groups=4)
    padding = (reach_h * dilation, reach_w * dilation)
    actual = F.conv2d(x, cropped, padding=padding, dilation=dilation, groups=4)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


def _uncropped(model: nn.Module) -> nn.Module:
    """A copy with every DepthwiseConv2d replaced by the equal plain nn.Conv2d (which never crops)."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, DepthwiseConv2d):
                plain = nn.Conv2d(
                    child.in_channels, child.out_channels, child.kernel_size, padding=child.padding,
                    dilation=child.dilation, groups=child.groups, bias=child.bias is not None,
                )  # fmt: skip
                plain.load_state_dict(child.state_dict())
                setattr(parent, name, plain)
    return model


def _outputs_and_grads(module: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    x = x.clone().requires_grad_()
    torch.manual_seed(0)
    y = module(x)
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(1)))
    return [y, x.grad, *(p.grad for p in module.parameters())]


@pytest.mark.parametrize(("kernel", "dilation", "size"), [(13, 1, (3, 5)), (3, 5, (4, 7)), (7, 2, (1, 2))])
def test_cropped_module_matches_full_kernel_forward_and_backward(kernel, dilation, size):
    conv = DepthwiseConv2d(6, kernel, dilation=dilation)
    assert crop_kernel(conv.weight, *size, dilation).shape[-2:] != conv.weight.shape[-2:]
    x = torch.randn(2, 6, *size).contiguous(memory_format=torch.channels_last)
    cropped, full = _outputs_and_grads(conv, x), _outputs_and_grads(_uncropped(conv), x)
    for actual, expected in zip(cropped, full, strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_cropped_model_matches_full_kernels():
    tiny = dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (7,), (7,), (3,)), in_chans=1)
    model = unireplknet.create_model("unireplknet_a", num_classes=5, **tiny)
    cropping = []

    def record(conv, inputs):
        height, width = inputs[0].shape[-2:]
        cropping.append(crop_kernel(conv.weight, height, width, conv.dilation[0]) is not conv.weight)

    for m in model.modules():
        if isinstance(m, DepthwiseConv2d):
            m.register_forward_pre_hook(record)
    x = torch.randn(2, 1, 28, 28)
    cropped, full = _outputs_and_grads(model, x), _outputs_and_grads(_uncropped(model), x)
    assert any(cropping) and not all(cropping)  # late stages' maps (3x3, 1x1) crop, early ones do not
    for actual, expected in zip(cropped, full, strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
