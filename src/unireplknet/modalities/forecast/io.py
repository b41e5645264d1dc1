"""Reading series: a CSV of timestamped columns (pandas) and Corrformer's memory-mapped ``.npy`` files."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .transforms import fill_gaps

__all__ = ["GAP_REPAIRS", "load_csv_series", "load_corrformer"]


GAP_REPAIRS = ("error", "ffill", "interpolate")


def _file_row(frame_index: object) -> int:
    return int(frame_index) + 2  # the header is row 1 of the file


def load_csv_series(
    path: str | os.PathLike,
    columns: Sequence[str] | None = None,
    time_column: str | None = None,
    gaps: str = "error",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A CSV of timestamped numeric columns: ``(values (T, N) float32, stamps (T,) datetime64, names)``.

    ``time_column`` defaults to the first column; ``columns`` to every other column that holds numbers
    (columns of text only, e.g. a station name, are left out and named on stderr). Rows are sorted by time.

    The data is checked as it is read; each problem is a ValueError naming the file, the column and the
    row (as numbered in the file, the header being row 1) and the fix: a time column that holds numbers
    (a CSV without one) or cells that are not timestamps, a value cell with text or an infinite value, a
    value column without any value. Gaps (empty or NaN cells) are an error too, unless ``gaps`` names a
    repair, which is then reported on stderr: ``"ffill"`` carries the last value forward (causal; leading
    gaps take the first value), ``"interpolate"`` interpolates linearly in time (and extends the ends).
    """
    import pandas as pd

    if gaps not in GAP_REPAIRS:
        raise ValueError(f"gaps must be one of {', '.join(GAP_REPAIRS)}, got {gaps!r}")
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read CSV {os.fspath(path)!r}: {e}") from None
    if frame.empty:
        raise ValueError(f"{path}: the CSV has no rows")
    time_column = time_column or frame.columns[0]
    if time_column not in frame:
        raise ValueError(f"{path}: no time column {time_column!r}; columns are {', '.join(frame.columns)}")
    if pd.api.types.is_numeric_dtype(frame[time_column]):
        raise ValueError(
            f"{path}: column {time_column!r} holds numbers, not timestamps: the CSV needs a time column "
            "(e.g. 2013-01-01 05:00); add one as the first column or name it with data.time_column"
        )
    stamps = pd.to_datetime(frame[time_column], errors="coerce", utc=True)
    bad = stamps.isna()
    if bad.any():
        row = bad.idxmax()
        raise ValueError(
            f"{path}: column {time_column!r} row {_file_row(row)} holds {frame[time_column][row]!r}, not a "
            "timestamp; fix the cell (e.g. 2013-01-01 05:00) or name the time column with data.time_column"
        )
    numbers = {c: pd.to_numeric(frame[c], errors="coerce") for c in frame.columns if c != time_column}
    if columns is None:
        text_only = [c for c, v in numbers.items() if v.isna().all() and frame[c].notna().any()]
        if text_only:
            print(f"{path}: columns without numbers left out: {', '.join(map(str, text_only))}", file=sys.stderr)
        columns = [c for c in numbers if c not in text_only]
    missing = [c for c in columns if c not in numbers]
    if missing or not columns:
        raise ValueError(
            f"{path}: value columns {missing or '(none)'} not found; columns are {', '.join(frame.columns)}"
        )
    filled = {}
    for c in columns:
        text = numbers[c].isna() & frame[c].notna()
        if text.any():
            row = text.idxmax()
            raise ValueError(
                f"{path}: column {c!r} row {_file_row(row)} holds {frame[c][row]!r}, not a number; fix the cell, "
                "empty it (a gap), or leave the column out with data.columns"
            )
        infinite = np.isinf(numbers[c].to_numpy(np.float64))
        if infinite.any():
            row = frame.index[infinite.argmax()]
            raise ValueError(
                f"{path}: column {c!r} row {_file_row(row)} is {frame[c][row]!r} (infinite); fix or empty the cell"
            )
        empty = numbers[c].isna()
        if empty.all():
            raise ValueError(f"{path}: column {c!r} has no values; fill it or leave it out with data.columns")
        if empty.any():
            if gaps == "error":
                raise ValueError(
                    f"{path}: column {c!r} row {_file_row(empty.idxmax())} is empty ({int(empty.sum())} gaps in "
                    "the column); fill the gaps, or let them be repaired with data.gaps=ffill (last value carried "
                    "forward) or data.gaps=interpolate"
                )
            filled[c] = int(empty.sum())
    order = stamps.sort_values(kind="stable").index
    values = pd.DataFrame({c: numbers[c] for c in columns}).loc[order].reset_index(drop=True)
    if filled:
        values = fill_gaps(values.to_numpy(np.float64)) if gaps == "ffill" else _interpolate(values, stamps[order])
        counts = ", ".join(f"{c} {n}" for c, n in filled.items())
        print(f"{path}: filled {sum(filled.values())} empty cells ({counts}) by data.gaps={gaps}", file=sys.stderr)
    values = np.ascontiguousarray(values, dtype=np.float32)
    return values, stamps[order].dt.tz_localize(None).to_numpy("datetime64[s]"), list(columns)


def _interpolate(values: object, stamps: object) -> np.ndarray:
    """Linear interpolation of gaps in time (the index is the timestamps); the ends take the nearest value."""
    frame = values.set_axis(stamps.to_numpy(), axis=0)
    return frame.interpolate(method="time", limit_direction="both").to_numpy(np.float64)


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
