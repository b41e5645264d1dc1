"""Time-series forecaster (unireplknet.models.forecast) and data (unireplknet.modalities.forecast) on tiny
generated arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unireplknet
from unireplknet.modalities.forecast import (
    ForecastWindows,
    chronological_split,
    load_corrformer,
    load_csv_series,
    time_features,
)
from unireplknet.models.forecast import UniRepLKNetForecaster, WindowNorm, map_side

TINY = {"depths": (1, 1, 1, 1), "dims": (8, 16, 32, 64), "kernel_sizes": ((3,), (7,), (7,), (3,))}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_forecaster(input_len=16, pred_len=4, embed_dim=4, **kwargs) -> UniRepLKNetForecaster:
    torch.manual_seed(0)
    backbone = unireplknet.create_model("unireplknet_a", in_chans=1, num_classes=0, **TINY)
    return UniRepLKNetForecaster(backbone, input_len, pred_len, embed_dim, **kwargs).eval()


def hourly(start: str, n: int) -> np.ndarray:
    return np.arange(
        np.datetime64(start, "s"), np.datetime64(start, "s") + np.timedelta64(n, "h"), np.timedelta64(1, "h")
    )


def test_time_features_match_pandas():
    pd = pytest.importorskip("pandas")
    stamps = hourly("2013-12-30T20:00", 60)
    index = pd.DatetimeIndex(stamps)
    expected = (
        np.stack([index.hour / 23, index.day_of_week / 6, (index.day - 1) / 30, (index.day_of_year - 1) / 365], axis=1)
        - 0.5
    )
    feats = time_features(stamps)
    assert feats.shape == (60, 4) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, expected, atol=1e-6)
    np.testing.assert_array_equal(time_features(stamps, ["day_of_month", "hour"]), feats[:, [2, 0]])
    assert time_features(stamps, []).shape == (60, 0)
    with pytest.raises(ValueError, match="choose from hour"):
        time_features(stamps, ["month"])


def test_chronological_split_never_shares_targets():
    parts = chronological_split(1000, input_len=48)
    assert parts == {"train": slice(0, 700), "val": slice(652, 800), "test": slice(752, 1000)}
    # targets of a split start after its first input_len steps
    assert parts["val"].start + 48 == parts["train"].stop and parts["test"].start + 48 == parts["val"].stop
    with pytest.raises(ValueError, match="sum"):
        chronological_split(1000, 48, (0.5, 0.1, 0.1))


def test_windows_content_and_chunks():
    values = np.arange(30 * 5, dtype=np.float32).reshape(30, 5)
    stamps = hourly("2020-01-01", 30)
    ds = ForecastWindows(values, stamps, input_len=6, pred_len=3, series_per_item=2, stride=2)
    assert ds.num_windows == 11 and len(ds) == 33 and ds.chunks == [0, 2, 3]
    (x, x_mark), y = ds[3 * 4 + 2]  # window 4 (start 8), last chunk (series 3, 4)
    np.testing.assert_array_equal(x.numpy(), values[8:14, 3:5])
    np.testing.assert_array_equal(y.numpy(), values[14:17, 3:5])
    np.testing.assert_array_equal(x_mark.numpy(), time_features(stamps[8:14]))
    with pytest.raises(ValueError, match="too short"):
        ForecastWindows(values[:8], stamps[:8], input_len=6, pred_len=3)


def test_map_side():
    assert map_side(48, 48) == 48 and map_side(48, 768) == 192 and map_side(48, 12) == 24
    with pytest.raises(ValueError, match="embed_dim=48"):
        map_side(48, 50)


def test_window_norm_round_trip():
    norm = WindowNorm()
    with torch.no_grad():
        norm.weight.fill_(1.7)
        norm.bias.fill_(-0.3)
    x = torch.randn(2, 16, 3) * 5 + 10
    z, stats = norm(x)
    assert torch.allclose(
        (z - norm.bias) / norm.weight, (x - x.mean(1, keepdim=True)) / x.std(1, unbiased=False, keepdim=True), atol=1e-4
    )
    assert torch.allclose(norm.inverse(z, stats), x, atol=1e-4)


def test_forecaster_shapes_and_invariances():
    model = tiny_forecaster()
    x, x_mark = torch.randn(3, 16, 5), torch.rand(3, 16, 4) - 0.5
    with torch.no_grad():
        y = model(x, x_mark)
        assert y.shape == (3, 4, 5)
        # window normalisation: an affine change of the input changes the forecast the same way
        torch.testing.assert_close(model(3 * x + 7, x_mark), 3 * y + 7, atol=1e-3, rtol=1e-4)
        # series are independent: permuting them permutes the forecasts; each batch item is independent
        perm = torch.tensor([4, 2, 0, 1, 3])
        torch.testing.assert_close(model(x[:, :, perm], x_mark), y[:, :, perm], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(x[1:2], x_mark[1:2]), y[1:2], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, 16, N\)"):
        model(torch.randn(3, 12, 5), x_mark)
    with pytest.raises(ValueError, match="x_mark"):
        model(x)
    no_time = tiny_forecaster(num_time_features=0)
    assert no_time(x).shape == (3, 4, 5)


def test_forecaster_fits_a_sine():
    torch.manual_seed(0)
    model = tiny_forecaster(num_time_features=0).train()
    series = torch.sin(2 * torch.pi * torch.arange(200, dtype=torch.float32) / 12)
    windows = torch.stack([series[s : s + 20] for s in range(0, 160, 20)]).unsqueeze(-1)
    x, y = windows[:, :16], windows[:, 16:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.mse_loss(model(x), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert min(losses[-3:]) < 0.3 * losses[0]


def test_linear_skip_starts_at_the_window_mean_and_composes_with_denormalisation():
    model = tiny_forecaster(linear_skip=True)
    x, x_mark = torch.randn(2, 16, 3) * 4 + 20, torch.rand(2, 16, 4) - 0.5
    with torch.no_grad():
        # zero-initialised skip and head: the forecast is the window mean, whatever the trunk computes
        torch.testing.assert_close(model(x, x_mark), x.mean(1, keepdim=True).expand(2, 4, 3))
        # a skip that copies the last normalised value is persistence once de-normalised
        model.skip.weight[:, -1] = 1.0
        torch.testing.assert_close(model(x, x_mark), x[:, -1:].expand(2, 4, 3), atol=1e-3, rtol=1e-4)
        # the trunk's correction is added on the normalised scale
        model.head[-1].bias.fill_(0.5)
        std = x.std(1, unbiased=False, keepdim=True)
        torch.testing.assert_close(model(x, x_mark), (x[:, -1:] + 0.5 * std).expand(2, 4, 3), atol=1e-3, rtol=1e-4)
    assert tiny_forecaster().skip is None  # the paper's forecaster by default


def test_linear_skip_trains_the_trunk():
    model = tiny_forecaster(linear_skip=True, num_time_features=0).train()
    trunk_before = [p.detach().clone() for p in model.trunk.parameters()]
    x = torch.randn(4, 16, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):  # step 1 moves the zero-initialised head, step 2 reaches the trunk through it
        loss = torch.nn.functional.mse_loss(model(x), x[:, -4:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.skip.weight.abs().sum() > 0 and model.head[-1].weight.abs().sum() > 0
    assert any(not torch.equal(a, b) for a, b in zip(trunk_before, model.trunk.parameters(), strict=True))


def test_fit_skip_minimises_the_original_scale_loss_and_freezing_keeps_it():
    model = tiny_forecaster(linear_skip=True, freeze_skip=True, num_time_features=0)
    assert not any(p.requires_grad for p in model.skip.parameters())
    with torch.no_grad():  # a non-identity affine, which the fit must account for
        model.window_norm.weight.fill_(1.5)
        model.window_norm.bias.fill_(0.2)
    gen = torch.Generator().manual_seed(0)
    walk = torch.randn(64, 20, 3, generator=gen).cumsum(1) * torch.tensor([1.0, 3.0, 0.5]) + 10
    x, y = walk[:, :16], walk[:, 16:]
    model.fit_skip(x, y)
    model.skip.requires_grad_(True)  # zero trunk correction: the skip's loss must be at its minimum
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    assert loss < torch.nn.functional.mse_loss(x.mean(1, keepdim=True).expand_as(y), y)
    for p in model.skip.parameters():
        assert p.grad.abs().max() < 1e-3
    # any other skip does worse on those windows
    with torch.no_grad():
        model.skip.weight.add_(0.01 * torch.randn_like(model.skip.weight))
        assert torch.nn.functional.mse_loss(model(x), y) > loss
    # an exactly linear relation (here: the last four inputs) is recovered
    exact = tiny_forecaster(linear_skip=True, num_time_features=0)
    exact.fit_skip(x, x[:, -4:])
    with torch.no_grad():
        torch.testing.assert_close(exact(x), x[:, -4:], atol=1e-3, rtol=1e-4)
    with pytest.raises(ValueError, match="linear_skip=True"):
        tiny_forecaster().fit_skip(x, y)
    with pytest.raises(ValueError, match="freeze_skip needs linear_skip"):
        tiny_forecaster(freeze_skip=True)
    with pytest.raises(ValueError, match="expected x"):
        model.fit_skip(x[:, :8], y)


def test_backbone_must_be_headless():
    backbone = unireplknet.create_model("unireplknet_a", in_chans=1, num_classes=3, **TINY)
    with pytest.raises(ValueError, match="num_classes=0"):
        UniRepLKNetForecaster(backbone, 16, 4, 4)


def test_load_csv_series(tmp_path):
    path = tmp_path / "series.csv"
    path.write_text("time,a,b,label\n2020-01-01 02:00,3,30,x\n2020-01-01 00:00,1,10,x\n2020-01-01 01:00,,20,y\n")
    values, stamps, names = load_csv_series(path, gaps="ffill")
    assert names == ["a", "b"]
    np.testing.assert_array_equal(values, [[1, 10], [1, 20], [3, 30]])  # sorted by time, gap forward-filled
    assert stamps[0] == np.datetime64("2020-01-01T00:00:00")
    with pytest.raises(ValueError, match="not found"):
        load_csv_series(path, columns=["c"])
    with pytest.raises(ValueError, match="not timestamps"):
        load_csv_series(path, time_column="a")


def test_load_corrformer_memory_maps(tmp_path):
    data = np.random.default_rng(0).normal(size=(50, 7, 3)).astype(np.float32)
    np.save(tmp_path / "temp_global_hourly_val.npy", data)
    np.save(tmp_path / "data_time_val.npy", hourly("2019-01-01", 50))
    values, stamps = load_corrformer(tmp_path, "temp", "val", feature=0)
    assert isinstance(values.base, np.memmap) or isinstance(values, np.memmap)
    np.testing.assert_array_equal(values, data[:, :, 0])
    assert stamps.dtype == np.dtype("datetime64[s]") and len(stamps) == 50
    np.save(tmp_path / "data_time_val.npy", np.array(["2019-01-01"] * 50, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="do not unpickle"):
        load_corrformer(tmp_path, "temp", "val")
    with pytest.raises(ValueError, match="wind_global_hourly_val.npy"):
        load_corrformer(tmp_path, "wind", "val")
