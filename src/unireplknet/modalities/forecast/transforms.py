"""Time-series preprocessing: calendar features of timestamps and causal gap filling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["TIME_FEATURES", "NUM_TIME_FEATURES", "SEASON_FEATURES", "time_features", "fill_gaps"]

TIME_FEATURES = ("hour", "weekday", "day_of_month", "day_of_year")  # the default set
NUM_TIME_FEATURES = len(TIME_FEATURES)
# the season as a point on a circle (no jump from 31 December to 1 January): for daily data over many years
SEASON_FEATURES = ("season_sin", "season_cos")


def time_features(stamps: np.ndarray, names: Sequence[str] = TIME_FEATURES) -> np.ndarray:
    """Calendar features in [-0.5, 0.5] of ``datetime64`` stamps ``(T,)``: ``(T, len(names))`` float32,
    one column per name of :data:`TIME_FEATURES` (hour of day, day of week, day of month, day of year) or
    :data:`SEASON_FEATURES` (sine and cosine of the day of the year, times 0.5).

    With a single year of data, the ``day_of_year`` of later splits lies outside its training range.
    """
    unknown = [name for name in names if name not in TIME_FEATURES + SEASON_FEATURES]
    if unknown:
        raise ValueError(f"unknown time features {unknown}; choose from {', '.join(TIME_FEATURES + SEASON_FEATURES)}")
    stamps = np.asarray(stamps, dtype="datetime64[s]")
    days = stamps.astype("datetime64[D]")
    hour = (stamps - days).astype("timedelta64[h]").astype(np.int64)
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    day_of_month = (days - days.astype("datetime64[M]")).astype(np.int64)
    day_of_year = (days - days.astype("datetime64[Y]")).astype(np.int64)
    scaled = (hour / 23.0, weekday / 6.0, day_of_month / 30.0, day_of_year / 365.0)
    columns = {name: values - 0.5 for name, values in zip(TIME_FEATURES, scaled, strict=True)}
    angle = 2 * np.pi * day_of_year / 365.25
    columns |= {"season_sin": 0.5 * np.sin(angle), "season_cos": 0.5 * np.cos(angle)}
    feats = np.stack([columns[name] for name in names], axis=1) if names else np.zeros((len(stamps), 0))
    return feats.astype(np.float32)


def fill_gaps(values: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs along time (causal: a gap never sees later values); leading NaNs are back-filled."""
    import pandas as pd

    return pd.DataFrame(values).ffill().bfill().to_numpy(np.float32, copy=True)
