"""The multi-station forecast demo (gstat's Irish wind, ``layout: stations``) on a tiny generated ``wind.rda``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pd = pytest.importorskip("pandas")
pyreadr = pytest.importorskip("pyreadr")

from unireplknet.config import resolve_config  # noqa: E402
from unireplknet.data.sources import GSTAT_WIND_FILE, debian_file  # noqa: E402
from unireplknet.modalities import forecast as TS  # noqa: E402
from unireplknet.models.forecast import UniRepLKNetForecaster  # noqa: E402
from unireplknet.tasks import get_task  # noqa: E402
from unireplknet.tasks.forecast import ForecastMetrics, stacked_windows  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

STATIONS = ["RPT", "VAL", "ROS", "KIL"]
TINY_MODEL = {"depths": [1, 1, 1, 1], "dims": [8, 16, 16, 16], "kernel_sizes": [[3], [7], [7], [3]], "embed_dim": 4}
TINY_DATA = {
    "dataset": "irish_wind",
    "columns": None,
    "input_len": 6,
    "pred_len": 3,
    "time_features": ["season_sin", "season_cos"],
}


def write_wind(path, days: int = 400, **changes) -> pd.DataFrame:
    """gstat's layout: year (two digits), month, day, then one column of daily wind (knots) per station."""
    dates = pd.date_range("1961-01-01", periods=days, freq="D")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"year": dates.year - 1900, "month": dates.month, "day": dates.day}).astype(np.int32)
    for i, code in enumerate(STATIONS):
        frame[code] = 10 + i + 3 * np.sin(2 * np.pi * np.arange(days) / 365) + rng.normal(size=days)
    for column, value in changes.items():
        if value is None:
            frame = frame.drop(columns=column)
        else:
            frame.loc[5, column] = value
    pyreadr.write_rdata(str(path), frame, df_name="wind")
    return frame


@pytest.fixture(scope="module")
def wind_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gstat")
    write_wind(folder / "wind.rda")
    return folder


def make_task(root, model: dict | None = None, **data):
    task_cls = get_task("forecast")
    user = {
        "model": {**TINY_MODEL, "layout": "stations", **(model or {})},
        "data": {**TINY_DATA, "root": str(root), **data},
    }
    return task_cls(resolve_config(task_cls.config_schema, user))


def test_reads_the_gstat_layout(wind_dir):
    values, stamps, names = TS.load_irish_wind(TS.find_irish_wind(wind_dir))
    frame = pyreadr.read_r(str(wind_dir / "wind.rda"))["wind"]
    assert names == STATIONS and values.shape == (400, 4) and values.dtype == np.float32
    np.testing.assert_allclose(values, frame[STATIONS].to_numpy(), rtol=1e-6)
    assert stamps[0] == np.datetime64("1961-01-01") and stamps[-1] == np.datetime64("1962-02-04")  # 61 is 1961


def test_split_windows_never_share_a_target(wind_dir):
    task = make_task(wind_dir, split=[0.6, 0.2, 0.2])
    splits = {name: task.split_dataset(name) for name in ("train", "val", "test")}
    targets = {}
    for name, windows in splits.items():
        starts = [windows.window(i)[0] + windows.input_len for i in range(len(windows))]
        targets[name] = {str(windows.stamps[t + k]) for t in starts for k in range(windows.pred_len)}
        (x, x_mark), y = windows[0]
        assert x.shape == (6, 4) and x_mark.shape == (6, 2) and y.shape == (3, 4)
    assert not targets["train"] & targets["val"] and not targets["val"] & targets["test"]
    assert len(targets["train"] | targets["val"] | targets["test"]) == 400 - 6  # every day after the first window
    assert max(targets["train"]) < min(targets["val"]) and max(targets["val"]) < min(targets["test"])


def test_stations_layout_trains_and_starts_at_the_fitted_cross_station_skip(wind_dir):
    task = make_task(wind_dir, model={"linear_skip": True, "skip_init": "least_squares", "freeze_skip": True})
    train, _ = task.build_datasets()
    model = task.build_model()
    assert model.skip.in_features == 6 * 4 + 2 and model.skip.out_features == 3 * 4  # windows + the season
    x, y = stacked_windows(train)
    # the skip is the least-squares fit of the training loss: its gradient there is ~0 (up to the ridge)
    probe = UniRepLKNetForecaster(model.trunk, 6, 3, 4, 2, linear_skip=True, layout="stations", num_series=4)
    probe.load_state_dict(model.state_dict())
    probe.skip.requires_grad_(True)
    x_mark = torch.stack([train[i][0][1] for i in range(len(train))])
    torch.nn.functional.mse_loss(probe((x, x_mark)), y).backward()
    assert probe.skip.weight.grad.abs().max() < 1e-3 and probe.skip.weight.abs().max() > 1e-2
    # one optimiser step changes the trunk (the skip is frozen) and the loss stays finite
    batch = torch.utils.data.default_collate([train[i] for i in range(8)])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.1)
    before = model.skip.weight.clone(), [p.detach().clone() for p in params]
    loss = task.loss(model(batch[0]), batch[1], train=True)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and torch.equal(model.skip.weight, before[0])
    assert any(not torch.equal(p, q) for p, q in zip(params, before[1], strict=True))


def test_predict_reads_a_csv_of_the_stations(wind_dir, tmp_path):
    from unireplknet.engine import predict

    task = make_task(wind_dir)
    task.build_datasets()
    model = task.build_model()
    frame = pyreadr.read_r(str(wind_dir / "wind.rda"))["wind"].tail(10)
    days = pd.to_datetime({"year": frame["year"] + 1900, "month": frame["month"], "day": frame["day"]})
    csv = tmp_path / "recent.csv"
    frame[STATIONS[::-1]].assign(date=days.dt.strftime("%Y-%m-%d")).set_index("date").to_csv(csv)
    (result,) = predict(task, model, [csv])
    assert result["columns"] == STATIONS and result["times"][0] == "1962-02-05T00:00:00"
    assert np.array(result["forecast"]).shape == (3, 4)
    frame[STATIONS[1:]].assign(date=days.dt.strftime("%Y-%m-%d")).set_index("date").to_csv(csv)
    with pytest.raises(ValueError, match=r"value columns \['RPT'\] not found"):
        predict(task, model, [csv])


def test_shipped_config_resolves():
    from pathlib import Path

    from unireplknet.config import load_yaml

    user = load_yaml(Path(__file__).parents[1] / "configs" / "forecast_irish_wind.yaml")
    task = get_task("forecast")(resolve_config(get_task("forecast").config_schema, user))
    assert task.cfg["model"]["layout"] == "stations" and task.cfg["data"]["dataset"] == "irish_wind"


def test_timm_backbone_reads_the_same_map(wind_dir):
    task = make_task(wind_dir, model={"name": "resnet18", "depths": None, "dims": None, "kernel_sizes": None})
    train, _ = task.build_datasets()
    model = task.build_model()
    (x, x_mark), _ = torch.utils.data.default_collate([train[0], train[1]])  # batch norm: more than one
    assert model((x, x_mark)).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="model.depths applies to UniRepLKNet variants only"):
        make_task(wind_dir, model={"name": "resnet18"}).build_model()
    with pytest.raises(ValueError, match="needs model.layout=stations"):
        make_task(wind_dir, model={"name": "resnet18", "layout": "series", "depths": None, "dims": None,
                                   "kernel_sizes": None}).build_model()  # fmt: skip


def test_season_features_are_continuous_over_new_year():
    stamps = np.array(["1961-12-31", "1962-01-01", "1962-07-02"], dtype="datetime64[s]")
    sin, cos = TS.time_features(stamps, ["season_sin", "season_cos"]).T
    assert abs(sin[0] - sin[1]) < 0.02 and cos[1] == pytest.approx(0.5) and cos[2] == pytest.approx(-0.5, abs=1e-3)


def test_step_metrics_exact():
    metrics = ForecastMetrics(["A", "B"], pred_len=2)
    metrics.update(torch.tensor([[[1.0, 2.0], [0.0, -3.0]]]), torch.zeros(1, 2, 2))
    result = metrics.compute()
    assert result["mse/step1"] == pytest.approx(2.5) and result["mae/step2"] == pytest.approx(1.5)
    assert result["mse/A"] == pytest.approx(0.5) and result["mse"] == pytest.approx(14 / 4)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"KIL": float("nan")}, "station KIL has no value on 1961-01-06"),
        ({"day": None}, "'wind' has no column 'day'"),
    ],
)
def test_bad_files_are_named_errors(tmp_path, changes, message):
    write_wind(tmp_path / "wind.rda", **changes)
    with pytest.raises(ValueError, match=message):
        TS.load_irish_wind(tmp_path / "wind.rda")


def test_missing_station_and_wrong_file(tmp_path, wind_dir, monkeypatch):
    with pytest.raises(ValueError, match="no station 'XYZ' in the Irish wind data"):
        make_task(wind_dir, columns=["RPT", "XYZ"]).build_datasets()
    (tmp_path / "wind.rda").write_text("not R data")
    with pytest.raises(ValueError, match="cannot read .* as R data"):
        TS.load_irish_wind(tmp_path / "wind.rda")
    with pytest.raises(ValueError, match="not found: pass --data"):
        TS.find_irish_wind(tmp_path / "elsewhere")
    # the real file names its stations in wind.loc (pyreadr writes one object per file: patch the reader)
    objects = pyreadr.read_r(str(wind_dir / "wind.rda"))
    objects["wind.loc"] = pd.DataFrame({"Code": STATIONS + ["MAL"]})
    monkeypatch.setattr(pyreadr, "read_r", lambda path: objects)
    with pytest.raises(ValueError, match="wind.loc lists station 'MAL', but 'wind' has no column for it"):
        TS.load_irish_wind(wind_dir / "wind.rda")


def test_gap_in_days_is_an_error(tmp_path):
    frame = write_wind(tmp_path / "wind.rda")
    pyreadr.write_rdata(str(tmp_path / "wind.rda"), frame.drop(index=10), df_name="wind")
    with pytest.raises(ValueError, match="not consecutive: 1961-01-10 is followed by 1961-01-12"):
        TS.load_irish_wind(tmp_path / "wind.rda")


def test_the_packaged_file():
    try:
        path = debian_file(GSTAT_WIND_FILE, "r-cran-gstat")
    except ValueError as e:
        pytest.skip(f"r-cran-gstat's wind.rda is absent: {e}")
    values, stamps, names = TS.load_irish_wind(path)
    assert values.shape == (6574, 12) and len(set(names)) == 12 and "VAL" in names and "MAL" in names
    assert stamps[0] == np.datetime64("1961-01-01") and stamps[-1] == np.datetime64("1978-12-31")
