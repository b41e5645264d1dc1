"""Audio datasets: clips as log-mel maps, the Speech Commands V2 and "folder per class" layouts, group splits."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import LogMelCache
from .io import AUDIO_EXTENSIONS, load_audio
from .transforms import LogMelFrontend, add_background_noise, spec_augment

__all__ = [
    "Item",
    "AudioClipDataset",
    "audio_files",
    "speech_commands_items",
    "folder_items",
    "split_by_group",
    "split_by_shared_group",
]

Item = tuple[Path, int]  # (audio file, class index)


class AudioClipDataset(Dataset):
    """Items ``(map (1, frames, n_mels), class index)`` from a list of ``(file, class index)``.

    Training: random crop, optional background noise (probability ``noise_prob``) and SpecAugment.
    Evaluation: the clip is taken from the start of the file (the onset of percussive sounds).
    ``cache`` keeps decoded clips in memory (small datasets): 16 kHz waveforms, or with ``log_mels``
    (a :class:`LogMelCache`, decoded clips on disk) their whole-clip log-mel maps, cropped in frames
    (the same maps as the waveform path; background noise needs waveforms and is refused then).
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
        log_mels: LogMelCache | None = None,
    ) -> None:
        if not items:
            raise ValueError("audio dataset is empty: no audio files were found for this split")
        if log_mels is not None and noise:
            raise ValueError("background noise is mixed into waveforms: it cannot be used with cached log-mel maps")
        self.items = list(items)
        self.frontend = frontend
        self.train = train
        self.noise = list(noise)
        self.noise_prob = noise_prob
        self.spec_augment_args = spec_augment_args
        self.log_mels = log_mels
        self._cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.items]

    def _decoded(self, index: int) -> np.ndarray:
        """The waveform, or with ``log_mels`` the whole-clip log-mel map, of item ``index``."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        path = self.items[index][0]
        decoded = load_audio(path, self.frontend.sample_rate) if self.log_mels is None else self.log_mels(path)
        if self._cache is not None:
            self._cache[index] = decoded
        return decoded

    def waveform(self, index: int) -> np.ndarray:
        """The 16 kHz waveform of item ``index`` (``(num_samples,)``; decoded even with ``log_mels``)."""
        if self.log_mels is not None:
            return load_audio(self.items[index][0], self.frontend.sample_rate)
        return self._decoded(index)

    def eval_map(self, index: int) -> np.ndarray:
        """The un-normalised ``(frames, n_mels)`` map that evaluation sees: the clip's start."""
        if self.log_mels is not None:
            return self.frontend.crop_frames(self._decoded(index))
        return self.frontend.log_mel(self.frontend.crop_or_pad(self._decoded(index)))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        label = self.items[index][1]
        if not self.train:
            return self.frontend.normalise(self.eval_map(index)), label
        # torch's RNG is seeded per DataLoader worker, so augmentations differ across workers
        rng = np.random.default_rng(int(torch.randint(0, 2**31, ())))
        decoded = self._decoded(index)
        if self.log_mels is not None:
            start = int(rng.integers(0, max(len(decoded) - self.frontend.frames, 0) + 1))
            spec = self.frontend.normalise(self.frontend.crop_frames(decoded, start))
        else:
            offset = int(rng.integers(0, max(len(decoded) - self.frontend.clip_samples, 0) + 1))
            wave = self.frontend.crop_or_pad(decoded, offset)
            if self.noise and rng.uniform() < self.noise_prob:
                wave = add_background_noise(wave, self.noise[int(rng.integers(len(self.noise)))], rng)
            spec = self.frontend(wave)
        if self.spec_augment_args:
            spec = spec_augment(spec, **self.spec_augment_args)
        return spec, label


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


def split_by_shared_group(
    items: Sequence[Item], groups: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[Item]]:
    """Split whole groups across classes: every item of a group, whatever its class, lands in one split
    (e.g. all languages of one Tux Paint stamp's description).

    The distinct groups are shuffled with ``seed`` and assigned to test, then val, while each holds less
    than its fraction of all items; the rest is training. Items keep their order within a split.
    """
    rng = np.random.default_rng(seed)
    sizes: dict[str, int] = defaultdict(int)
    for group in groups:
        sizes[group] += 1
    names = sorted(sizes)
    order = [names[i] for i in rng.permutation(len(names))]
    assigned: dict[str, str] = {}
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        taken = 0
        while order and taken < fraction * len(items):
            group = order.pop(0)
            assigned[group] = split
            taken += sizes[group]
    splits: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    for item, group in zip(items, groups, strict=True):
        splits[assigned.get(group, "train")].append(item)
    return splits
