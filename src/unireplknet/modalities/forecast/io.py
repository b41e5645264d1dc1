"""Reading series: a CSV of timestamped columns (pandas) and Corrformer's memory-mapped ``.npy`` files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .transforms import fill_gaps

__all__ = ["load_csv_series", "load_corrformer"]


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
    values = fill_gaps(frame[list(columns)].to_numpy(np.float64))
    return values, frame[time_column].dt.tz_localize(None).to_numpy("datetime64[s]"), list(columns)


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
