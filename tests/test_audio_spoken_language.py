"""The spoken-language demo (``data.dataset: spoken_language``) on generated Ogg/Vorbis files in Tux Paint's
stamp layout, and the log-mel disk cache it uses."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("librosa")
soundfile = pytest.importorskip("soundfile")

from unireplknet.config import resolve_config  # noqa: E402
from unireplknet.data.sources import TUXPAINT_STAMPS_DIR  # noqa: E402
from unireplknet.modalities.audio import (  # noqa: E402
    LogMelCache,
    LogMelFrontend,
    description_language,
    load_audio,
    split_by_shared_group,
    spoken_language_items,
)
from unireplknet.tasks import get_task  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

LANGUAGES = {"fr": 300.0, "ru": 700.0, "es": 1500.0}  # a "language" is a tone here
STAMPS = [f"{folder}/{name}{i}" for folder in ("animals/birds", "food/fruit") for name in ("a", "b") for i in range(5)]


def clip(path: Path, freq: float, seconds: float = 0.35, rate: int = 44100) -> Path:
    """A stereo Ogg/Vorbis tone, as Tux Paint's descriptions are (44.1 kHz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    soundfile.write(path, np.stack([wave, wave], 1), rate, format="OGG", subtype="VORBIS")
    return path


@pytest.fixture(scope="module")
def stamps(tmp_path_factory) -> Path:
    """20 stamps described in fr/ru/es, a rare language (lt), name sounds, and a stamp sharing recordings."""
    root = tmp_path_factory.mktemp("stamps")
    for s, stamp in enumerate(STAMPS):
        for language, freq in LANGUAGES.items():
            clip(root / f"{stamp}_desc_{language}.ogg", freq * (1 + 0.01 * s), seconds=0.2 + 0.03 * s)
        clip(root / f"{stamp}_fr.ogg", 200.0)  # the stamp's spoken name, not a description
    clip(root / "animals/birds/a0_desc_lt.ogg", 900.0)
    clip(root / "animals/birds/a0_desc.ogg", 950.0)  # English
    for language in LANGUAGES:  # a0-photo shares a0's recordings: one group, each recording kept once
        shutil.copy(
            root / f"animals/birds/a0_desc_{language}.ogg", root / f"animals/birds/a0-photo_desc_{language}.ogg"
        )
    return root


def test_description_language():
    assert description_language("animals/birds/tux_desc_fr.ogg") == ("tux", "fr")
    assert description_language("x/heron_greatblue_desc_zh_TW.ogg") == ("heron_greatblue", "zh_TW")
    assert description_language("tux_desc.ogg") == ("tux", "en")
    for other in ("tux.ogg", "tux_fr.ogg", "tux_desc_fr.wav", "tux_desc_da.ogg.ogg", "tux_desc_f.ogg"):
        assert description_language(other) is None, other


def test_split_by_stamp_languages_and_left_out(stamps, capsys):
    splits, classes = spoken_language_items(stamps, min_clips=5, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert classes == ["es", "fr", "ru"]  # lt (1 clip) and en (1) are under min_clips
    items = [item for split in splits.values() for item in split]
    assert len(items) == len(STAMPS) * 3 and len({p for p, _ in items}) == len(items)  # copies kept once
    split_of_stamp: dict[str, set[str]] = {}
    for split, members in splits.items():
        for path, label in members:
            stamp, language = description_language(path)
            assert classes[label] == language
            split_of_stamp.setdefault(f"{path.parent.relative_to(stamps)}/{stamp}", set()).add(split)
    assert all(len(s) == 1 for s in split_of_stamp.values())  # no stamp in two splits
    assert all(len(splits[s]) == 12 for s in ("val", "test"))  # 4 stamps x 3 languages each
    shared = [(s, p) for s, members in splits.items() for p, _ in members if p.match("birds/a0*_desc_*.ogg")]
    assert len(shared) == 3 and len({s for s, _ in shared}) == 1  # a0 or a0-photo once per language, one split
    err = capsys.readouterr().err
    assert "60 spoken descriptions in 3 languages" in err and "20 other .ogg files" in err
    assert "3 duplicate recordings" in err and "en 1, lt 1" in err
    again, _ = spoken_language_items(stamps, min_clips=5, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert again == splits  # deterministic
    other, _ = spoken_language_items(stamps, min_clips=5, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert other["test"] != splits["test"]
    capped, _ = spoken_language_items(stamps, 5, 0.2, 0.2, 0, max_train_per_class=3)
    assert sorted(label for _, label in capped["train"]) == [0] * 3 + [1] * 3 + [2] * 3
    assert set(capped["train"]) <= set(splits["train"]) and capped["test"] == splits["test"]


def test_split_by_shared_group_fractions():
    items = [(Path(f"{g}-{k}.ogg"), k) for g in range(10) for k in range(3)]
    splits = split_by_shared_group(items, [p.name.split("-")[0] for p, _ in items], 0.2, 0.1, seed=3)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [21, 6, 3]
    groups = {s: {p.name.split("-")[0] for p, _ in members} for s, members in splits.items()}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])


def test_bad_layouts(tmp_path):
    with pytest.raises(ValueError, match="not found; install it with: apt-get install tuxpaint-stamps-default"):
        spoken_language_items(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"holds no \.ogg files; expected <stamp>_desc_<lang>\.ogg"):
        spoken_language_items(tmp_path)
    clip(tmp_path / "animals/cat.ogg", 300.0)
    with pytest.raises(ValueError, match=r"holds 1 \.ogg files, none named <stamp>_desc_<lang>\.ogg"):
        spoken_language_items(tmp_path)
    clip(tmp_path / "animals/cat_desc_fr.ogg", 300.0)
    with pytest.raises(ValueError, match=r"no language has 300 clips .* \(most: fr 1\); lower data.min_clips"):
        spoken_language_items(tmp_path)


def test_cached_log_mels_match_the_waveform_path(tmp_path):
    frontend = LogMelFrontend(n_mels=32, frames=40)
    rng = np.random.default_rng(0)
    for seconds in (0.1, 0.4, 0.9):  # shorter and longer than the 40-frame crop
        wave = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
        feats = frontend.clip_log_mel(wave)
        np.testing.assert_allclose(frontend.crop_frames(feats), frontend.log_mel(frontend.crop_or_pad(wave)), atol=1e-5)
        if len(wave) >= frontend.clip_samples + 5 * frontend.hop_length:
            np.testing.assert_allclose(
                frontend.crop_frames(feats, 5), frontend.log_mel(frontend.crop_or_pad(wave, 5 * 160)), atol=1e-5
            )
    path = clip(tmp_path / "x_desc_fr.ogg", 440.0)
    cache = LogMelCache(frontend, tmp_path / "cache")
    first = cache(path)
    entry = cache.entry(path)
    assert entry.is_file() and entry.parent.name == "sr16000-mels32-win400-hop160"
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temporary file left
    np.testing.assert_array_equal(cache(path), first)
    np.testing.assert_allclose(first, frontend.clip_log_mel(load_audio(path)), atol=1e-6)
    clip(path, 880.0)  # new content: a new entry
    assert cache.entry(path) != entry and not np.allclose(cache(path)[:10], first[:10])


def test_task_trains_on_cached_log_mels(stamps, tmp_path, monkeypatch, assert_loss_decreases):
    monkeypatch.setenv("UNIREPLKNET_CACHE", str(tmp_path))
    task_cls = get_task("audio")
    user = {
        "model": {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [7], [7], [3]]},
        "data": {
            "dataset": "spoken_language",
            "root": str(stamps),
            "min_clips": 5,
            "val_fraction": 0.2,
            "test_fraction": 0.2,
            "mel_cache": True,
            "n_mels": 32,
            "frames": 30,
        },
    }
    task = task_cls(resolve_config(task_cls.config_schema, user))
    train, val = task.build_datasets()
    assert task.classes == ["es", "fr", "ru"] and (len(train), len(val), len(task.build_test_dataset())) == (36, 12, 12)
    assert len(list((tmp_path / "log_mel").rglob("*.npy"))) == 36  # the training clips the statistics read
    x, y = val[0]
    torch.testing.assert_close(x, task.predict_input(val.items[0][0])[0][0], atol=1e-5, rtol=0)
    assert x.shape == (1, 30, 32) and train[0][0].shape == (1, 30, 32)
    batch = torch.stack([train[i][0] for i in range(12)])
    assert_loss_decreases(task, batch, torch.tensor(train.targets[:12]))


def test_mel_cache_refuses_background_noise(tmp_path):
    task_cls = get_task("audio")
    for word in ("go", "stop"):
        clip(tmp_path / word / "0.ogg", 300.0)
    clip(tmp_path / "_background_noise_" / "hum.ogg", 50.0)
    (tmp_path / "validation_list.txt").write_text("go/0.ogg\n")
    (tmp_path / "testing_list.txt").write_text("")
    user = {"data": {"dataset": "speech_commands", "root": str(tmp_path), "mel_cache": True}}
    with pytest.raises(ValueError, match="set data.mel_cache=false or aug.noise_prob=0"):
        task_cls(resolve_config(task_cls.config_schema, user)).build_datasets()


@pytest.mark.skipif(not TUXPAINT_STAMPS_DIR.is_dir(), reason="tuxpaint-stamps-default is not installed")
def test_real_package_layout(capsys):
    """The installed package parses into the demo's 9 languages with no stamp in two splits."""
    splits, classes = spoken_language_items(TUXPAINT_STAMPS_DIR)
    assert classes == ["be", "bg", "ca", "da", "el", "es", "fr", "ro", "ru"]
    stamps = {s: {(p.parent, description_language(p)[0]) for p, _ in items} for s, items in splits.items()}
    assert not (stamps["train"] & stamps["test"] or stamps["val"] & stamps["test"] or stamps["train"] & stamps["val"])
    assert sum(map(len, splits.values())) > 6000
