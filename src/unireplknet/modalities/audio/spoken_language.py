"""The spoken-language demo: Tux Paint's spoken stamp descriptions (Debian's ``tuxpaint-stamps-default``,
see :mod:`unireplknet.data.sources`), labelled by their language.

Tux Paint names a stamp's sounds after its image: ``<stamp>.ogg`` / ``<stamp>_<lang>.ogg`` say its name,
``<stamp>_desc.ogg`` (English) / ``<stamp>_desc_<lang>.ogg`` describe it; only the descriptions are used.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from .datasets import Item, split_by_shared_group

__all__ = ["DESCRIPTION_NAME", "description_language", "spoken_language_items"]

# <stamp>_desc_<lang>.ogg (lang: ISO 639 code, optionally a region: pt_BR, zh_TW); <stamp>_desc.ogg is English.
DESCRIPTION_NAME = re.compile(r"(?P<stamp>.+)_desc(?:_(?P<lang>[a-z]{2,3}(?:_[A-Za-z]{2})?))?\.ogg")


def description_language(path: str | os.PathLike) -> tuple[str, str] | None:
    """``(stamp, language)`` of a spoken description file, None for any other file.

    >>> description_language("animals/birds/tux_desc_fr.ogg")
    ('tux', 'fr')
    """
    match = DESCRIPTION_NAME.fullmatch(Path(path).name)
    return (match["stamp"], match["lang"] or "en") if match else None


def spoken_language_items(
    root: str | os.PathLike,
    min_clips: int = 300,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    max_train_per_class: int | None = None,
) -> tuple[dict[str, list[Item]], list[str]]:
    """The spoken-language demo: ``({'train','val','test'} -> items, language codes)``.

    Every ``<stamp>_desc_<lang>.ogg`` under ``root`` (Tux Paint's ``stamps`` folder) is a clip labelled
    ``lang``. Stamps share recordings (``frog`` and ``frog-1`` have byte-identical descriptions), so
    stamps are joined into one group when they share a recording, and each recording is kept once (a
    recording filed under two languages is dropped). Languages with fewer than ``min_clips`` distinct
    clips are dropped. The split is by group across all languages (:func:`split_by_shared_group`): a
    stamp's descriptions in every language stay in one split. ``max_train_per_class`` subsamples the
    training clips of each language (a fixed draw of ``seed``); validation and test stay whole.
    What is left out is reported in one line on stderr.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(
            f"Tux Paint stamp folder {os.fspath(root)!r} not found; install it with: "
            "apt-get install tuxpaint-stamps-default (or pass --data STAMPS_FOLDER)"
        )
    files = sorted(p for p in root.rglob("*.ogg") if p.is_file())
    parsed = [(path, description_language(path)) for path in files]
    clips = [(path, *found) for path, found in parsed if found]
    if not clips:
        what = f"{len(files)} .ogg files, none named" if files else "no .ogg files; expected"
        raise ValueError(
            f"{os.fspath(root)!r} holds {what} <stamp>_desc_<lang>.ogg (Tux Paint's spoken stamp descriptions); "
            "point --data at the stamps folder of tuxpaint-stamps-default"
        )
    # one group per set of stamps sharing a recording (union-find over stamps), each recording kept once
    parent: dict[str, str] = {}

    def find(stamp: str) -> str:
        while parent.setdefault(stamp, stamp) != stamp:
            parent[stamp] = parent[parent[stamp]]
            stamp = parent[stamp]
        return stamp

    first: dict[str, tuple[Path, str, str]] = {}
    languages_of: dict[str, set[str]] = {}
    for path, stamp, language in clips:
        stamp = str(path.parent.relative_to(root) / stamp)
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        languages_of.setdefault(digest, set()).add(language)
        if digest in first:
            parent[find(stamp)] = find(first[digest][1])
        else:
            first[digest] = (path, stamp, language)
    unique = [entry for digest, entry in first.items() if len(languages_of[digest]) == 1]
    counts = Counter(language for _, _, language in unique)
    classes = sorted(language for language, n in counts.items() if n >= min_clips)
    if not classes:
        raise ValueError(
            f"no language has {min_clips} clips under {os.fspath(root)!r} (most: "
            f"{', '.join(f'{k} {n}' for k, n in counts.most_common(3))}); lower data.min_clips"
        )
    index = {language: i for i, language in enumerate(classes)}
    kept = [(path, index[language], find(stamp)) for path, stamp, language in unique if language in index]
    splits = split_by_shared_group(
        [(path, label) for path, label, _ in kept], [group for *_, group in kept], val_fraction, test_fraction, seed
    )
    if max_train_per_class is not None:
        rng, keep = np.random.default_rng(seed), set()
        for label in range(len(classes)):
            members = [i for i, (_, y) in enumerate(splits["train"]) if y == label]
            keep.update(members[j] for j in rng.permutation(len(members))[:max_train_per_class])
        splits["train"] = [item for i, item in enumerate(splits["train"]) if i in keep]
    dropped = {k: n for k, n in sorted(counts.items()) if k not in index}
    print(
        f"{os.fspath(root)}: {len(kept)} spoken descriptions in {len(classes)} languages kept "
        f"(train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}); left out: "
        f"{len(files) - len(clips)} other .ogg files (stamp names, misnamed), {len(clips) - len(first)} duplicate recordings, "
        f"{len(first) - len(unique)} recordings filed under two languages, languages under {min_clips} clips "
        f"({', '.join(f'{k} {n}' for k, n in dropped.items()) or 'none'})",
        file=sys.stderr,
    )
    return splits, classes
