"""Model construction, options, the timm-style API and input validation."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

import unireplknet
from unireplknet.layers import DilatedReparamBlock, UniRepLKNetBlock

TINY = dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32), kernel_sizes=((3,), (13,), (13, 3), (7,)))


def test_list_models_has_all_nine_variants():
    assert unireplknet.list_models() == [f"unireplknet_{v}" for v in ("a", "f", "p", "n", "t", "s", "b", "l", "xl")]


def test_unknown_model_and_missing_kernel_sizes_are_clear():
    with pytest.raises(ValueError, match="unknown model 'unireplknet_q'"):
        unireplknet.create_model("unireplknet_q")
    with pytest.raises(ValueError, match="no default kernel sizes"):
        unireplknet.UniRepLKNet(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))
    with pytest.raises(ValueError, match="one size per block"):
        unireplknet.UniRepLKNet(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), kernel_sizes=((3,), (13,), (13, 3), (7,)))
    with pytest.raises(ValueError, match="odd kernel size >= 5"):
        DilatedReparamBlock(8, 6)
    with pytest.raises(ValueError, match="spans 9 pixels"):
        DilatedReparamBlock(8, 7, branches=[(5, 2)])


def test_default_kernel_schedules():
    with torch.device("meta"):
        t = unireplknet.create_model("unireplknet_t", num_classes=0)
    assert t.kernel_sizes[2] == (13, 3) * 9 and t.kernel_sizes[0] == (3, 3, 3)
    s = unireplknet.VARIANTS["unireplknet_s"]
    assert s.depths == (3, 3, 27, 3)


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (3, 3, 45, 31), (2, 3, 1, 1), (1, 3, 70, 100)])
def test_any_input_size_and_batch(shape):
    model = unireplknet.UniRepLKNet(num_classes=4, **TINY).eval()
    with torch.no_grad():
        assert model(torch.randn(shape)).shape == (shape[0], 4)


def test_spectrogram_input_and_feature_api():
    model = unireplknet.create_model("unireplknet_a", in_chans=1, num_classes=35).eval()
    x = torch.randn(2, 1, 128, 100)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 320, 4, 4)
        assert model.forward_head(features, pre_logits=True).shape == (2, 320)
        assert torch.equal(model.forward_head(features), model(x))


def test_features_only_gives_four_normalised_maps_at_strides_4_to_32():
    model = unireplknet.UniRepLKNet(features_only=True, **TINY).eval()
    maps = model(torch.randn(2, 3, 64, 96))
    assert [tuple(m.shape) for m in maps] == [(2, 8, 16, 24), (2, 16, 8, 12), (2, 24, 4, 6), (2, 32, 2, 3)]
    for m in maps:  # each passed through its own channel LayerNorm (weight 1, bias 0 at init)
        assert torch.allclose(m.mean(1), torch.zeros(()), atol=1e-5)
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]


def test_num_classes_zero_and_reset_classifier():
    model = unireplknet.UniRepLKNet(num_classes=0, **TINY).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 32)
    model.reset_classifier(11)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 11)
    assert isinstance(model.get_classifier(), nn.Linear)


def test_options_reach_the_blocks():
    model = unireplknet.UniRepLKNet(
        num_classes=2, drop_path_rate=0.3, layer_scale_init_value=None, sync_bn=True, grad_checkpointing=True, **TINY
    )
    blocks = [m for m in model.modules() if isinstance(m, UniRepLKNetBlock)]
    assert blocks[0].drop_path.__class__ is nn.Identity and blocks[-1].drop_path.drop_prob == pytest.approx(0.3)
    assert all(b.gamma is None and b.grad_checkpointing for b in blocks)
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    assert not any(type(m) is nn.BatchNorm2d for m in model.modules())


def test_head_init_scale_and_init():
    a = unireplknet.UniRepLKNet(num_classes=5, head_init_scale=0.0, **TINY)
    assert a.head.fc.weight.abs().sum() == 0
    b = unireplknet.UniRepLKNet(num_classes=5, **TINY)
    assert 0.005 < b.head.fc.weight.std() < 0.03  # trunc-normal std 0.02


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = unireplknet.UniRepLKNet(num_classes=3, layer_scale_init_value=0.5, **TINY)
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(plain, model.parameters(), strict=False))


def test_deploy_structure_has_no_training_only_layers():
    model = unireplknet.UniRepLKNet(num_classes=3, deploy=True, **TINY)
    assert model.is_deploy
    assert not any(isinstance(m, (nn.BatchNorm2d, DilatedReparamBlock)) for m in model.modules())


def test_timm_create_model_after_import():
    with torch.device("meta"):
        model = timm.create_model("unireplknet_t", num_classes=3, drop_path_rate=0.1)
    assert isinstance(model, unireplknet.UniRepLKNet) and model.num_classes == 3
    assert "unireplknet_xl" in timm.list_models("unireplknet*")


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.randn(1, 4, 32, 32), "expected 3 input channels, got 4"),
        (torch.randn(3, 32, 32), "4-D input"),
        (torch.randn(1, 3, 0, 32), "empty dimension"),
        (torch.randint(0, 255, (1, 3, 32, 32)), "floating-point"),
        ([1.0, 2.0], "torch.Tensor"),
    ],
)
def test_bad_input_raises_value_error(bad, message):
    model = unireplknet.UniRepLKNet(num_classes=3, **TINY)
    with pytest.raises(ValueError, match=message):
        model(bad)
