"""The bundled audio demo: real recordings from Debian's ``sonic-pi-samples`` and ``hydrogen-data`` (see
:mod:`unireplknet.data.sources`), labelled by sound type."""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ...data.sources import SOUND_TYPE_ROOTS
from .datasets import Item, split_by_group
from .io import AUDIO_EXTENSIONS

__all__ = ["SOUND_TYPE_RULES", "SONIC_PI_FAMILIES", "sound_type_label", "sound_type_items"]

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
