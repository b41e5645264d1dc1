"""Baselines for the forecast task on the task's own chronological split, with the task's metrics.

* persistence: every future step repeats the last observed value;
* seasonal naive: the value one season (``--season`` steps, 24 h for hourly data) earlier, where the input
  window holds a season;
* climatology: the training split's mean for the target's day of the year, per series, smoothed over
  +-15 days (where the training split covers every day of the year: daily data over several years);
* linear: one least-squares map from the mean-centred input window to the mean-centred future,
  shared by all series, fit on the training windows (a linear model on the window);
* linear (all series): one least-squares map from the windows of *all* series to each series' future
  (the cross-station linear model of a multi-station dataset), fit on the training windows; with
  ``data.time_features`` also a variant that adds the time features of the window's last step (e.g. the
  season), the linear start of ``model.layout: stations``.

``--input-len`` scores the linear models for several window lengths; the one to use is chosen by its
validation MSE (printed). MSE/MAE are on the original scale (divided by ``data.value_scale`` as the task
does). Compare with ``unireplknet eval --config CONFIG`` on the same split.

    python benchmarks/forecast_baseline.py --config configs/forecast_nyc_weather.yaml
    python benchmarks/forecast_baseline.py --config configs/forecast_irish_wind.yaml --input-len 1 2 4 7 14 28
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

CLIMATOLOGY_HALF_WIDTH = 15  # days each side of the target's day of the year


def windows(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All items of a ForecastWindows as float64 (x (W, L, n), y (W, P, n))."""
    from unireplknet.tasks.forecast import stacked_windows

    x, y = stacked_windows(dataset)
    return x.double(), y.double()


def least_squares(inputs: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-3) -> torch.Tensor:
    """W (F+1, P) minimising |[inputs, 1] @ W - targets|^2 + ridge |W|^2 for ``inputs (R, F)``, ``targets (R, P)``."""
    inputs = torch.cat([inputs, torch.ones(len(inputs), 1, dtype=inputs.dtype)], 1)
    gram = inputs.T @ inputs + ridge * torch.eye(inputs.shape[1], dtype=inputs.dtype)
    return torch.linalg.solve(gram, inputs.T @ targets)


def fit_linear(x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-3) -> torch.Tensor:
    """Least squares W (L+1, P) with y - mean(x) ~ [x - mean(x), 1] @ W over all windows and series."""
    mean = x.mean(1, keepdim=True)
    inputs = (x - mean).transpose(1, 2).reshape(-1, x.shape[1])
    return least_squares(inputs, (y - mean).transpose(1, 2).reshape(-1, y.shape[1]), ridge)


def linear_forecast(weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(1, keepdim=True)
    inputs = torch.cat([x - mean, torch.ones(x.shape[0], 1, x.shape[2], dtype=x.dtype)], 1)
    return torch.einsum("bln,lp->bpn", inputs, weights) + mean


def cross_inputs(x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
    """Every series' window, series-major, and optional extra features per window: (W, n*L [+ E])."""
    windows = x.transpose(1, 2).flatten(1)
    return windows if extra is None else torch.cat([windows, extra.to(windows.dtype)], 1)


def fit_cross_linear(x: torch.Tensor, y: torch.Tensor, extra: torch.Tensor | None = None, ridge: float = 1e-3):
    """Least squares W (n*L [+ E] + 1, n*P): every series' future from the windows of all n series."""
    return least_squares(cross_inputs(x, extra), y.transpose(1, 2).flatten(1), ridge)


def cross_linear_forecast(weights: torch.Tensor, x: torch.Tensor, pred_len: int, extra=None) -> torch.Tensor:
    inputs = cross_inputs(x, extra)
    inputs = torch.cat([inputs, torch.ones(len(x), 1, dtype=inputs.dtype)], 1)
    return (inputs @ weights).reshape(len(x), x.shape[2], pred_len).transpose(1, 2)


def day_of_year(stamps: np.ndarray) -> np.ndarray:
    days = np.asarray(stamps).astype("datetime64[D]")
    return (days - days.astype("datetime64[Y]")).astype(np.int64)  # 0 .. 365


def fit_climatology(dataset) -> np.ndarray | None:
    """(366, n) day-of-year means of a split's series, circularly smoothed over +-15 days; None unless the
    split has every day of the year."""
    doy = day_of_year(dataset.stamps)
    if len(set(doy.tolist()) & set(range(365))) < 365:
        return None
    values = np.asarray(dataset.values, dtype=np.float64)
    # day 365 (31 December of a leap year) falls back to day 364 if no training year is a leap year
    means = np.stack([values[doy == (d if (doy == d).any() else d - 1)].mean(0) for d in range(366)])
    k = CLIMATOLOGY_HALF_WIDTH
    padded = np.concatenate([means[-k:], means, means[:k]])
    return np.stack([padded[d : d + 2 * k + 1].mean(0) for d in range(366)])


def climatology_forecast(climatology: np.ndarray, dataset) -> torch.Tensor:
    """The climatology of every target step of ``dataset``'s windows: (W, P, n)."""
    doy = day_of_year(dataset.stamps)
    starts = [dataset.window(i)[0] + dataset.input_len for i in range(len(dataset))]
    return torch.from_numpy(np.stack([climatology[doy[t : t + dataset.pred_len]] for t in starts]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/forecast_nyc_weather.yaml")
    parser.add_argument("--season", type=int, default=24, help="seasonal-naive period in steps")
    parser.add_argument("--input-len", type=int, nargs="*", help="window lengths for the linear models")
    args = parser.parse_args()

    from unireplknet.config import load_yaml, resolve_config
    from unireplknet.tasks.forecast import ForecastTask, stacked_marks

    user = load_yaml(args.config)
    report: dict[str, dict] = {}
    lengths = args.input_len or [user["data"]["input_len"]]
    for length in lengths:
        user["data"]["input_len"] = length
        cfg = resolve_config(ForecastTask.config_schema, user)
        task = ForecastTask(cfg)
        pred_len = cfg["data"]["pred_len"]
        train_set = task.split_dataset("train", cfg["data"]["stride"])
        x_train, y_train = windows(train_set)
        last_marks = stacked_marks(train_set)[:, -1]
        weights, cross = fit_linear(x_train, y_train), fit_cross_linear(x_train, y_train)
        cross_marks = fit_cross_linear(x_train, y_train, last_marks) if last_marks.shape[1] else None
        climatology = fit_climatology(train_set)
        for split in ("val", "test"):
            dataset = task.split_dataset(split, cfg["data"]["eval_stride"])
            x, y = windows(dataset)
            forecasts = {
                f"linear, L={length}": linear_forecast(weights, x),
                f"linear (all series), L={length}": cross_linear_forecast(cross, x, pred_len),
            }
            if cross_marks is not None:
                marks = stacked_marks(dataset)[:, -1]
                forecasts[f"linear (all series + time features), L={length}"] = cross_linear_forecast(
                    cross_marks, x, pred_len, marks
                )
            if length == lengths[0]:  # the forecasts below do not depend on the window length beyond its end
                forecasts["persistence"] = x[:, -1:].expand_as(y)
                if climatology is not None:
                    forecasts["climatology (day of year)"] = climatology_forecast(climatology, dataset)
                if x.shape[1] >= args.season:
                    lag = [x.shape[1] - args.season + (h % args.season) for h in range(pred_len)]
                    forecasts["seasonal_naive"] = x[:, lag]
            for name, forecast in forecasts.items():
                metrics = task.new_metrics()
                metrics.update(forecast, y)
                report.setdefault(name, {})[split] = metrics.compute()
        if climatology is None and length == lengths[0]:
            print("climatology: left out, the training split does not cover every day of the year")
        if length == lengths[0] and x_train.shape[1] < args.season:
            print(f"seasonal naive: left out, input_len {length} < season {args.season}")
    for family in ("linear", "linear (all series)", "linear (all series + time features)"):
        scores = {n: r["val"]["mse"] for n, r in report.items() if n.rpartition(",")[0] == family}
        if not scores:
            continue
        print(f"{family}: {min(scores, key=scores.get)} chosen on val (val MSE by L: {scores})")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
