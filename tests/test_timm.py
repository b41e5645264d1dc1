"""timm's model contract: pretrained configs, loading through timm's builder, features, intermediates, pruning."""

from __future__ import annotations

import pytest
import timm
import torch
from conftest import GOLDEN_A224, golden_state_dict

import unireplknet
from unireplknet.checkpoint import CheckpointError

TINY = dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32), kernel_sizes=((3,), (13,), (13, 3), (7,)))


@pytest.fixture(scope="module")
def authors_file(tmp_path_factory):
    """The golden A weights saved as the authors publish them: a training-structure file in ``{'model': ...}``."""
    expected, state = golden_state_dict(GOLDEN_A224)
    path = tmp_path_factory.mktemp("hub") / "unireplknet_a_in1k_224_acc77.03.pth"
    torch.save({"model": state}, path)
    return path, expected


def test_every_published_checkpoint_has_a_pretrained_config():
    tags = timm.list_pretrained("unireplknet_*")
    assert {t.split(".")[0] for t in tags} == set(unireplknet.list_models())
    assert len(tags) == 14  # A..S on ImageNet-1K at 224, S..XL ImageNet-22K and 22K -> 1K at 384
    for tag in tags:
        cfg = timm.get_pretrained_cfg(tag).to_dict()
        assert cfg["hf_hub_id"] == "DingXiaoH/UniRepLKNet" and cfg["hf_hub_filename"].endswith(".pth")
        assert cfg["first_conv"] == "stem.conv1" and cfg["classifier"] == "head.fc"
        assert cfg["license"] == "apache-2.0" and cfg["paper_ids"] == "arXiv:2311.15599"
        size = cfg["input_size"][-1]
        assert cfg["pool_size"] == (size // 32, size // 32)
        assert cfg["num_classes"] == (21841 if tag.endswith(".in22k") else 1000)
    assert timm.get_pretrained_cfg("unireplknet_t.in1k").hf_hub_filename == "unireplknet_t_in1k_224_acc83.21.pth"


def test_pretrained_cfg_resolves_to_the_authors_evaluation_transform():
    model = timm.create_model("unireplknet_t.in1k", pretrained=False)
    config = timm.data.resolve_model_data_config(model)
    assert config == dict(
        input_size=(3, 224, 224),
        interpolation="bicubic",
        mean=timm.data.IMAGENET_DEFAULT_MEAN,
        std=timm.data.IMAGENET_DEFAULT_STD,
        crop_pct=0.875,
        crop_mode="center",
    )
    transform = str(timm.data.create_transform(**config))
    assert "Resize(size=256, interpolation=bicubic" in transform and "CenterCrop(size=(224, 224))" in transform
    at_384 = timm.data.resolve_model_data_config(timm.create_model("unireplknet_s.in22k_ft_in1k_384"))
    assert at_384["input_size"] == (3, 384, 384) and at_384["crop_pct"] == 1.0 and at_384["crop_mode"] == "squash"


@torch.no_grad()
def test_timm_pretrained_loads_a_local_copy_through_our_filter(authors_file):
    path, expected = authors_file
    model = timm.create_model("unireplknet_a.in1k", pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    assert (model(expected["input"]) - expected["logits_fp32"]).abs().max() < 1e-4
    # fine-tuning through timm: a new classifier, everything else from the file
    tuned = timm.create_model(
        "unireplknet_a.in1k", pretrained=True, num_classes=7, pretrained_cfg_overlay=dict(file=str(path))
    )
    assert tuned.head.fc.weight.shape == (7, 320)
    assert torch.equal(tuned.stages[2].blocks[0].ffn.fc1.weight, model.stages[2].blocks[0].ffn.fc1.weight)
    # deploy=True: loaded into the training structure, then re-parameterized
    deployed = timm.create_model(
        "unireplknet_a.in1k", pretrained=True, deploy=True, pretrained_cfg_overlay=dict(file=str(path))
    )
    assert deployed.is_deploy and (deployed(expected["input"]) - expected["logits_fp32"]).abs().max() < 1e-4


def test_timm_pretrained_refuses_the_wrong_file(authors_file):
    path, _ = authors_file
    with pytest.raises(CheckpointError, match="looks like variant unireplknet_a"):
        timm.create_model("unireplknet_f.in1k", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


def test_timm_features_only_with_pretrained_weights(authors_file):
    path, expected = authors_file
    backbone = timm.create_model(
        "unireplknet_a.in1k", pretrained=True, features_only=True, pretrained_cfg_overlay=dict(file=str(path))
    )
    assert backbone.feature_info.channels() == [40, 80, 160, 320]
    assert backbone.feature_info.reduction() == [4, 8, 16, 32]
    for norm in backbone.stage_norms:  # the file has no per-stage norms: identity-affine
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
    getter = timm.create_model("unireplknet_a", features_only=True, feature_cls="getter", out_indices=(1, 3))
    maps = getter(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 80, 8, 8), (1, 320, 2, 2)]


@torch.no_grad()
def test_forward_intermediates_and_pruning():
    model = timm.create_model("unireplknet_a", **TINY).eval()
    x = torch.randn(2, 3, 64, 64)
    final, taps = model.forward_intermediates(x)
    assert [tuple(t.shape) for t in taps] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 24, 4, 4), (2, 32, 2, 2)]
    assert torch.equal(final, model.forward_features(x))
    assert torch.equal(
        model.forward_intermediates(x, indices=[1], stop_early=True, intermediates_only=True)[0], taps[1]
    )
    assert torch.equal(model.forward_intermediates(x, indices=2, intermediates_only=True)[0], taps[2])  # last 2
    with pytest.raises(ValueError, match="NCHW"):
        model.forward_intermediates(x, output_fmt="NHWC")
    kept = model.prune_intermediate_layers([1])
    assert kept == [1] and len(model.stages) == 2 and model.num_features == model.head_hidden_size == 16
    assert torch.equal(model.forward_features(x), taps[1])
    model.reset_classifier(3, "avg")
    assert model(x).shape == (2, 3)


@torch.no_grad()
def test_head_pooling_and_reset_classifier():
    model = timm.create_model("unireplknet_a", num_classes=5, **TINY).eval()
    x = torch.randn(2, 3, 64, 64)
    assert model.head_hidden_size == model.num_features == 32
    pre = model.forward_head(model.forward_features(x), pre_logits=True)
    model.reset_classifier(0)
    assert torch.equal(model(x), pre)
    model.reset_classifier(0, "")
    assert model(x).shape == (2, 32, 2, 2)
    model.reset_classifier(4, "max")
    feats = model.forward_features(x)
    assert torch.allclose(model.head(feats, pre_logits=True), model.head.norm(feats.amax((2, 3))))
    with pytest.raises(ValueError, match="catavgmax"):
        model.reset_classifier(4, "catavgmax")
    assert isinstance(
        unireplknet.create_model("unireplknet_a", features_only=True, **TINY).get_classifier(), torch.nn.Identity
    )


def test_factory_device_dtype_and_unknown_arguments():
    model = timm.create_model("unireplknet_a", device="meta", dtype=torch.float64, **TINY)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    with pytest.raises(TypeError):
        timm.create_model("unireplknet_a", not_a_model_arg=1)


def test_torchscript_and_fx_match_eager():
    from torchvision.models.feature_extraction import create_feature_extractor

    model = timm.create_model("unireplknet_a", **TINY).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        eager = model(x)
        assert torch.allclose(torch.jit.script(model)(x), eager, atol=1e-5)
        traced = create_feature_extractor(
            model,
            return_nodes=["head"],
            tracer_kwargs=dict(
                leaf_modules=list(timm.models.get_notrace_modules()),
                autowrap_functions=list(timm.models.get_notrace_functions()),
            ),
        )
        assert torch.allclose(traced(x)["head"], eager, atol=1e-5)
