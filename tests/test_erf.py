"""Effective receptive field: exact maps of models whose receptive field is known, the area ratios, the
papers' ordering on tiny random networks (larger kernels -> larger ERF), and the ``analyze erf`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

import unireplknet
from unireplknet.analysis import erf
from unireplknet.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")


class ConvStack(nn.Module):
    """``forward_features`` = a stack of convolutions with all-one weights: its receptive field is known."""

    def __init__(self, layers: list[tuple[int, int]], in_chans: int = 3) -> None:
        super().__init__()
        convs, chans = [], in_chans
        for kernel, stride in layers:
            conv = nn.Conv2d(chans, 2, kernel, stride, padding=kernel // 2, bias=False)
            nn.init.ones_(conv.weight)
            convs.append(conv)
            chans = 2
        self.body = nn.Sequential(*convs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def support(scores: torch.Tensor) -> tuple[slice, slice]:
    rows, cols = torch.nonzero(scores, as_tuple=True)
    return slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1)


def test_single_conv_map_is_its_kernel_window() -> None:
    images = torch.ones(2, 3, 33, 33)  # positive inputs: the central output is positive, its gradient the kernel
    scores = erf.contribution_map(ConvStack([(7, 1)]), images)
    expected = torch.zeros(33, 33)
    expected[13:20, 13:20] = 2 * 3 * 2  # 2 output channels x 3 input channels x 2 images, weights 1
    torch.testing.assert_close(scores, expected)


def test_strided_stack_receptive_field() -> None:
    # 3x3 stride 2 then 3x3 stride 1: receptive field 3 + (3 - 1) * 2 = 7 pixels, centred on the output's centre
    scores = erf.contribution_map(ConvStack([(3, 2), (3, 1)]), torch.ones(1, 3, 32, 32))
    rows, cols = support(scores)
    assert (rows.stop - rows.start, cols.stop - cols.start) == (7, 7)
    assert (rows.start, cols.start) == (13, 13)  # output centre 8 sits over input pixel 16 = 13 + 3


def test_area_ratios_of_a_uniform_square() -> None:
    scores = torch.zeros(33, 33, dtype=torch.float64)
    scores[13:20, 13:20] = 5.0
    result = erf.summarise("stack", "ones", scores, used=1, dropped=0)
    # smallest centred odd square holding more than t of a uniform 7x7 block: 5x5 (25/49) up to t = 0.5, then 7x7
    assert result.side == {"20%": 5, "30%": 5, "50%": 5, "99%": 7}
    assert result.area_ratio["99%"] == pytest.approx(49 / 33**2, abs=1e-6)


def test_area_of_a_spread_map_is_larger_and_ends_at_the_whole_map() -> None:
    yy, xx = np.mgrid[:64, :64]
    narrow = np.exp(-((yy - 32) ** 2 + (xx - 32) ** 2) / (2 * 3.0**2))
    wide = np.exp(-((yy - 32) ** 2 + (xx - 32) ** 2) / (2 * 12.0**2))
    for t in erf.THRESHOLDS:
        assert erf.high_contribution_area(wide, t)[1] > erf.high_contribution_area(narrow, t)[1]
    assert erf.high_contribution_area(np.ones((64, 64)), 0.999) == (64, 1.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        erf.high_contribution_area(wide, 1.0)


def test_log_scaling_and_zero_maps() -> None:
    data = erf.log_scaled(np.array([[0.0, 9.0], [99.0, 0.0]]))
    np.testing.assert_allclose(data, [[0, 0.5], [1, 0]])
    with pytest.raises(ValueError, match="does not depend on the input"):
        erf.log_scaled(np.zeros((4, 4)))


def test_larger_kernels_give_a_larger_erf() -> None:
    """Tiny random UniRepLKNets that differ only in kernel size (residual branches on: layer scale 1)."""
    torch.manual_seed(0)
    images = [(f"noise{i}", np.random.default_rng(i).integers(0, 256, (96, 96, 3), dtype=np.uint8)) for i in range(2)]
    ratios = {}
    for kernel in (3, 13):
        torch.manual_seed(0)
        model = unireplknet.create_model(
            "unireplknet_a", num_classes=0, depths=[1, 1, 2, 1], dims=[8, 16, 32, 64],
            kernel_sizes=[[kernel], [kernel], [kernel, kernel], [3]], layer_scale_init_value=1.0,
        )  # fmt: skip
        scores, used, _ = erf.erf_of(model, images, 96)
        ratios[kernel] = erf.summarise("tiny", "random", scores, used, 0).area_ratio
    assert all(ratios[13][k] > ratios[3][k] for k in ("20%", "30%", "50%")), ratios


def test_non_finite_maps_are_dropped_and_tokens_refused() -> None:
    class NanAfterFirst(ConvStack):
        calls = 0

        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return super().forward_features(x) * (1.0 if self.calls == 1 else float("nan"))

    total, used, dropped = erf.accumulate_erf(NanAfterFirst([(3, 1)]), [torch.ones(3, 16, 16)] * 3)
    assert (used, dropped) == (1, 2) and torch.isfinite(total).all()

    class Tokens(nn.Module):
        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(2).transpose(1, 2)

    with pytest.raises(ValueError, match=r"\(N, C, H, W\) map"):
        erf.contribution_map(Tokens(), torch.ones(1, 3, 8, 8))


def test_prepare_image_channels_and_normalisation() -> None:
    grey = np.full((10, 20), 255, dtype=np.uint8)
    x = erf.prepare_image(grey, 32, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert x.shape == (3, 32, 32)
    torch.testing.assert_close(x, torch.full((3, 32, 32), 2.0))
    assert erf.prepare_image(grey, 32, 1, (0.5,) * 3, (0.5,) * 3).shape == (1, 32, 32)


runner = CliRunner()


def test_cli_writes_png_and_json_for_a_timm_model(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "erf"
    args = ["analyze", "erf", "resnet10t", "--images", str(folder), "--size", "64", "-o", str(out)]
    result = runner.invoke(app, [*args, "-m", "zero_init_last=false"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "resnet10t_erf.json").read_text())
    assert summary["images"] == 2 and summary["size"] == 64 and summary["weights"] == "random, zero_init_last=false"
    assert set(summary["area_ratio"]) == {"20%", "30%", "50%", "99%"}
    assert 0 < summary["area_ratio"]["20%"] < summary["area_ratio"]["99%"] <= 1
    with Image.open(out / "resnet10t_erf.png") as png:
        assert png.format == "PNG"
    assert np.load(out / "resnet10t_erf.npy").shape == (64, 64)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_model_xyz"], "unknown model"),
        (["resnet10t", "--images", "missing_folder"], "image folder not found"),
        (["resnet10t", "--size", "16"], "at least 32"),
        (["vit_tiny_patch16_224", "--size", "224", "-n", "1"], "pick a convolutional model"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["analyze", "erf", *args, "-o", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.count("\n") == 1


def test_bundled_images_are_all_readable_offline() -> None:
    names = [name for name, image in erf.bundled_images() if image.dtype == np.uint8 and image.ndim in (2, 3)]
    assert names == list(erf.BUNDLED_IMAGES)


@pytest.mark.parametrize("name", ["resnet10t", "unireplknet_a"])
def test_trained_classifier_file_loads_without_its_classifier(tmp_path: Path, name: str) -> None:
    """A run's weights (one input channel, 7 classes) load for the ERF: the classifier is dropped, every other
    tensor arrives; a file of another network is refused."""
    import timm
    from safetensors.torch import save_file

    from unireplknet.checkpoint import CheckpointError

    create = unireplknet.create_model if name.startswith("unireplknet") else timm.create_model
    trained = create(name, num_classes=7, in_chans=1)
    with torch.no_grad():
        for p in trained.parameters():
            p.normal_()
    path = tmp_path / "best.safetensors"
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(path))
    model = erf.build_erf_model(name, str(path), in_chans=1)
    assert model.get_classifier() is None or not list(model.get_classifier().parameters())
    loaded = model.state_dict()
    expected = {k: v for k, v in trained.state_dict().items() if k in loaded}
    assert set(loaded) == set(expected) and len(expected) >= len(trained.state_dict()) - 2
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())
    with pytest.raises(CheckpointError):
        erf.build_erf_model("resnet18" if name == "resnet10t" else "unireplknet_f", str(path), in_chans=1)
