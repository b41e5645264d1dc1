"""Waveform -> normalised log-mel map ``1 x T x F``, and the training augmentations (SpecAugment, noise)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["LogMelFrontend", "spec_augment", "add_background_noise"]


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
        return np.log(mel.T + 1e-6).astype(np.float32)

    def __call__(self, wave: np.ndarray, offset: int = 0) -> torch.Tensor:
        """Crop/pad ``wave`` at ``offset`` and return the normalised map ``(1, frames, n_mels)``."""
        feats = self.log_mel(self.crop_or_pad(wave, offset))
        return torch.from_numpy((feats - self.mean) / self.std).unsqueeze(0)

    def fit_stats(self, waves: Sequence[np.ndarray]) -> None:
        """Set ``mean``/``std`` to the statistics of the (start-cropped) log-mel maps of ``waves``."""
        if not waves:
            raise ValueError("cannot compute normalisation statistics from an empty training set")
        feats = np.stack([self.log_mel(self.crop_or_pad(w)) for w in waves])
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
