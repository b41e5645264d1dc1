"""Audio datasets: clips as log-mel maps, the Speech Commands V2 and "folder per class" layouts, group splits."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .io import AUDIO_EXTENSIONS, load_audio
from .transforms import LogMelFrontend, add_background_noise, spec_augment

__all__ = ["Item", "AudioClipDataset", "audio_files", "speech_commands_items", "folder_items", "split_by_group"]

Item = tuple[Path, int]  # (audio file, class index)


class AudioClipDataset(Dataset):
    """Items ``(map (1, frames, n_mels), class index)`` from a list of ``(file, class index)``.

    Training: random crop, optional background noise (probability ``noise_prob``) and SpecAugment.
    Evaluation: the clip is taken from the start of the file (the onset of percussive sounds).
    ``cache`` keeps decoded 16 kHz waveforms in memory (small datasets).
    """

    def __init__(
        self,
        items: Sequence[Item],
        frontend: LogMelFrontend,
        train: bool,
        noise: Sequence[np.ndarray] = (),
        noise_prob: float = 0.0,
        spec_augment_args: dict | None = None,
        cache: bool = False,
    ) -> None:
        if not items:
            raise ValueError("audio dataset is empty: no audio files were found for this split")
        self.items = list(items)
        self.frontend = frontend
        self.train = train
        self.noise = list(noise)
        self.noise_prob = noise_prob
        self.spec_augment_args = spec_augment_args
        self._cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.items]

    def waveform(self, index: int) -> np.ndarray:
        if self._cache is None:
            return load_audio(self.items[index][0], self.frontend.sample_rate)
        if index not in self._cache:
            self._cache[index] = load_audio(self.items[index][0], self.frontend.sample_rate)
        return self._cache[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        wave = self.waveform(index)
        if not self.train:
            return self.frontend(wave), self.items[index][1]
        # torch's RNG is seeded per DataLoader worker, so augmentations differ across workers
        rng = np.random.default_rng(int(torch.randint(0, 2**31, ())))
        offset = int(rng.integers(0, max(len(wave) - self.frontend.clip_samples, 0) + 1))
        wave = self.frontend.crop_or_pad(wave, offset)
        if self.noise and rng.uniform() < self.noise_prob:
            wave = add_background_noise(wave, self.noise[int(rng.integers(len(self.noise)))], rng)
        spec = self.frontend(wave)
        if self.spec_augment_args:
            spec = spec_augment(spec, **self.spec_augment_args)
        return spec, self.items[index][1]


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def speech_commands_items(root: str | os.PathLike) -> tuple[dict[str, list[Item]], list[str], list[Path]]:
    """The Speech Commands V2 layout: ``({'train','val','test'} -> items, class names, noise files)``.

    ``root`` holds one folder per keyword, ``validation_list.txt`` and ``testing_list.txt`` (paths
    relative to ``root``), and ``_background_noise_`` (long recordings used as training noise).
    """
    root = Path(root)
    lists = {}
    for split, name in (("val", "validation_list.txt"), ("test", "testing_list.txt")):
        if not (root / name).is_file():
            raise ValueError(f"{root} is not a Speech Commands folder: {name} is missing")
        lists[split] = {line.strip() for line in (root / name).read_text().splitlines() if line.strip()}
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    if not classes:
        raise ValueError(f"{root} has no keyword folders")
    splits: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    for label, keyword in enumerate(classes):
        for path in audio_files(root / keyword):
            relative = f"{keyword}/{path.name}"
            split = "val" if relative in lists["val"] else "test" if relative in lists["test"] else "train"
            splits[split].append((path, label))
    noise_dir = root / "_background_noise_"
    noise = audio_files(noise_dir) if noise_dir.is_dir() else []
    return splits, classes, noise


def folder_items(
    root: str | os.PathLike, val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0
) -> tuple[dict[str, list[Item]], list[str]]:
    """ "One folder per class": ``root/<class>/<file>``, or pre-split ``root/{train,val[,test]}/<class>/<file>``.

    Without pre-split folders the files are split per class with :func:`split_by_group` (fixed ``seed``).
    """
    root = Path(root)
    if (root / "train").is_dir() and (root / "val").is_dir():
        classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        splits = {}
        for split in ("train", "val", "test"):
            folder = root / split
            splits[split] = [
                (path, label)
                for label, name in enumerate(classes)
                if (folder / name).is_dir()
                for path in audio_files(folder / name)
            ]
        return splits, classes
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise ValueError(f"{root} has no class folders; expected {root}/<class name>/<audio files>")
    items = [(path, label) for label, name in enumerate(classes) for path in audio_files(root / name)]
    return split_by_group(items, [str(p) for p, _ in items], val_fraction, test_fraction, seed), classes


def split_by_group(
    items: Sequence[Item], groups: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[Item]]:
    """Split per class, keeping all files of a group (e.g. velocity layers of one drum hit) together.

    Groups of each class are shuffled with ``seed`` and assigned to test, then val, until each holds
    its fraction of the class's files (at least one group each when the class has three or more groups).
    """
    rng = np.random.default_rng(seed)
    by_class: dict[int, dict[str, list[Item]]] = defaultdict(lambda: defaultdict(list))
    for item, group in zip(items, groups, strict=True):
        by_class[item[1]][group].append(item)
    splits: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    for label in sorted(by_class):
        class_groups = [by_class[label][g] for g in sorted(by_class[label])]
        rng.shuffle(class_groups)
        total = sum(len(g) for g in class_groups)
        for split, fraction in (("test", test_fraction), ("val", val_fraction)):
            if fraction <= 0:
                continue
            taken = 0
            while len(class_groups) > 1 and (taken == 0 or taken + len(class_groups[0]) / 2 <= fraction * total):
                group = class_groups.pop(0)
                splits[split].extend(group)
                taken += len(group)
        for group in class_groups:
            splits["train"].extend(group)
    return splits
