"""Decoded clips kept on disk: whole-clip log-mel maps, one ``.npy`` per file content and front-end setting.

Decoding and resampling a compressed clip (Ogg/Vorbis at 44.1 kHz -> 16 kHz) costs several times more
than a training step of a small network on its map, so datasets of many short clips decode each file
once: :class:`LogMelCache` stores :meth:`LogMelFrontend.clip_log_mel` of it under a folder named by the
front-end's settings, keyed by the SHA-1 of the file's bytes (an edited file is decoded again, a copy
under another name is not). Writes are atomic, so an interrupted run leaves no partial entry.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from ...files import atomic_write_bytes
from .io import load_audio
from .transforms import LogMelFrontend

__all__ = ["LogMelCache"]


class LogMelCache:
    """``cache(path)`` -> the un-normalised whole-clip log-mel ``(T, n_mels)`` float32 of an audio file
    (:meth:`LogMelFrontend.clip_log_mel`: any ``frames`` crops it), decoded once and then read from ``folder``."""

    def __init__(self, frontend: LogMelFrontend, folder: str | os.PathLike) -> None:
        self.frontend = frontend
        f = frontend
        setting = f"sr{f.sample_rate}-mels{f.n_mels}-win{f.win_length}-hop{f.hop_length}"
        self.folder = Path(folder) / setting

    def entry(self, path: str | os.PathLike) -> Path:
        """The cache file of ``path``'s current content."""
        return self.folder / f"{hashlib.sha1(Path(path).read_bytes()).hexdigest()}.npy"

    def __call__(self, path: str | os.PathLike) -> np.ndarray:
        entry = self.entry(path)
        if entry.is_file():
            return np.load(entry)
        feats = self.frontend.clip_log_mel(load_audio(path, self.frontend.sample_rate))
        buffer = io.BytesIO()
        np.save(buffer, feats)
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(entry, buffer.getvalue())
        return feats
