"""CPU inference optimisations: exact against the plain model, and the caller's model is left alone."""

from __future__ import annotations

import pytest
import torch

import unireplknet
from unireplknet.fast import FusedInferenceBlock, optimize_for_inference
from unireplknet.layers import UniRepLKNetBlock

TINY = {"depths": (1, 1, 1, 1), "dims": (8, 16, 32, 64), "kernel_sizes": ((3,), (7,), (7,), (3,))}


def _randomise_norms(model: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_(1, 0.2)
        if isinstance(module, unireplknet.GRN):
            module.gamma.data.normal_(0, 0.5)
            module.beta.data.normal_(0, 0.2)
    return model.eval()


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_optimized_model_matches_plain_model(fuse, batch):
    model = _randomise_norms(unireplknet.create_model("unireplknet_a", num_classes=7, **TINY))
    fast = optimize_for_inference(model, fuse=fuse)
    assert isinstance(model.stages[0].blocks[0], UniRepLKNetBlock)  # the original is untouched
    assert isinstance(fast.stages[0].blocks[0], FusedInferenceBlock) == fuse
    x = torch.randn(batch, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        actual = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("channels", "size"), [(8, 16), (32, 2)])
def test_fused_block_both_scaling_strategies(channels, size):
    # 16x16 map: the weights are smaller than the activations (scales folded into the weights);
    # 2x2 map: the activations are scaled in place.
    block = UniRepLKNetBlock(channels, 7)
    _randomise_norms(block)
    unireplknet.reparameterize(block)
    fused = FusedInferenceBlock(block)
    x = torch.randn(2, channels, size, size)
    with torch.no_grad():
        expected = block(x)
        actual = fused(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_fused_block_needs_reparameterized_block():
    with pytest.raises(ValueError, match="reparameterize"):
        FusedInferenceBlock(UniRepLKNetBlock(8, 7))
