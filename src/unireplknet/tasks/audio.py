"""``--task audio``: sound classification with the unchanged backbone on log-mel maps (``in_chans=1``).

Every clip becomes a normalised ``1 x frames x n_mels`` log-mel map (:mod:`unireplknet.modalities.audio`);
the model is a plain UniRepLKNet with one input channel. Datasets (``data.dataset``):

* ``speech_commands``: Speech Commands V2 under ``data.root`` (official validation/test lists,
  ``_background_noise_`` mixed into training clips with probability ``aug.noise_prob``);
* ``folders``: "folder per class" under ``data.root`` (pre-split ``train/``, ``val/`` folders or a
  seeded split);
* ``sound_types``: the bundled demo of real recordings from Debian's ``sonic-pi-samples`` and
  ``hydrogen-data`` (see :func:`~unireplknet.modalities.audio.demo.sound_type_items` for the classes);
* ``spoken_language``: the bundled demo of spoken-language identification on Tux Paint's spoken stamp
  descriptions from Debian's ``tuxpaint-stamps-default``, split by stamp
  (:func:`~unireplknet.modalities.audio.spoken_language.spoken_language_items`).

``data.eval_split`` picks the split evaluated during training (``val``) or by ``eval`` (``test``).
The log-mel mean/std are computed on the training split and travel with the checkpoint
(:meth:`AudioTask.state_dict`). Training adds random crops and the ``aug`` section: background noise,
SpecAugment, mixup and label smoothing. ``data.mel_cache`` decodes each file once into the cache folder
(:class:`~unireplknet.modalities.audio.cache.LogMelCache`; many short compressed clips).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import librosa  # noqa: F401  (fail at task import with the extra's install hint, not mid-run)
import numpy as np
import soundfile  # noqa: F401
import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import (
    DataConfig,
    Fraction,
    ModelConfig,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    RunConfig,
    section,
)
from ..data.sources import TUXPAINT_STAMPS_DIR, debian_file, default_cache_dir
from ..modalities import audio as A
from .base import register_task, require_data
from .classification import ClassificationTask, build_classifier

__all__ = ["AudioTask", "AudioConfig"]

STATS_CLIPS = 2000  # enough clips for the log-mel mean/std of a large dataset


@dataclass
class AudioData(DataConfig):
    dataset: Literal["speech_commands", "folders", "sound_types", "spoken_language"] = "sound_types"
    eval_split: Literal["val", "test"] = "val"
    seed: NonNegativeInt = 0  # split seed (folders without train/val subfolders, sound_types, spoken_language)
    val_fraction: Fraction = 0.15
    test_fraction: Fraction = 0.15
    min_clips: PositiveInt = 8  # sound_types, spoken_language: classes with fewer (distinct) files are dropped
    max_train_per_class: PositiveInt | None = None  # spoken_language: subsample training clips (null: all)
    sample_rate: PositiveInt = 16000
    n_mels: PositiveInt = 128
    window_ms: PositiveFloat = 25.0
    hop_ms: PositiveFloat = 10.0
    frames: PositiveInt = 100  # T: 100 frames = 1 s
    cache: bool = True  # keep decoded waveforms in memory (turn off for large datasets)
    mel_cache: bool = False  # decode each file once into log-mel maps under the cache folder (no noise mixing)


@dataclass
class SpecAugment:
    freq_mask: NonNegativeInt = 24  # widest masked band of mel bins
    time_mask: NonNegativeInt = 20  # longest masked span of frames
    num_masks: NonNegativeInt = 2  # of each kind; 0 disables


@dataclass
class AudioAug:
    noise_prob: Probability = 0.8  # speech_commands: chance of mixing in background noise
    spec_augment: SpecAugment | None = field(default_factory=SpecAugment)  # null: no SpecAugment
    mixup: NonNegativeFloat = 0.5  # mixup alpha (0 disables)
    label_smoothing: Fraction = 0.1


@dataclass
class AudioConfig(RunConfig):
    task: str = "audio"
    model: ModelConfig = section(ModelConfig, drop_path_rate=0.1)
    data: AudioData = field(default_factory=AudioData)
    aug: AudioAug = field(default_factory=AudioAug)


@register_task
class AudioTask(ClassificationTask):
    """Audio classification from log-mel maps (see the module docstring for the data options)."""

    name = "audio"
    config_schema = AudioConfig

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.data = cfg["data"]
        self._test_items: list[A.Item] = []  # set by build_datasets while validation picks the best checkpoint
        d = self.data
        self.frontend = A.LogMelFrontend(
            sample_rate=d["sample_rate"],
            n_mels=d["n_mels"],
            window_ms=d["window_ms"],
            hop_ms=d["hop_ms"],
            frames=d["frames"],
        )
        self.stats_fitted = False
        self.log_mels = A.LogMelCache(self.frontend, default_cache_dir() / "log_mel") if d["mel_cache"] else None

    # -- data -----------------------------------------------------------------------------------
    def splits(self) -> tuple[dict[str, list[A.Item]], list[str], list[Path]]:
        """``({'train','val','test'} -> (file, label) items, class names, noise files)``."""
        d = self.data
        kind = d["dataset"]
        if kind == "sound_types":
            roots = [d["root"]] if d.get("root") else A.SOUND_TYPE_ROOTS
            splits, classes = A.sound_type_items(
                roots, d["min_clips"], d["val_fraction"], d["test_fraction"], d["seed"]
            )
            return splits, classes, []
        if kind == "spoken_language":
            root = Path(d["root"]) if d.get("root") else debian_file(TUXPAINT_STAMPS_DIR, "tuxpaint-stamps-default")
            splits, classes = A.spoken_language_items(
                root, d["min_clips"], d["val_fraction"], d["test_fraction"], d["seed"], d["max_train_per_class"]
            )
            return splits, classes, []
        require_data(d, "root", what="the dataset folder")
        if kind == "speech_commands":
            return A.speech_commands_items(d["root"])
        return (*A.folder_items(d["root"], d["val_fraction"], d["test_fraction"], d["seed"]), [])

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        d, aug = self.data, self.cfg["aug"]
        splits, classes, noise_files = self.splits()
        self.set_classes(classes)
        self._test_items = splits["test"] if d["eval_split"] == "val" else []
        noise = [A.load_audio(p, self.frontend.sample_rate) for p in noise_files]
        if noise and self.log_mels is not None and aug["noise_prob"] > 0:
            raise ValueError(
                "aug.noise_prob mixes background noise into waveforms, which data.mel_cache=true does not keep; "
                "set data.mel_cache=false or aug.noise_prob=0"
            )
        train = A.AudioClipDataset(
            splits["train"],
            self.frontend,
            train=True,
            noise=noise if aug["noise_prob"] > 0 else (),
            noise_prob=aug["noise_prob"],
            spec_augment_args=aug["spec_augment"],
            cache=d["cache"],
            log_mels=self.log_mels,
        )
        if not self.stats_fitted:  # on at most STATS_CLIPS training clips (a fixed random subset)
            rng = np.random.default_rng(d["seed"])
            subset = rng.permutation(len(train))[:STATS_CLIPS]
            self.frontend.fit_stats_from_maps([train.eval_map(int(i)) for i in sorted(subset)])
            self.stats_fitted = True
        return train, self.eval_dataset(splits[d["eval_split"]])

    def eval_dataset(self, items: list[A.Item]) -> A.AudioClipDataset:
        """Evaluation clips (the start of each file) of ``items``."""
        return A.AudioClipDataset(items, self.frontend, train=False, cache=self.data["cache"], log_mels=self.log_mels)

    def build_test_dataset(self) -> Dataset | None:
        """The test split for the end-of-run report while validation picks ``best.safetensors``."""
        if not self._test_items:
            return None
        return self.eval_dataset(self._test_items)

    def batch_transform(self) -> Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]] | None:
        alpha, smoothing = self.cfg["aug"]["mixup"], self.label_smoothing
        if not alpha:
            return None
        from timm.data import Mixup
        from timm.data.mixup import mixup_target

        mixup = Mixup(mixup_alpha=alpha, cutmix_alpha=0.0, label_smoothing=smoothing, num_classes=self.num_classes)

        def mix(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if len(x) % 2:  # timm mixes pairs (i, B-1-i); a lone odd sample keeps its own (smoothed) label
                return x, mixup_target(y, self.num_classes, 1.0, smoothing)
            return mixup(x, y)

        return mix

    # -- model ----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return build_classifier(self.cfg, self.num_classes, in_chans=1)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "mean": self.frontend.mean, "std": self.frontend.std}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.frontend.mean, self.frontend.std = float(state["mean"]), float(state["std"])
        self.stats_fitted = True

    # -- outputs --------------------------------------------------------------------------------
    def predict_input(self, path: Path) -> tuple[torch.Tensor, None]:
        """An audio file's first ``frames`` frames (as in evaluation) as a batch ``(1, 1, frames, n_mels)``."""
        return self.frontend(A.load_audio(path, self.frontend.sample_rate)).unsqueeze(0), None
