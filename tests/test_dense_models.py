"""Dense-prediction models: smp encoders, the Segmenter, torchvision detectors, backbone weights, reparam."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import timm
import torch
from conftest import GOLDEN_A224, golden_state_dict

import unireplknet
from unireplknet.checkpoint import CheckpointError, checkpoint_filter_fn, load_checkpoint, save_safetensors
from unireplknet.dense.segmentation import Segmenter, create_segmenter

TINY = dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (7,), (7,), (3,)))
# fewer proposals and detections than torchvision's COCO defaults: the same code paths, much less work
SMALL_ROI_SAMPLING = {
    "mask_rcnn": dict(
        rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=20, box_batch_size_per_image=32, box_detections_per_img=10,
    ),
}  # fmt: skip
GOLDEN_STEM = GOLDEN_A224


pytestmark = pytest.mark.usefixtures("one_thread")


def _randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial norms, GRN and layer scales so that re-parameterization has something to fold."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        for name, p in model.named_parameters():
            if name.endswith(("grn.gamma", "grn.beta", ".gamma")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


@pytest.fixture(scope="module")
def golden_classifier_state():
    return golden_state_dict(GOLDEN_STEM)[1]


# -- timm / smp ---------------------------------------------------------------------------------
def test_timm_features_only_contract():
    model = timm.create_model("unireplknet_a", features_only=True, out_indices=(1, 2, 3), **TINY)
    assert model.feature_info.channels() == [16, 32, 64]
    assert model.feature_info.reduction() == [8, 16, 32]
    maps = model(torch.randn(1, 3, 64, 96))
    assert [tuple(m.shape) for m in maps] == [(1, 16, 8, 12), (1, 32, 4, 6), (1, 64, 2, 3)]


def test_output_stride_keeps_resolution_and_reports_it():
    model = unireplknet.create_model("unireplknet_a", features_only=True, output_stride=8, **TINY)
    assert model.feature_info.reduction() == [4, 8, 8, 8]
    assert [m.shape[-1] for m in model(torch.randn(1, 3, 32, 32))] == [8, 4, 4, 4]
    with pytest.raises(ValueError, match="output_stride"):
        unireplknet.create_model("unireplknet_a", features_only=True, output_stride=4, **TINY)
    with pytest.raises(ValueError, match="out_indices"):
        unireplknet.create_model("unireplknet_a", features_only=True, out_indices=(4,), **TINY)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (smp.UPerNet, dict(decoder_channels=16)),
        (smp.FPN, dict(decoder_pyramid_channels=32, decoder_segmentation_channels=32)),
        (smp.DeepLabV3Plus, dict(decoder_channels=16)),  # asks the encoder for output stride 16
    ],
)
def test_smp_heads_take_the_timm_universal_encoder(cls, kwargs):
    net = cls(encoder_name="tu-unireplknet_a", encoder_weights=None, classes=3, **kwargs, **TINY)
    assert isinstance(net.encoder.model, unireplknet.UniRepLKNet)
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 3, 64, 64)


# -- Segmenter ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    model = create_segmenter("unireplknet_a", num_classes=4, head_kwargs=dict(decoder_channels=16), **TINY)
    return _randomize(model).eval()


def test_segmenter_takes_any_size_and_slides(segmenter):
    x = torch.randn(1, 3, 40, 50)
    with torch.no_grad():
        whole = segmenter(x)
        segmenter.inference, segmenter.crop_size, segmenter.crop_stride = "slide", (32, 32), (24, 24)
        try:
            slid = segmenter(x)
            # one window covering the image equals whole-image inference
            segmenter.crop_size = (64, 96)
            single = segmenter(x)
        finally:
            segmenter.inference = "whole"
    assert whole.shape == slid.shape == (1, 4, 40, 50)
    assert torch.isfinite(slid).all() and not torch.allclose(slid, whole)
    torch.testing.assert_close(single, whole)


def test_segmenter_windows_average_exactly():
    """Overlapping windows: each pixel is the mean of the windows' logits that cover it."""
    model = create_segmenter("unireplknet_a", num_classes=2, head_kwargs=dict(decoder_channels=16), **TINY).eval()
    model.inference, model.crop_size, model.crop_stride = "slide", (32, 32), (16, 32)
    x = torch.randn(1, 3, 48, 32)
    with torch.no_grad():
        top, bottom = model.forward_padded(x[..., :32, :]), model.forward_padded(x[..., 16:, :])
        expected = torch.cat([top[..., :16, :], (top[..., 16:, :] + bottom[..., :16, :]) / 2, bottom[..., 16:, :]], -2)
        torch.testing.assert_close(model(x), expected)


def test_layer_decay_groups_backbone_then_head(segmenter):
    from timm.optim import param_groups_layer_decay

    groups = param_groups_layer_decay(segmenter, weight_decay=0.05, layer_decay=0.5)
    scale_of = {}
    for group in groups:
        for p in group["params"]:
            scale_of[id(p)] = group["lr_scale"]
    named = dict(segmenter.named_parameters())
    stem = scale_of[id(named["net.encoder.model.stem.conv1.weight"])]
    deep = scale_of[id(named["net.encoder.model.stages.3.blocks.0.ffn.fc1.weight"])]
    head = scale_of[id(named["net.segmentation_head.0.weight"])]
    assert stem < deep < head == 1.0


def test_segmenter_reparameterizes_exactly(segmenter):
    model = create_segmenter("unireplknet_a", num_classes=4, head_kwargs=dict(decoder_channels=16), **TINY)
    model.load_state_dict(segmenter.state_dict())
    model = model.double().eval()
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
        unireplknet.reparameterize(model)
        after = model(x)
    assert model.backbone.is_deploy
    torch.testing.assert_close(after, before, atol=1e-9, rtol=0)


def test_segmenter_checkpoint_round_trip(tmp_path, segmenter):
    path = save_safetensors(segmenter.state_dict(), tmp_path / "seg.safetensors")
    model = create_segmenter("unireplknet_a", num_classes=4, head_kwargs=dict(decoder_channels=16), **TINY)
    from safetensors.torch import load_file

    model.load_state_dict(load_file(path))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), segmenter(x))


def test_bad_segmenter_arguments_are_named(segmenter):
    with pytest.raises(ValueError, match="unknown segmentation head"):
        create_segmenter("unireplknet_a", num_classes=2, head="pspnet")
    with pytest.raises(ValueError, match="inference"):
        Segmenter(segmenter.net, inference="tiles")
    with pytest.raises(ValueError, match="crop_size"):
        Segmenter(segmenter.net, inference="slide", crop_size=(0, 32))


# -- backbone weights ---------------------------------------------------------------------------
def test_imagenet_classifier_weights_load_into_a_backbone(tmp_path, golden_classifier_state):
    path = tmp_path / "authors.pth"
    torch.save(golden_classifier_state, path)
    backbone = unireplknet.create_model("unireplknet_a", features_only=True, checkpoint=path)
    ours, ref = backbone.state_dict(), checkpoint_filter_fn(golden_classifier_state)
    assert all(torch.equal(ours[k], ref[k]) for k in ours if not k.startswith("stage_norms."))
    for norm in backbone.stage_norms:  # absent from the file: identity-affine LayerNorms
        assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and not norm.bias.any()
    assert not any(k.startswith("head.") for k in ours)


def _mmseg_file(state: dict[str, torch.Tensor], dims: tuple[int, ...]) -> tuple[dict, dict]:
    """An MMSeg-style checkpoint of the authors' backbone: wrapper, prefix, norm0..3, and a decode head."""
    norms = {}
    g = torch.Generator().manual_seed(3)
    for i, d in enumerate(dims):
        norms[f"norm{i}.weight"] = torch.rand(d, generator=g) + 0.5
        norms[f"norm{i}.bias"] = torch.randn(d, generator=g)
    body = {k: v for k, v in state.items() if not k.startswith(("head.", "norm."))}
    inner = {f"backbone.{k}": v for k, v in {**body, **norms}.items()}
    inner["decode_head.conv_seg.weight"] = torch.randn(150, 512, 1, 1)
    inner["auxiliary_head.conv_seg.bias"] = torch.randn(150)
    return {"meta": {"iter": 160000}, "state_dict": inner}, norms


def test_authors_mmseg_backbone_file_loads_into_segmenter_and_detector(tmp_path, golden_classifier_state):
    dims = unireplknet.VARIANTS["unireplknet_a"].dims
    file, norms = _mmseg_file(golden_classifier_state, dims)
    path = tmp_path / "upernet_unireplknet_a_ade20k.pth"
    torch.save(file, path)
    ref = checkpoint_filter_fn(golden_classifier_state)

    segmenter = create_segmenter("unireplknet_a", num_classes=2, head_kwargs=dict(decoder_channels=16), checkpoint=path)
    detector = unireplknet.create_detector(
        "unireplknet_a", num_classes=2, arch="faster_rcnn", fpn_channels=16, box_head_dim=16, checkpoint=path
    )
    for backbone in (segmenter.backbone, detector.backbone.body):
        got = backbone.state_dict()
        assert all(torch.equal(got[k], ref[k]) for k in got if not k.startswith("stage_norms."))
        for i in range(4):
            assert torch.equal(got[f"stage_norms.{i}.weight"], norms[f"norm{i}.weight"])
            assert torch.equal(got[f"stage_norms.{i}.bias"], norms[f"norm{i}.bias"])


def test_partial_stage_norms_and_wrong_backbones_are_refused(golden_classifier_state):
    backbone = unireplknet.create_model("unireplknet_a", features_only=True)
    state = dict(golden_classifier_state)
    state["norm0.weight"] = torch.ones(40)
    state["norm0.bias"] = torch.zeros(40)
    with pytest.raises(CheckpointError, match="only some of the per-stage norms"):
        load_checkpoint(backbone, state)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(unireplknet.create_model("unireplknet_a", features_only=True, **TINY), golden_classifier_state)
    with pytest.raises(CheckpointError, match="does not fit"):  # a classifier of another shape
        load_checkpoint(unireplknet.create_model("unireplknet_a", **TINY), golden_classifier_state)


# -- detectors ----------------------------------------------------------------------------------
def _detection_batch():
    masks = torch.zeros(1, 64, 80, dtype=torch.uint8)
    masks[0, 10:40, 12:50] = 1
    targets = [
        {"boxes": torch.tensor([[12.0, 10.0, 50.0, 40.0]]), "labels": torch.tensor([1]), "masks": masks},
        {
            "boxes": torch.zeros(0, 4),
            "labels": torch.zeros(0, dtype=torch.int64),
            "masks": torch.zeros(0, 72, 64, dtype=torch.uint8),
        },
    ]
    return [torch.rand(3, 64, 80), torch.rand(3, 72, 64)], targets


@pytest.mark.parametrize("arch", ["mask_rcnn", "retinanet", "fcos"])
def test_detectors_train_and_predict(arch):
    torch.manual_seed(0)
    detector = unireplknet.create_detector(
        "unireplknet_a", num_classes=2, arch=arch, fpn_channels=32, min_size=64, max_size=96,
        box_head_dim=32, mask_head_channels=8, detector_kwargs=SMALL_ROI_SAMPLING.get(arch), **TINY,
    )  # fmt: skip
    assert isinstance(detector.backbone.body, unireplknet.UniRepLKNet)
    images, targets = _detection_batch()
    losses = detector(images, targets)
    expected = {"mask_rcnn": "loss_mask", "retinanet": "classification", "fcos": "bbox_ctrness"}[arch]
    assert expected in losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert detector.backbone.body.stem.conv1.weight.grad.abs().sum() > 0
    detector.eval()
    with torch.no_grad():
        out = detector(images)
    assert len(out) == 2 and out[0]["boxes"].shape[-1] == 4
    if arch == "mask_rcnn":
        assert out[0]["masks"].shape[-2:] == (64, 80)


def test_detector_reparameterizes_exactly():
    torch.manual_seed(0)
    detector = unireplknet.create_detector(
        "unireplknet_a", num_classes=2, arch="retinanet", fpn_channels=32, min_size=64, max_size=64, **TINY
    )
    detector = _randomize(detector).double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        before = detector.backbone(x)
        unireplknet.reparameterize(detector)
        after = detector.backbone(x)
    assert detector.backbone.body.is_deploy
    for key in before:
        torch.testing.assert_close(after[key], before[key], atol=1e-9, rtol=0)


def test_bad_detector_arguments_are_named():
    with pytest.raises(ValueError, match="unknown detector"):
        unireplknet.create_detector("unireplknet_a", num_classes=2, arch="yolo")
    with pytest.raises(ValueError, match="num_classes"):
        unireplknet.create_detector("unireplknet_a", num_classes=0)
