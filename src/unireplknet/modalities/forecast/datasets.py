"""Forecasting datasets: chronological splits and sliding windows over ``(T, N)`` series."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .transforms import TIME_FEATURES, time_features

__all__ = ["chronological_split", "ForecastWindows"]


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
