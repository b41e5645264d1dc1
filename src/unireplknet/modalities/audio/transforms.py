"""Waveform -> normalised log-mel map ``1 x T x F``, and the training augmentations (SpecAugment, noise)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["LOG_FLOOR", "LogMelFrontend", "spec_augment", "add_background_noise"]

LOG_FLOOR = 1e-6  # added to mel power before the log: silence maps to log(LOG_FLOOR)


@dataclass
class LogMelFrontend:
    """Waveform -> normalised log-mel map ``(1, frames, n_mels)``.

    ``mean``/``std`` are the training-set statistics of the log-mel values (see :meth:`fit_stats`).
    """

    sample_rate: int = 16000
    n_mels: int = 128
    window_ms: float = 25.0
    hop_ms: float = 10.0
    frames: int = 100
    mean: float = 0.0
    std: float = 1.0

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.window_ms / 1000)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def clip_samples(self) -> int:
        """Waveform length that yields exactly ``frames`` frames (windows do not run past the ends)."""
        return (self.frames - 1) * self.hop_length + self.win_length

    def crop_or_pad(self, wave: np.ndarray, offset: int = 0) -> np.ndarray:
        """``clip_samples`` samples starting at ``offset`` (clamped), zero-padded at the end if short."""
        n = self.clip_samples
        if len(wave) >= n:
            offset = min(max(offset, 0), len(wave) - n)
            return wave[offset : offset + n]
        return np.pad(wave, (0, n - len(wave)))

    def log_mel(self, wave: np.ndarray) -> np.ndarray:
        """Un-normalised log-mel of a waveform: ``(num_frames, n_mels)`` float32."""
        import librosa

        mel = librosa.feature.melspectrogram(
            y=wave,
            sr=self.sample_rate,
            n_fft=self.win_length,
            win_length=self.win_length,
            hop_length=self.hop_length,
            window="hann",
            center=False,
            power=2.0,
            n_mels=self.n_mels,
        )
        return np.log(mel.T + LOG_FLOOR).astype(np.float32)

    def clip_log_mel(self, wave: np.ndarray) -> np.ndarray:
        """Un-normalised log-mel of the whole clip followed by one window of silence:
        ``(len(wave) // hop_length + 1, n_mels)``, independent of ``frames``. :meth:`crop_frames` of it at
        row 0 equals ``log_mel(crop_or_pad(wave))``, and at row ``k`` ``log_mel(crop_or_pad(wave, k * hop_length))``
        wherever that crop fits in the clip: every frame that a padded crop adds past the end is silent,
        ``log(LOG_FLOOR)`` in every bin (tested)."""
        return self.log_mel(np.pad(wave, (0, self.win_length)))

    def crop_frames(self, feats: np.ndarray, start: int = 0) -> np.ndarray:
        """``frames`` rows of a :meth:`clip_log_mel` map ``(T, n_mels)`` from row ``start`` (clamped), silent
        rows appended where the clip is shorter."""
        start = min(max(start, 0), max(len(feats) - self.frames, 0))
        crop = feats[start : start + self.frames]
        if len(crop) < self.frames:
            silence = np.log(np.float32(LOG_FLOOR))
            crop = np.concatenate([crop, np.full((self.frames - len(crop), feats.shape[1]), silence, np.float32)])
        return crop

    def normalise(self, feats: np.ndarray) -> torch.Tensor:
        """A ``(frames, n_mels)`` log-mel map -> the normalised network input ``(1, frames, n_mels)``."""
        return torch.from_numpy((feats - self.mean) / self.std).unsqueeze(0)

    def __call__(self, wave: np.ndarray, offset: int = 0) -> torch.Tensor:
        """Crop/pad ``wave`` at ``offset`` and return the normalised map ``(1, frames, n_mels)``."""
        return self.normalise(self.log_mel(self.crop_or_pad(wave, offset)))

    def fit_stats(self, waves: Sequence[np.ndarray]) -> None:
        """Set ``mean``/``std`` to the statistics of the (start-cropped) log-mel maps of ``waves``."""
        self.fit_stats_from_maps([self.log_mel(self.crop_or_pad(w)) for w in waves])

    def fit_stats_from_maps(self, maps: Sequence[np.ndarray]) -> None:
        """Set ``mean``/``std`` to the statistics of un-normalised ``(frames, n_mels)`` log-mel maps."""
        if not maps:
            raise ValueError("cannot compute normalisation statistics from an empty training set")
        feats = np.stack(maps)
        self.mean, self.std = float(feats.mean()), float(feats.std()) or 1.0


def spec_augment(
    spec: torch.Tensor,
    freq_mask: int = 24,
    time_mask: int = 20,
    num_masks: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SpecAugment masking of a ``(C, T, F)`` map: ``num_masks`` frequency bands of up to ``freq_mask``
    bins and ``num_masks`` time spans of up to ``time_mask`` frames are set to 0 (the normalised mean).
    Returns a new tensor."""
    spec = spec.clone()
    _, num_frames, num_bins = spec.shape
    for size, length, axis in ((freq_mask, num_bins, 2), (time_mask, num_frames, 1)):
        for _ in range(num_masks if size > 0 else 0):
            width = int(torch.randint(0, min(size, length) + 1, (), generator=generator))
            start = int(torch.randint(0, length - width + 1, (), generator=generator))
            spec.narrow(axis, start, width).zero_()
    return spec


def add_background_noise(
    wave: np.ndarray, noise: np.ndarray, rng: np.random.Generator, max_volume: float = 0.1
) -> np.ndarray:
    """Mix a random segment of ``noise`` (looped if shorter) into ``wave`` at a volume in [0, max_volume]."""
    if len(noise) == 0:
        return wave
    start = int(rng.integers(0, len(noise)))
    segment = np.resize(np.roll(noise, -start), len(wave))
    return (wave + float(rng.uniform(0, max_volume)) * segment).astype(np.float32)
