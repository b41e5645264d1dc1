"""Gridded monthly fields as maps: the global wind forecasting demo (the grid *is* the C x H x W map).

The data (where it is: :mod:`unireplknet.data.sources`): Debian's ``ferret-datasets`` ships
``monthly_navy_winds.cdf`` (classic netCDF, read with
``scipy.io.netcdf_file``): monthly mean zonal (U) and meridional (V) surface wind in m/s on a global
2.5 degree grid, 73 latitudes x 144 longitudes, 1982-01 to 1992-12 (132 months, no gaps).

A sample forecasts month ``t`` from months ``t - L .. t - 1``. Everything is expressed as *anomalies*:
the field minus the calendar month's climatology of the training months (months before the validation
start), divided by the training anomalies' standard deviation per variable. The input map stacks, along
channels: the L past anomaly maps of each variable (``V * L``), the target month's climatology of each
variable (``V``, divided by the training fields' std) and three static maps (sin latitude, cos/sin
longitude): ``C = V * (L + 1) + 3``. The target is the target month's normalised anomaly ``(V, H, W)``.

Splits are by time (:func:`month_splits`): a split holds the windows whose *target* month lies in its
range; inputs may reach back into the previous split (they are past observations), targets never overlap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ...data.sources import NAVY_WINDS_DIRS, NAVY_WINDS_FILE

__all__ = [
    "MonthlyFields",
    "find_navy_winds",
    "read_navy_winds",
    "month_splits",
    "AnomalyScaler",
    "GridWindows",
    "anomaly_correlation",
    "per_point_linear_fit",
    "per_point_linear_predict",
]

_HOW_TO_GET = (
    "install Debian's ferret-datasets (apt-get install ferret-datasets) or pass --data DIR with the folder "
    f"holding {NAVY_WINDS_FILE}"
)


@dataclass
class MonthlyFields:
    """``values (T, V, H, W)`` float32 on months ``months (T,)`` (datetime64[M]), grid ``lat (H,)``, ``lon (W,)``."""

    values: np.ndarray
    months: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    variables: tuple[str, ...]


def find_navy_winds(root: str | os.PathLike | None = None) -> Path:
    """``root/monthly_navy_winds.cdf`` (``root`` may also be the file itself), else the Debian location."""
    candidates = [Path(root).expanduser()] if root is not None else list(NAVY_WINDS_DIRS)
    for place in candidates:
        if place.is_file():
            return place
        if (place / NAVY_WINDS_FILE).is_file():
            return place / NAVY_WINDS_FILE
    raise FileNotFoundError(f"{NAVY_WINDS_FILE} not found in {', '.join(map(str, candidates))}; {_HOW_TO_GET}")


def _decode_months(hours: np.ndarray, units: str) -> np.ndarray:
    """COARDS ``hour since YYYY-MM-DD hh:mm:ss`` offsets -> the months they fall in."""
    word, _, origin = units.partition(" since ")
    if word.strip().lower() not in ("hour", "hours"):
        raise ValueError(f"time axis in {units!r}: expected hours since an origin")
    start = np.datetime64(origin.strip().replace(" ", "T"), "s")
    return (start + (np.asarray(hours) * 3600).round().astype("timedelta64[s]")).astype("datetime64[M]")


def read_navy_winds(path: str | os.PathLike) -> MonthlyFields:
    """U/V monthly wind of ``monthly_navy_winds.cdf``; ValueError for missing values or a gap in the months."""
    from scipy.io import netcdf_file

    try:
        with netcdf_file(path, "r", mmap=False) as f:
            var = f.variables
            fields = []
            for name in ("UWND", "VWND"):
                if name not in var:
                    raise ValueError(f"{path} has no {name} variable (has {', '.join(var)})")
                data = np.array(var[name][:], dtype=np.float32)
                missing = getattr(var[name], "missing_value", None)
                if missing is not None and np.isclose(data, missing).any() or not np.isfinite(data).all():
                    raise ValueError(f"{path}: {name} has missing values; the demo needs complete months")
                fields.append(data)
            months = _decode_months(var["TIME"][:], var["TIME"].units.decode())
            lat, lon = np.array(var["FNOCY"][:]), np.array(var["FNOCX"][:])
    except (OSError, TypeError, KeyError) as e:
        raise ValueError(f"cannot read {path} as classic netCDF: {e}") from None
    if (np.diff(months).astype(int) != 1).any():
        raise ValueError(f"{path}: the months are not consecutive ({months[0]} .. {months[-1]}, {len(months)} steps)")
    return MonthlyFields(np.stack(fields, axis=1), months, lat, lon, ("u", "v"))


def month_splits(months: np.ndarray, val_start: str, test_start: str, input_len: int) -> dict[str, np.ndarray]:
    """Target-month indices of train / val / test: targets before ``val_start`` (from ``input_len`` on, so
    every window has its inputs), from ``val_start`` to before ``test_start``, from ``test_start`` on."""
    val, test = np.datetime64(val_start, "M"), np.datetime64(test_start, "M")
    if not months[0] < val < test <= months[-1]:
        raise ValueError(f"need {months[0]} < val_start {val} < test_start {test} <= {months[-1]}")
    index = np.arange(len(months))
    splits = {
        "train": index[(index >= input_len) & (months < val)],
        "val": index[(months >= val) & (months < test)],
        "test": index[months >= test],
    }
    if len(splits["train"]) < 2:
        raise ValueError(f"only {len(splits['train'])} training windows before {val}; move val_start later")
    return splits


class AnomalyScaler:
    """Calendar-month climatology and per-variable scales, all from the months before ``train_end`` only.

    ``clim (12, V, H, W)``, ``anomaly_std (V,)``, ``field_std (V,)``; a calendar month missing from the
    training months is an error (the climatology would be undefined).
    """

    def __init__(self, fields: MonthlyFields, train_end: int) -> None:
        values, calendar = fields.values[:train_end], fields.months[:train_end].astype(int) % 12
        missing = sorted(set(range(12)) - set(calendar.tolist()))
        if missing:
            raise ValueError(f"the training months lack calendar month(s) {[m + 1 for m in missing]}: no climatology")
        self.clim = np.stack([values[calendar == m].mean(0) for m in range(12)]).astype(np.float32)
        anomalies = values - self.clim[calendar]
        self.anomaly_std = anomalies.std(axis=(0, 2, 3)).astype(np.float32)
        self.field_std = values.std(axis=(0, 2, 3)).astype(np.float32)

    def anomalies(self, fields: MonthlyFields) -> np.ndarray:
        """Normalised anomalies ``(T, V, H, W)`` of every month."""
        calendar = fields.months.astype(int) % 12
        return (fields.values - self.clim[calendar]) / self.anomaly_std[None, :, None, None]

    def state_dict(self) -> dict[str, list]:
        return {"anomaly_std": self.anomaly_std.tolist()}


class GridWindows(Dataset):
    """Items ``(x (V*(L+1)+3, H, W), y (V, H, W))`` for the target months ``targets`` (see the module docstring)."""

    def __init__(self, fields: MonthlyFields, scaler: AnomalyScaler, targets: Sequence[int], input_len: int) -> None:
        if min(targets, default=input_len) < input_len:
            raise ValueError(f"target month {min(targets)} has fewer than input_len={input_len} months before it")
        self.anomalies = torch.from_numpy(scaler.anomalies(fields).astype(np.float32))
        calendar = fields.months.astype(int) % 12
        self.clim = torch.from_numpy(scaler.clim[calendar] / scaler.field_std[None, :, None, None])
        lat = np.deg2rad(fields.lat)[:, None] * np.ones(len(fields.lon))[None, :]
        lon = np.deg2rad(fields.lon)[None, :] * np.ones(len(fields.lat))[:, None]
        self.static = torch.from_numpy(np.stack([np.sin(lat), np.cos(lon), np.sin(lon)]).astype(np.float32))
        self.targets = [int(t) for t in targets]
        self.input_len = input_len
        self.months = fields.months

    @property
    def in_chans(self) -> int:
        return self.anomalies.shape[1] * (self.input_len + 1) + 3

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.targets[i]
        past = self.anomalies[t - self.input_len : t].flatten(0, 1)  # (L*V, H, W), oldest month first
        return torch.cat([past, self.clim[t], self.static]), self.anomalies[t]


def anomaly_correlation(forecast: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Uncentred anomaly correlation per sample and variable: ``(N, V)`` from anomalies ``(N, V, H, W)``
    (both relative to the same climatology); a zero forecast anomaly (climatology) scores 0."""
    num = (forecast * observed).sum((-2, -1))
    den = (forecast.pow(2).sum((-2, -1)) * observed.pow(2).sum((-2, -1))).sqrt()
    return torch.where(den > 0, num / den.clamp_min(1e-30), torch.zeros_like(num))


def per_point_linear_fit(x: np.ndarray, y: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    """Least squares at every grid point and target variable: ``x (N, F, H, W)`` features, ``y (N, V, H, W)``
    -> coefficients ``(V, H, W, F + 1)`` (last: intercept). ``ridge`` (relative to the mean feature power)
    only keeps the solve stable."""
    n, f, h, w = x.shape
    design = np.concatenate([x, np.ones((n, 1, h, w), x.dtype)], axis=1).reshape(n, f + 1, h * w)
    design = design.transpose(2, 0, 1).astype(np.float64)  # (P, N, F+1)
    gram = design.transpose(0, 2, 1) @ design  # (P, F+1, F+1)
    gram += ridge * np.trace(gram, axis1=1, axis2=2)[:, None, None] / (f + 1) * np.eye(f + 1)
    target = y.reshape(n, -1, h * w).transpose(2, 0, 1).astype(np.float64)  # (P, N, V)
    coef = np.linalg.solve(gram, design.transpose(0, 2, 1) @ target)  # (P, F+1, V)
    return coef.transpose(2, 0, 1).reshape(-1, h, w, f + 1)


def per_point_linear_predict(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Forecasts ``(N, V, H, W)`` of :func:`per_point_linear_fit` coefficients on features ``x (N, F, H, W)``."""
    return np.einsum("vhwf,nfhw->nvhw", coef[..., :-1], x) + coef[..., -1][None]
