"""Gridded monthly wind forecasting: the netCDF reader, time split, climatology, windows, baselines, metrics
and the ``grid_forecast`` task end to end, on small generated files in the layout of ``monthly_navy_winds.cdf``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import netcdf_file
from typer.testing import CliRunner

from unireplknet.cli import app
from unireplknet.data.sources import NAVY_WINDS_FILE
from unireplknet.modalities.forecast import grid as G

pytestmark = pytest.mark.usefixtures("one_thread")


def write_navy_winds(path: Path, months: int = 40, lat: int = 9, lon: int = 16, seed: int = 0, **edit) -> np.ndarray:
    """A classic netCDF file like Ferret's (hours since 1980-01-14 14:00, mid-month steps from 1982-01)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(months, lat, lon)).astype(np.float32)
    v = rng.normal(size=(months, lat, lon)).astype(np.float32)
    if "missing_at" in edit:
        u[edit["missing_at"]] = -99.9
    days = np.array([(np.datetime64("1982-01", "M") + k).astype("datetime64[D]") + 15 for k in range(months)])
    hours = ((days - np.datetime64("1980-01-14T14:00", "m")).astype(int) / 60.0).astype(np.float64)
    if "gap_at" in edit:
        hours[edit["gap_at"] :] += 24 * 31
    with netcdf_file(path, "w") as f:
        f.createDimension("TIME", months)
        f.createDimension("FNOCY", lat)
        f.createDimension("FNOCX", lon)
        t = f.createVariable("TIME", "d", ("TIME",))
        t[:] = hours
        t.units = b"hour since 1980-01-14 14:00:00"
        f.createVariable("FNOCY", "d", ("FNOCY",))[:] = np.linspace(-90, 90, lat)
        f.createVariable("FNOCX", "d", ("FNOCX",))[:] = np.arange(lon) * 360.0 / lon
        for name, data in (("UWND", u), ("VWND", v)):
            var = f.createVariable(name, "f", ("TIME", "FNOCY", "FNOCX"))
            var[:] = data
            var.missing_value = np.float32(-99.9)
    return np.stack([u, v], axis=1)


def test_reader_decodes_months_and_values(tmp_path: Path) -> None:
    expected = write_navy_winds(tmp_path / NAVY_WINDS_FILE)
    fields = G.read_navy_winds(G.find_navy_winds(tmp_path))
    np.testing.assert_array_equal(fields.values, expected)
    assert str(fields.months[0]) == "1982-01" and str(fields.months[-1]) == "1985-04"
    assert fields.values.shape == (40, 2, 9, 16) and fields.variables == ("u", "v")
    assert G.find_navy_winds(tmp_path / NAVY_WINDS_FILE) == tmp_path / NAVY_WINDS_FILE


def test_reader_refuses_missing_values_gaps_and_absent_files(tmp_path: Path) -> None:
    write_navy_winds(tmp_path / "missing.cdf", missing_at=(3, 2, 2))
    with pytest.raises(ValueError, match="missing values"):
        G.read_navy_winds(tmp_path / "missing.cdf")
    write_navy_winds(tmp_path / "gap.cdf", gap_at=10)
    with pytest.raises(ValueError, match="not consecutive"):
        G.read_navy_winds(tmp_path / "gap.cdf")
    with pytest.raises(FileNotFoundError, match="ferret-datasets"):
        G.find_navy_winds(tmp_path / "nowhere")
    (tmp_path / "bad.cdf").write_text("not netcdf")
    with pytest.raises(ValueError, match="classic netCDF"):
        G.read_navy_winds(tmp_path / "bad.cdf")


def test_month_splits_are_disjoint_and_in_time_order() -> None:
    months = np.arange(np.datetime64("1982-01"), np.datetime64("1985-05"))
    splits = G.month_splits(months, "1984-01", "1984-07", input_len=3)
    assert splits["train"][0] == 3 and months[splits["train"][-1]] == np.datetime64("1983-12")
    assert months[splits["val"]].tolist() == np.arange(np.datetime64("1984-01"), np.datetime64("1984-07")).tolist()
    assert splits["train"][-1] < splits["val"][0] and splits["val"][-1] < splits["test"][0]
    assert splits["test"][-1] == len(months) - 1
    with pytest.raises(ValueError, match="val_start"):
        G.month_splits(months, "1984-07", "1984-01", input_len=3)


def test_climatology_uses_training_months_only(tmp_path: Path) -> None:
    write_navy_winds(tmp_path / "a.cdf")
    fields = G.read_navy_winds(tmp_path / "a.cdf")
    scaler = G.AnomalyScaler(fields, train_end=24)
    np.testing.assert_allclose(scaler.clim[0], fields.values[[0, 12]].mean(0), rtol=1e-6)
    fields.values[30:] += 100.0  # later months must not move the climatology
    np.testing.assert_array_equal(G.AnomalyScaler(fields, train_end=24).clim, scaler.clim)
    anomalies = scaler.anomalies(fields)[:24] * scaler.anomaly_std[None, :, None, None]
    np.testing.assert_allclose(anomalies.reshape(2, 12, 2, 9, 16).mean(0), 0, atol=1e-5)
    with pytest.raises(ValueError, match="calendar month"):
        G.AnomalyScaler(fields, train_end=6)


def test_windows_stack_past_anomalies_climatology_and_static_maps(tmp_path: Path) -> None:
    write_navy_winds(tmp_path / "a.cdf")
    fields = G.read_navy_winds(tmp_path / "a.cdf")
    scaler = G.AnomalyScaler(fields, train_end=24)
    windows = G.GridWindows(fields, scaler, targets=[25, 30], input_len=3)
    x, y = windows[1]
    anomalies = scaler.anomalies(fields)
    assert x.shape == (windows.in_chans, 9, 16) == (2 * 4 + 3, 9, 16)
    np.testing.assert_allclose(x[:6].numpy(), anomalies[27:30].reshape(6, 9, 16), rtol=1e-6)
    np.testing.assert_allclose(y.numpy(), anomalies[30], rtol=1e-6)
    np.testing.assert_allclose(x[6:8].numpy(), scaler.clim[30 % 12] / scaler.field_std[:, None, None], rtol=1e-6)
    np.testing.assert_allclose(x[8, :, 0].numpy(), np.sin(np.deg2rad(fields.lat)), atol=1e-6)
    with pytest.raises(ValueError, match="fewer than input_len"):
        G.GridWindows(fields, scaler, targets=[2], input_len=3)


def test_anomaly_correlation_and_linear_fit() -> None:
    obs = torch.randn(3, 2, 5, 7)
    torch.testing.assert_close(G.anomaly_correlation(obs, obs), torch.ones(3, 2))
    torch.testing.assert_close(G.anomaly_correlation(-2 * obs, obs), -torch.ones(3, 2))
    assert G.anomaly_correlation(torch.zeros_like(obs), obs).abs().max() == 0
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3, 4, 6))
    true = rng.normal(size=(2, 4, 6, 4))
    y = np.einsum("vhwf,nfhw->nvhw", true[..., :3], x) + true[..., 3][None]
    coef = G.per_point_linear_fit(x, y, ridge=0.0)
    np.testing.assert_allclose(coef, true, atol=1e-8)
    np.testing.assert_allclose(G.per_point_linear_predict(coef, x), y, atol=1e-8)


def test_metrics_in_data_units() -> None:
    from unireplknet.tasks.grid_forecast import GridForecastMetrics

    metrics = GridForecastMetrics(["u", "v"], anomaly_std=[2.0, 0.5])
    targets = torch.randn(4, 2, 3, 5)
    outputs = targets + torch.tensor([1.0, -2.0]).view(1, 2, 1, 1)  # normalised errors 1 and -2
    metrics.update(outputs[:3], targets[:3])
    metrics.update(outputs[3:], targets[3:])
    result = metrics.compute()
    assert result["mse/u"] == pytest.approx(4.0) and result["mae/u"] == pytest.approx(2.0)
    assert result["mse/v"] == pytest.approx(1.0) and result["mae/v"] == pytest.approx(1.0)
    assert result["mse"] == pytest.approx(2.5)
    expected_acc = G.anomaly_correlation(outputs, targets).mean(0)
    assert result["acc/u"] == pytest.approx(float(expected_acc[0]))


def test_forecaster_pads_circularly_and_crops() -> None:
    from unireplknet.models.grid_forecast import GridForecaster

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen = x
            return x[:, :1]

    probe = Probe()
    x = torch.arange(9 * 16, dtype=torch.float32).view(1, 1, 9, 16)
    out = GridForecaster(probe)(x)
    torch.testing.assert_close(out, x)
    seen = probe.seen[0, 0]
    assert seen.shape == (32, 32)
    # longitude wraps: the 8 columns left of the grid are its last 8 columns; rows beyond the poles are zeros
    torch.testing.assert_close(seen[11:20, :8], x[0, 0, :, 8:])
    assert seen[:11].abs().sum() == 0 and seen[20:].abs().sum() == 0


TINY = [
    "model.depths=[1,1,1,1]",
    "model.dims=[8,16,32,64]",
    "model.kernel_sizes=[[3],[5],[5],[3]]",
    "model.decoder_channels=32",
    "data.val_start=1984-01",
    "data.test_start=1984-07",
    "data.batch_size=8",
    "train.epochs=1",
    "train.threads=1",
]


def test_task_trains_evaluates_and_predicts(tmp_path: Path) -> None:
    runner = CliRunner()
    write_navy_winds(tmp_path / NAVY_WINDS_FILE, lat=20, lon=48)  # padded to 32 x 64: GroupNorm sees 2 values
    args = [a for item in TINY for a in ("--set", item)]
    result = runner.invoke(
        app,
        [
            "train",
            "--task",
            "grid_forecast",
            *args,
            "--data",
            str(tmp_path),
            "-o",
            str(tmp_path / "runs"),
            "--name",
            "t",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "t"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_samples"] == 22 and summary["val_samples"] == 6 and summary["eval_samples"] == 10
    assert {"mse/u", "mae/v", "acc/u", "acc"} <= set(summary["eval"])
    evaluated = runner.invoke(app, ["eval", str(run / "best.safetensors"), "--json"], catch_exceptions=False)
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["samples"] == 6
    write_navy_winds(tmp_path / "recent.cdf", months=5, lat=20, lon=48, seed=1)
    predicted = runner.invoke(
        app,
        [
            "predict",
            str(run / "best.safetensors"),
            str(tmp_path / "recent.cdf"),
            "--json",
            "--set",
            f"predict.out_dir={tmp_path / 'out'}",
        ],  # fmt: skip
        catch_exceptions=False,
    )
    assert predicted.exit_code == 0, predicted.output
    (forecast,) = json.loads(predicted.output)
    assert forecast["month"] == "1982-06"
    assert np.load(forecast["output"]).shape == (2, 20, 48)


def test_task_refuses_our_keywords_on_a_timm_encoder(tmp_path: Path) -> None:
    write_navy_winds(tmp_path / NAVY_WINDS_FILE)
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--task",
            "grid_forecast",
            "--set",
            "model.name=resnet18",
            "--set",
            "model.depths=[1,1,1,1]",
            "--set",
            "data.val_start=1984-01",
            "--set",
            "data.test_start=1984-07",
            "--data",
            str(tmp_path),
            "-o",
            str(tmp_path / "runs"),
        ],  # fmt: skip
    )
    assert result.exit_code == 2 and "UniRepLKNet variants only" in result.output


def test_linear_skip_starts_the_model_at_the_per_point_least_squares_forecast(tmp_path: Path) -> None:
    from unireplknet.config import resolve_config
    from unireplknet.tasks.grid_forecast import GridForecastTask

    write_navy_winds(tmp_path / NAVY_WINDS_FILE, lat=20, lon=48)
    overrides = {
        "model": {
            "depths": [1, 1, 1, 1],
            "dims": [8, 16, 32, 64],
            "kernel_sizes": [[3], [5], [5], [3]],
            "decoder_channels": 32,
        },
        "data": {"root": str(tmp_path), "val_start": "1984-01", "test_start": "1984-07", "input_len": 2},
    }
    task = GridForecastTask(resolve_config(GridForecastTask.config_schema, {"task": "grid_forecast"}, overrides))
    train, val = task.build_datasets()
    model = task.build_model().eval()
    x_train, y_train = (torch.stack(items) for items in zip(*(train[i] for i in range(len(train))), strict=True))
    x_val, _ = (torch.stack(items) for items in zip(*(val[i] for i in range(len(val))), strict=True))
    coef = G.per_point_linear_fit(x_train[:, :4].numpy(), y_train.numpy(), ridge=1e-3)
    expected = G.per_point_linear_predict(coef, x_val[:, :4].numpy())
    with torch.no_grad():
        np.testing.assert_allclose(model(x_val).numpy(), expected, atol=1e-4)
    assert not any(p is model.skip for p in model.parameters())  # a buffer: frozen, saved with the weights
