"""Decoding: an audio file -> a mono float32 waveform at the wanted rate (soundfile, soxr resampling)."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["AUDIO_EXTENSIONS", "load_audio"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decode an audio file to a mono float32 waveform of shape ``(num_samples,)`` at ``sample_rate``.

    ValueError naming the file when it cannot be decoded, holds no samples, or holds NaN/inf samples.
    """
    import librosa
    import soundfile

    try:
        wave, file_rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as e:
        raise ValueError(f"cannot decode audio file {os.fspath(path)!r} ({e}); use a wav/flac/ogg file") from None
    if wave.size == 0:
        raise ValueError(f"audio file {os.fspath(path)!r} is empty (0 samples); replace it or remove it from the data")
    finite = np.isfinite(wave).all(axis=1)
    if not finite.all():
        raise ValueError(
            f"audio file {os.fspath(path)!r} holds NaN/inf samples ({int((~finite).sum())} of {len(wave)}, the first "
            f"at {int(finite.argmin()) / file_rate:.3f} s); re-export it as integer PCM or remove it from the data"
        )
    wave = wave.mean(axis=1)
    if file_rate != sample_rate:
        wave = librosa.resample(wave, orig_sr=file_rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(wave, dtype=np.float32)
