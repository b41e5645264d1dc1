"""Baselines for the forecast task on the task's own chronological split, with the task's metrics.

* persistence: every future step repeats the last observed value;
* seasonal naive: the value one season (24 h) earlier;
* linear: one least-squares map from the mean-centred input window to the mean-centred future,
  shared by all series, fit on the training windows (a linear model on the window).

MSE/MAE are on the original scale (divided by ``data.value_scale`` as the task does). Compare with
``unireplknet eval --config CONFIG`` on the same split.

    python benchmarks/forecast_baseline.py --config configs/forecast_nyc_weather.yaml
"""

from __future__ import annotations

import argparse
import json

import torch


def windows(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All items of a ForecastWindows as float64 (x (W, L, n), y (W, P, n))."""
    from unireplknet.tasks.forecast import stacked_windows

    x, y = stacked_windows(dataset)
    return x.double(), y.double()


def fit_linear(x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-3) -> torch.Tensor:
    """Least squares W (L+1, P) with y - mean(x) ~ [x - mean(x), 1] @ W over all windows and series."""
    mean = x.mean(1, keepdim=True)
    inputs = (x - mean).transpose(1, 2).reshape(-1, x.shape[1])
    inputs = torch.cat([inputs, torch.ones(len(inputs), 1, dtype=inputs.dtype)], 1)
    targets = (y - mean).transpose(1, 2).reshape(-1, y.shape[1])
    gram = inputs.T @ inputs + ridge * torch.eye(inputs.shape[1], dtype=inputs.dtype)
    return torch.linalg.solve(gram, inputs.T @ targets)


def linear_forecast(weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(1, keepdim=True)
    inputs = torch.cat([x - mean, torch.ones(x.shape[0], 1, x.shape[2], dtype=x.dtype)], 1)
    return torch.einsum("bln,lp->bpn", inputs, weights) + mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/forecast_nyc_weather.yaml")
    parser.add_argument("--season", type=int, default=24, help="seasonal-naive period in steps")
    args = parser.parse_args()

    from unireplknet.config import load_yaml, resolve_config
    from unireplknet.tasks.forecast import ForecastTask

    cfg = resolve_config(ForecastTask.config_schema, load_yaml(args.config))
    task = ForecastTask(cfg)
    pred_len, season = cfg["data"]["pred_len"], args.season
    weights = fit_linear(*windows(task.split_dataset("train", cfg["data"]["stride"])))
    report = {}
    for split in ("val", "test"):
        x, y = windows(task.split_dataset(split, cfg["data"]["eval_stride"]))
        if x.shape[1] < season:
            raise ValueError(f"seasonal naive needs input_len >= season ({season})")
        lag = [x.shape[1] - season + (h % season) for h in range(pred_len)]
        forecasts = {
            "persistence": x[:, -1:].expand_as(y),
            "seasonal_naive": x[:, lag],
            "linear": linear_forecast(weights, x),
        }
        for name, forecast in forecasts.items():
            metrics = task.new_metrics()
            metrics.update(forecast, y)
            report.setdefault(name, {})[split] = metrics.compute()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
