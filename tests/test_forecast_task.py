"""``--task forecast`` (unireplknet.tasks.forecast) on tiny generated series."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pd = pytest.importorskip("pandas")

from unireplknet.config import resolve_config  # noqa: E402
from unireplknet.engine import predict  # noqa: E402
from unireplknet.tasks import get_task  # noqa: E402
from unireplknet.tasks.forecast import ForecastMetrics, stacked_windows  # noqa: E402

TINY_MODEL = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [7], [7], [3]]}
TINY_MODEL = {**TINY_MODEL, "embed_dim": 4}
TINY_WINDOWS = {"input_len": 16, "pred_len": 4}


pytestmark = pytest.mark.usefixtures("one_thread")


def make_task(data: dict, model: dict | None = None, **sections):
    task_cls = get_task("forecast")
    user = {"model": {**TINY_MODEL, **(model or {})}, "data": {**TINY_WINDOWS, **data}, **sections}
    return task_cls(resolve_config(task_cls.config_schema, user))


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    hours = pd.date_range("2021-03-01", periods=200, freq="h")
    t = np.arange(200)
    frame = pd.DataFrame(
        {
            "time": hours,
            "A/temp": 10 + np.sin(2 * np.pi * t / 24),
            "B/temp": 5 + np.cos(2 * np.pi * t / 24),
            "A/wind": t % 7,
        }
    )
    path = tmp_path_factory.mktemp("series") / "series.csv"
    frame.to_csv(path, index=False)
    return path


def test_csv_datasets_follow_the_chronological_split(csv_path):
    task = make_task({"dataset": "csv", "path": str(csv_path), "columns": None, "split": [0.6, 0.2, 0.2]})
    train, val = task.build_datasets()
    assert task.series_names == ["A/temp", "B/temp", "A/wind"]
    assert (len(train), len(val)) == (120 - 20 + 1, 40 + 16 - 20 + 1)
    (x, x_mark), y = val[0]
    assert x.shape == (16, 3) and x_mark.shape == (16, 4) and y.shape == (4, 3)
    assert float(y[0, 2]) == 120 % 7  # the first validation target is step 120, right after training
    model = task.build_model()
    batch = torch.utils.data.default_collate([val[0], val[1]])
    out = model(batch[0])
    assert out.shape == (2, 4, 3)
    torch.testing.assert_close(task.loss(out, batch[1], train=True), torch.nn.functional.mse_loss(out, batch[1]))
    metrics = task.new_metrics()
    metrics.update(out, batch[1])
    assert set(metrics.compute()) == {"mse", "mae", "mse/temp", "mae/temp", "mse/wind", "mae/wind"}


def test_metrics_exact_grouped_and_scaled():
    metrics = ForecastMetrics(["temp", "wind", "temp"], value_scale=10.0)
    target = torch.zeros(1, 2, 3)
    metrics.update(torch.tensor([[[10.0, 20.0, 30.0], [-10.0, 0.0, 0.0]]]), target)
    result = metrics.compute()
    # errors /10: temp {1, 3, -1, 0}, wind {2, 0}
    assert result == pytest.approx(
        {"mse": 15 / 6, "mae": 7 / 6, "mse/temp": 11 / 4, "mae/temp": 5 / 4, "mse/wind": 2.0, "mae/wind": 1.0}
    )
    chunked = ForecastMetrics(["temp", "wind", "temp"])
    chunked.update(torch.ones(2, 2, 2), torch.zeros(2, 2, 2))  # items holding a subset: overall only
    assert chunked.compute() == {"mse": 1.0, "mae": 1.0}


def test_predict_writes_the_forecast(csv_path, tmp_path):
    task = make_task({"dataset": "csv", "path": str(csv_path), "columns": None}, predict={"out_dir": str(tmp_path)})
    model = task.build_model()
    (result,) = predict(task, model, [csv_path])
    assert result["columns"] == ["A/temp", "B/temp", "A/wind"]
    assert result["times"] == [str(np.datetime64("2021-03-09T08:00:00") + np.timedelta64(h, "h")) for h in range(4)]
    assert np.array(result["forecast"]).shape == (4, 3)
    written = pd.read_csv(result["output"])
    assert list(written.columns) == ["time", "A/temp", "B/temp", "A/wind"] and len(written) == 4
    with pytest.raises(ValueError, match="at least 16 rows"):
        short = tmp_path / "short.csv"
        pd.read_csv(csv_path).head(10).to_csv(short, index=False)
        predict(task, model, [short])


def test_nyc_weather_demo_data():
    task = make_task({"dataset": "nyc_weather", "eval_split": "test", "stride": 100})
    train, test = task.build_datasets()
    assert task.series_names == [f"{a}/{c}" for c in ("temp", "wind_speed") for a in ("EWR", "JFK", "LGA")]
    assert train.values.shape[1] == 6 and not np.isnan(train.values).any()
    # chronological: every training timestamp precedes every test target
    assert train.stamps[-1] < test.stamps[task.data["input_len"]]


def test_corrformer_layout_with_value_scale(tmp_path):
    for split, n in (("train", 60), ("val", 40)):
        np.save(
            tmp_path / f"wind_global_hourly_{split}.npy",
            np.random.default_rng(0).normal(size=(n, 5, 2)).astype(np.float32),
        )
        start = np.datetime64("2018-01-01T00", "s")
        np.save(tmp_path / f"data_time_{split}.npy", start + np.arange(n).astype("timedelta64[h]"))
    task = make_task({"dataset": "global_wind", "root": str(tmp_path), "series_per_item": 2, "value_scale": 10})
    train, val = task.build_datasets()
    assert (len(train), len(val)) == ((60 - 20 + 1) * 3, (40 - 20 + 1) * 3)
    (x, _), y = train[0]
    assert x.shape == (16, 2) and y.shape == (4, 2)
    metrics = task.new_metrics()
    metrics.update(torch.full((1, 4, 2), 10.0), torch.zeros(1, 4, 2))
    assert metrics.compute() == {"mse": 1.0, "mae": 1.0}


def test_time_feature_selection(csv_path):
    task = make_task({"dataset": "csv", "path": str(csv_path), "columns": None, "time_features": ["hour"]})
    _, val = task.build_datasets()
    (x, x_mark), _ = val[0]
    assert x_mark.shape == (16, 1)
    model = task.build_model()
    assert model.embed.time.in_features == 1
    assert model((x[None], x_mark[None])).shape == (1, 4, 3)
    assert len(predict(task, model, [csv_path])[0]["forecast"]) == 4
    none = make_task({"dataset": "csv", "path": str(csv_path), "columns": None, "time_features": False})
    assert none.build_model().embed.time is None and predict(none, none.build_model(), [csv_path])


def test_least_squares_skip_start_uses_the_training_windows_only(csv_path):
    skip = {"linear_skip": True, "skip_init": "least_squares", "freeze_skip": True}
    task = make_task({"dataset": "csv", "path": str(csv_path), "columns": None}, model=skip)
    assert task.build_model().skip.weight.abs().sum() == 0  # no datasets built (eval / predict): no fit
    train, _ = task.build_datasets()
    model = task.build_model()
    reference = make_task({"dataset": "csv", "path": str(csv_path), "columns": None}, model=skip).build_model()
    reference.fit_skip(*stacked_windows(train))
    torch.testing.assert_close(model.skip.weight, reference.skip.weight)
    assert model.skip.weight.abs().sum() > 0 and not model.skip.weight.requires_grad
    x, y = stacked_windows(train, limit=5)
    assert x.shape == (5, 16, 3) and y.shape == (5, 4, 3)
    torch.testing.assert_close(x[-1], train[len(train) - 1][0][0])


def test_bad_config():
    with pytest.raises(ValueError, match="needs data.path"):
        make_task({"dataset": "csv"}).build_datasets()
    with pytest.raises(ValueError, match="'data.time_features' must be true or false or a list"):
        make_task({"dataset": "csv", "time_features": "hour"})
    with pytest.raises(ValueError, match="'model.skip_init' must be one of 'zero', 'least_squares', got 'ridge'"):
        make_task({"dataset": "csv"}, model={"skip_init": "ridge"})
    with pytest.raises(ValueError, match="perfect square"):
        make_task({"dataset": "csv"}, model={"embed_dim": 5}).build_model()


def test_cli_train_eval_predict(csv_path, tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from unireplknet.cli import app

    config = tmp_path / "forecast.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "forecast",
                "model": TINY_MODEL,
                "data": {
                    **TINY_WINDOWS,
                    "dataset": "csv",
                    "path": str(csv_path),
                    "columns": None,
                    "batch_size": 16,
                    "stride": 4,
                },
                "optim": {"warmup_epochs": 0},
                "train": {"epochs": 1, "threads": 1},
                "output": {"dir": str(tmp_path / "runs"), "name": "run"},
            }
        )
    )
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "run" / "forecasts.png").stat().st_size > 1000  # forecasts vs truth
    best = tmp_path / "runs" / "run" / "best.safetensors"
    result = runner.invoke(app, ["eval", str(best), "--set", "data.eval_split=test", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output.strip().splitlines()[-1])
    assert metrics["samples"] == 200 - int(200 * 0.8) + 16 - 20 + 1 and metrics["mse"] >= 0
    result = runner.invoke(app, ["predict", str(best), str(csv_path), "--json"])
    assert result.exit_code == 0, result.output
    (prediction,) = json.loads(result.output)
    assert len(prediction["times"]) == 4 and np.isfinite(prediction["forecast"]).all()


@pytest.mark.parametrize("name", ["forecast_nyc_weather", "forecast_global_temp", "forecast_global_wind"])
def test_shipped_configs_resolve(name):
    from pathlib import Path

    from unireplknet.config import load_yaml

    user = load_yaml(Path(__file__).parents[1] / "configs" / f"{name}.yaml")
    task = get_task(user["task"])(resolve_config(get_task(user["task"]).config_schema, user))
    assert task.name == "forecast"
    area = task.cfg["data"]["input_len"] * task.cfg["model"]["embed_dim"]
    assert int(area**0.5) ** 2 == area  # a square map
