"""Baselines of the global wind demo (``configs/grid_forecast_navy_winds.yaml``) on its split and windows.

Climatology (the training years' calendar-month mean: zero anomaly), persistence of last month's field,
persistence of last month's anomaly, and per-grid-point linear regression of the target anomaly on the
past ``L`` months' U/V anomalies at that point (least squares on the training windows, for each point and
variable). ``L`` of the linear model is chosen on validation among 1..3. Metrics as the task reports them:
MSE / MAE in m/s per variable, anomaly correlation (ACC) per variable, mean over forecasts.

    python benchmarks/grid_forecast_baselines.py [--data DIR]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from unireplknet.modalities.forecast import grid as G


def stacked(windows: G.GridWindows) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(windows[i] for i in range(len(windows))), strict=True)
    return torch.stack(xs).numpy(), torch.stack(ys).numpy()


def scores(forecast: np.ndarray, target: np.ndarray, scale: np.ndarray, variables: tuple[str, ...]) -> dict:
    """Metrics of normalised anomaly forecasts ``(N, V, H, W)``, in the data's units."""
    error = (forecast - target) * scale[None, :, None, None]
    acc = G.anomaly_correlation(torch.from_numpy(forecast), torch.from_numpy(target)).mean(0).numpy()
    out = {"mse": float((error**2).mean()), "mae": float(np.abs(error).mean()), "acc": float(acc.mean())}
    for i, name in enumerate(variables):
        out |= {f"mse/{name}": float((error[:, i] ** 2).mean()), f"mae/{name}": float(np.abs(error[:, i]).mean())}
        out[f"acc/{name}"] = float(acc[i])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder of monthly_navy_winds.cdf (default: Debian's)")
    parser.add_argument("--val-start", default="1990-01")
    parser.add_argument("--test-start", default="1991-01")
    args = parser.parse_args()
    fields = G.read_navy_winds(G.find_navy_winds(args.data))
    results: dict[str, dict] = {}
    linear_val: dict[int, float] = {}
    for length in (1, 2, 3):
        splits = G.month_splits(fields.months, args.val_start, args.test_start, length)
        scaler = G.AnomalyScaler(fields, train_end=int(splits["val"][0]))
        data = {k: stacked(G.GridWindows(fields, scaler, v, length)) for k, v in splits.items()}
        past = slice(0, length * len(fields.variables))  # the past anomaly channels, oldest month first
        last = slice((length - 1) * len(fields.variables), length * len(fields.variables))
        coef = G.per_point_linear_fit(data["train"][0][:, past], data["train"][1], ridge=1e-3)
        for split in ("val", "test"):
            x, y = data[split]
            std = scaler.anomaly_std
            row = {"linear": scores(G.per_point_linear_predict(coef, x[:, past]), y, std, fields.variables)}
            if length == 1:
                targets = splits[split]
                calendar = fields.months[targets].astype(int) % 12
                field_persistence = (fields.values[targets - 1] - scaler.clim[calendar]) / std[None, :, None, None]
                row |= {
                    "climatology": scores(np.zeros_like(y), y, std, fields.variables),
                    "persistence (field)": scores(field_persistence, y, std, fields.variables),
                    "persistence (anomaly)": scores(x[:, last], y, std, fields.variables),
                }
            for name, values in row.items():
                results.setdefault(split, {})[f"{name}, L={length}" if name == "linear" else name] = values
        linear_val[length] = results["val"][f"linear, L={length}"]["mse"]
    chosen = min(linear_val, key=linear_val.get)
    print(f"linear: L={chosen} chosen on validation (val MSE by L: {linear_val})")
    for split, rows in results.items():
        print(f"\n{split} ({args.val_start} .. {args.test_start} is validation)")
        print("| baseline | MSE u | MSE v | MAE u | MAE v | ACC u | ACC v |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, m in rows.items():
            cells = [m[k] for k in ("mse/u", "mse/v", "mae/u", "mae/v", "acc/u", "acc/v")]
            print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    print("\n" + json.dumps({"chosen_linear_L": chosen, **results}))


if __name__ == "__main__":
    main()
