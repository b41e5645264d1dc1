"""Re-parameterization is exact: property tests on random structures, weights and BN statistics."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import unireplknet
from unireplknet.layers import DEFAULT_BRANCHES, DilatedReparamBlock, UniRepLKNetBlock
from unireplknet.reparam import dilate_kernel, merge_dilated_branches

# Small but complete: every block kind (SmaK 3x3, LarK 7/13 with dilated branches) and every stage.
TINY = dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32), kernel_sizes=((3,), (13,), (13, 3), (7,)))
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 1e-1}


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Random weights and BN statistics everywhere, so every folded term matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            scale = 0.2 if "gamma" in name or "beta" in name else 1.0 / max(p[0].numel(), 1) ** 0.5
            p.copy_(torch.randn(p.shape, generator=g) * scale + (1.0 if name.endswith("bn.weight") else 0.0))
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
    return module


def check_equivalent(module: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> nn.Module:
    module = module.to(dtype).eval()
    x = x.to(dtype)
    with torch.no_grad():
        before = module(x)
        unireplknet.reparameterize(module)
        after = module(x)
    scale = before.double().abs().max().item() + 1.0
    err = (before.double() - after.double()).abs().max().item()
    assert err <= TOLERANCE[dtype] * scale, f"{dtype}: max error {err}"
    return module


@st.composite
def branch_tables(draw, kernel_size: int):
    """A random user-given branch table that fits in ``kernel_size``."""
    branches = []
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.sampled_from([1, 3, 5, 7]))
        max_dilation = max(1, (kernel_size - 1) // max(k - 1, 1))
        r = draw(st.integers(1, max_dilation)) if k > 1 else 1
        if r * (k - 1) + 1 <= kernel_size and (k, r) not in branches:
            branches.append((k, r))
    return branches or [(3, 1)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel_size=st.sampled_from([5, 7, 9, 11, 13, 15, 17, 19, 21]),
    channels=st.integers(1, 6),
    height=st.integers(1, 20),
    width=st.integers(1, 20),
    custom=st.booleans(),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_dilated_reparam_block_fp64_exact(kernel_size, channels, height, width, custom, seed, data):
    branches = data.draw(branch_tables(kernel_size)) if custom else None
    block = randomize(DilatedReparamBlock(channels, kernel_size, branches=branches), seed)
    x = torch.randn(2, channels, height, width, generator=torch.Generator().manual_seed(seed))
    merged = check_equivalent(block, x, torch.float64)
    assert merged.is_deploy and merged.lk_conv.weight.shape == (channels, 1, kernel_size, kernel_size)
    assert set(dict(merged.named_parameters())) == {"lk_conv.weight", "lk_conv.bias"}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel_size=st.sampled_from([0, 3, 5, 7, 9, 13]),
    dim=st.sampled_from([4, 8, 12]),
    height=st.integers(1, 16),
    width=st.integers(1, 16),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([torch.float64, torch.float32, torch.bfloat16]),
)
def test_block_reparameterization(kernel_size, dim, height, width, seed, dtype):
    block = randomize(UniRepLKNetBlock(dim, kernel_size, layer_scale_init_value=0.5), seed)
    x = torch.randn(3, dim, height, width, generator=torch.Generator().manual_seed(seed))
    merged = check_equivalent(block, x, dtype)
    # the converted block has the deploy structure's exact parameter names
    expected = UniRepLKNetBlock(dim, kernel_size, deploy=True)
    assert set(merged.state_dict()) == set(expected.state_dict())
    assert all(p.dtype == dtype for p in merged.parameters())


def test_default_branch_tables_match_the_design_doc():
    assert DEFAULT_BRANCHES[13] == ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5))
    assert DEFAULT_BRANCHES[17] == ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7))
    assert DEFAULT_BRANCHES[5] == ((3, 1), (3, 2))
    for k, table in DEFAULT_BRANCHES.items():
        assert all(r * (ks - 1) + 1 <= k for ks, r in table)


def test_dilate_kernel_places_taps_on_the_dilated_grid():
    kernel = torch.arange(1.0, 10.0, dtype=torch.float64).reshape(1, 1, 3, 3)
    dense = dilate_kernel(kernel, 3)
    assert dense.shape == (1, 1, 7, 7) and dense.dtype == torch.float64
    assert torch.equal(dense[0, 0, ::3, ::3], kernel[0, 0])
    assert dense.abs().sum() == kernel.abs().sum()  # zeros everywhere else


def test_merge_is_a_sum_of_convolutions():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64, generator=g)
    large, bias = torch.randn(2, 1, 7, 7, dtype=torch.float64, generator=g), torch.randn(2, dtype=torch.float64)
    small, small_bias = torch.randn(2, 1, 3, 3, dtype=torch.float64, generator=g), torch.randn(2, dtype=torch.float64)
    kernel, b = merge_dilated_branches(large, bias, [(small, small_bias, 2)])
    conv = torch.nn.functional.conv2d
    expected = conv(x, large, bias, padding=3, groups=2) + conv(x, small, small_bias, padding=2, dilation=2, groups=2)
    assert torch.allclose(conv(x, kernel, b, padding=3, groups=2), expected, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_whole_model_reparameterizes_in_any_dtype(dtype):
    model = randomize(unireplknet.UniRepLKNet(num_classes=7, layer_scale_init_value=0.3, **TINY), 3)
    x = torch.randn(2, 3, 40, 36)
    if dtype == torch.float16:  # fp16 convolutions are not implemented on every CPU build: check merging only
        merged = unireplknet.reparameterize(copy.deepcopy(model).to(dtype).eval())
        reference = unireplknet.reparameterize(copy.deepcopy(model).double().eval())
        for k, v in merged.state_dict().items():
            assert v.dtype == dtype and torch.allclose(v.double(), reference.state_dict()[k], rtol=1e-2, atol=1e-2), k
        return
    tol = 1e-9 if dtype == torch.float64 else 0.15
    model = model.to(dtype).eval()
    with torch.no_grad():
        before = model(x.to(dtype))
        unireplknet.reparameterize(model)
        after = model(x.to(dtype))
    assert model.is_deploy
    assert (before.double() - after.double()).abs().max().item() < tol * (before.double().abs().max().item() + 1)


def test_reparameterize_is_idempotent_and_keeps_device():
    model = randomize(unireplknet.UniRepLKNet(num_classes=3, **TINY), 5).eval()
    once = copy.deepcopy(unireplknet.reparameterize(model).state_dict())
    unireplknet.reparameterize(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in once.items())


def test_timm_reparameterize_model_gives_the_same_result():
    from timm.utils.model import reparameterize_model

    model = randomize(unireplknet.UniRepLKNet(num_classes=5, layer_scale_init_value=0.2, **TINY), 9).eval()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        expected = model(x)
        deployed = reparameterize_model(model)  # timm copies by default
        assert deployed.is_deploy and not model.is_deploy
        assert torch.allclose(deployed(x), expected, atol=1e-4)
