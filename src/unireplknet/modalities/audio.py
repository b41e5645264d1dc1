"""Audio as an image: waveform -> normalised log-mel filterbank ``1 x T x F`` for UniRepLKNet (``in_chans=1``).

Recipe (see ``/work/shared/design/modalities.md``): decode with soundfile, mix down to mono, resample to
16 kHz (librosa/soxr); crop or zero-pad the waveform so that a 25 ms Hann window with a 10 ms hop gives
exactly ``frames`` frames; 128-bin mel filterbank (librosa); natural log; normalise with one mean/std
computed over the training set and stored with the run. Training adds background noise (Speech
Commands), random crops, SpecAugment time/frequency masks (here) and mixup (the task's batch transform).

Dataset layouts: Speech Commands V2, "one folder per class", and the bundled sound-type demo built from
Debian's ``sonic-pi-samples`` and ``hydrogen-data`` recordings (:func:`sound_type_items`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "AUDIO_EXTENSIONS",
    "LogMelFrontend",
    "load_audio",
    "spec_augment",
    "add_background_noise",
    "AudioClipDataset",
    "speech_commands_items",
    "folder_items",
    "sound_type_items",
    "split_by_group",
    "SOUND_TYPE_ROOTS",
    "SOUND_TYPE_RULES",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
Item = tuple[Path, int]  # (audio file, class index)


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decode an audio file to a mono float32 waveform of shape ``(num_samples,)`` at ``sample_rate``."""
    import librosa
    import soundfile

    try:
        wave, file_rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as e:
        raise ValueError(f"cannot decode audio file {os.fspath(path)!r} ({e}); use a wav/flac/ogg file") from None
    wave = wave.mean(axis=1)
    if file_rate != sample_rate:
        wave = librosa.resample(wave, orig_sr=file_rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(wave, dtype=np.float32)


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


def _audio_files(folder: Path) -> list[Path]:
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
        for path in _audio_files(root / keyword):
            relative = f"{keyword}/{path.name}"
            split = "val" if relative in lists["val"] else "test" if relative in lists["test"] else "train"
            splits[split].append((path, label))
    noise_dir = root / "_background_noise_"
    noise = _audio_files(noise_dir) if noise_dir.is_dir() else []
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
                for path in _audio_files(folder / name)
            ]
        return splits, classes
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise ValueError(f"{root} has no class folders; expected {root}/<class name>/<audio files>")
    items = [(path, label) for label, name in enumerate(classes) for path in _audio_files(root / name)]
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


# The bundled demo: real recordings from two Debian packages, labelled by sound type.
SOUND_TYPE_ROOTS = ("/usr/share/sonic-pi/samples", "/usr/share/hydrogen/data/drumkits")
# Ordered (class, pattern) rules matched against the lower-cased file stem; the first match wins.
SOUND_TYPE_RULES: tuple[tuple[str, str], ...] = (
    ("hihat", r"hi-?hat|hh|(^|[^a-z])hat|chh|ohh"),
    ("cymbal", r"crash|ride|splash|china|cymbal|^cc_|^rc_|^cra_|^rd2?_"),
    ("kick", r"kick|^bd|bassdrum|drum_bass"),
    ("snare", r"snare|^sn|^sd_|rimshot"),
    ("tom", r"tom|^ft_|^t[12]_|^tm2?_"),
    ("clap", r"clap"),
    ("cowbell", r"cowbell"),
)
# Sonic Pi sample families (file-name prefix) used as classes when no instrument rule matches.
SONIC_PI_FAMILIES = ("ambi", "bass", "elec", "glitch", "guit", "loop", "misc", "perc", "tabla", "vinyl")
_GROUP_SUFFIX = re.compile(r"([-_ ]?(hard|hardest|med|soft|softest|\d+))+$")


def sound_type_label(path: Path) -> str | None:
    """The sound-type class of a demo file, or None (unlabelled: dropped)."""
    stem = path.stem.lower()
    for name, pattern in SOUND_TYPE_RULES:
        if re.search(pattern, stem):
            return name
    family = stem.split("_")[0]
    return family if "sonic-pi" in str(path) and family in SONIC_PI_FAMILIES else None


def sound_type_items(
    roots: Sequence[str | os.PathLike] = SOUND_TYPE_ROOTS,
    min_clips: int = 8,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> tuple[dict[str, list[Item]], list[str]]:
    """The sound-type demo: ``({'train','val','test'} -> items, class names)``.

    Files under ``roots`` are labelled by :data:`SOUND_TYPE_RULES` (drum-kit instruments, from both
    packages), else by their Sonic Pi family prefix. Byte-identical files (kits ship shared samples) are
    kept once; classes with fewer than ``min_clips`` files are dropped. The split is per class and by
    group -- a file's directory plus its stem without velocity/take suffixes, so the ``-Soft``/``-Hard``
    layers of one hit never straddle train and test.
    """
    seen: set[str] = set()
    labelled: list[tuple[Path, str]] = []
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.suffix.lower() not in AUDIO_EXTENSIONS or not path.is_file():
                continue
            digest = hashlib.sha1(path.read_bytes()).hexdigest()
            label = sound_type_label(path)
            if label is None or digest in seen:
                continue
            seen.add(digest)
            labelled.append((path, label))
    if not labelled:
        raise ValueError(
            f"no demo recordings under {', '.join(map(str, roots))}; install them with: "
            "apt-get install sonic-pi-samples hydrogen-data"
        )
    counts = Counter(label for _, label in labelled)
    classes = sorted(name for name, n in counts.items() if n >= min_clips)
    index = {name: i for i, name in enumerate(classes)}
    kept = [(path, index[label]) for path, label in labelled if label in index]
    groups = [f"{path.parent}/{_GROUP_SUFFIX.sub('', path.stem.lower())}" for path, _ in kept]
    return split_by_group(kept, groups, val_fraction, test_fraction, seed), classes
