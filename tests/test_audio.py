"""Audio preprocessing and datasets (unireplknet.modalities.audio) on small generated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("librosa")
soundfile = pytest.importorskip("soundfile")

from unireplknet.modalities.audio import (  # noqa: E402
    AudioClipDataset,
    LogMelFrontend,
    add_background_noise,
    folder_items,
    load_audio,
    sound_type_items,
    sound_type_label,
    spec_augment,
    speech_commands_items,
    split_by_group,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def sine(freq: float, seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def write(path: Path, wave: np.ndarray, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, wave, rate)
    return path


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_load_audio_resamples_to_16k_mono(tmp_path, suffix):
    path = write(tmp_path / f"tone{suffix}", sine(1000, 0.5, 44100, channels=2), 44100)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 8000) <= 1
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 1000) < 10


def test_load_audio_rejects_non_audio(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    with pytest.raises(ValueError, match="cannot decode"):
        load_audio(bad)


def test_log_mel_shape_and_peak_bin():
    import librosa

    frontend = LogMelFrontend()
    assert (frontend.win_length, frontend.hop_length, frontend.clip_samples) == (400, 160, 16240)
    spec = frontend(sine(1000, 1.0, 16000))
    assert spec.shape == (1, 100, 128) and spec.dtype == torch.float32
    centres = librosa.mel_frequencies(n_mels=130, fmax=8000)[1:-1]  # centre of each of the 128 bands
    peak = int(spec[0].mean(0).argmax())
    assert abs(centres[peak] - 1000) < 60


def test_crop_or_pad():
    frontend = LogMelFrontend(frames=10)
    n = frontend.clip_samples
    short = np.ones(100, np.float32)
    padded = frontend.crop_or_pad(short)
    assert len(padded) == n and padded[:100].sum() == 100 and not padded[100:].any()
    long = np.arange(3 * n, dtype=np.float32)
    assert frontend.crop_or_pad(long, 5)[0] == 5
    assert frontend.crop_or_pad(long, 10 * n)[-1] == long[-1]  # offset clamped to the end


def test_fit_stats_normalises_training_maps():
    rng = np.random.default_rng(0)
    waves = [rng.normal(0, s, 20000).astype(np.float32) for s in (0.01, 0.1, 0.5)]
    frontend = LogMelFrontend(frames=50)
    frontend.fit_stats(waves)
    maps = torch.stack([frontend(w) for w in waves])
    assert abs(float(maps.mean())) < 1e-3 and abs(float(maps.std()) - 1) < 1e-2
    with pytest.raises(ValueError, match="empty"):
        frontend.fit_stats([])


def test_spec_augment_masks_bands_and_spans():
    spec = torch.ones(1, 100, 128)
    out = spec_augment(spec, freq_mask=10, time_mask=8, num_masks=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(spec, torch.ones(1, 100, 128))  # input untouched
    zero_bins = (out[0] == 0).all(0).sum()
    zero_frames = (out[0] == 0).all(1).sum()
    assert 0 < zero_bins <= 20 and 0 < zero_frames <= 16
    assert torch.equal(spec_augment(spec, 0, 0), spec)


def test_add_background_noise():
    rng = np.random.default_rng(0)
    wave = np.zeros(1000, np.float32)
    noise = np.ones(300, np.float32)
    mixed = add_background_noise(wave, noise, rng, max_volume=0.1)
    assert mixed.shape == wave.shape and 0 <= mixed.max() <= 0.1 and np.allclose(mixed, mixed[0])
    assert np.array_equal(add_background_noise(wave, noise, rng, max_volume=0.0), wave)


def test_speech_commands_layout(tmp_path):
    for word in ("yes", "no"):
        for i in range(3):
            write(tmp_path / word / f"s{i}.wav", sine(440, 0.2, 16000))
    write(tmp_path / "_background_noise_" / "white.wav", np.random.default_rng(0).normal(0, 0.1, 32000))
    (tmp_path / "validation_list.txt").write_text("yes/s0.wav\nno/s0.wav\n")
    (tmp_path / "testing_list.txt").write_text("yes/s1.wav\n")
    splits, classes, noise = speech_commands_items(tmp_path)
    assert classes == ["no", "yes"]
    as_names = {k: sorted(f"{p.parent.name}/{p.name}:{y}" for p, y in v) for k, v in splits.items()}
    assert as_names == {
        "train": ["no/s1.wav:0", "no/s2.wav:0", "yes/s2.wav:1"],
        "val": ["no/s0.wav:0", "yes/s0.wav:1"],
        "test": ["yes/s1.wav:1"],
    }
    assert [p.name for p in noise] == ["white.wav"]
    with pytest.raises(ValueError, match="validation_list.txt"):
        speech_commands_items(tmp_path / "yes")


def test_folder_layouts(tmp_path):
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            write(tmp_path / "pre" / split / cls / "a.wav", sine(300, 0.1, 16000))
    splits, classes = folder_items(tmp_path / "pre")
    assert classes == ["cat", "dog"] and [len(splits[s]) for s in ("train", "val", "test")] == [2, 2, 0]

    for cls in ("cat", "dog"):
        for i in range(10):
            write(tmp_path / "flat" / cls / f"{i}.flac", sine(300, 0.1, 16000))
    splits, classes = folder_items(tmp_path / "flat", val_fraction=0.2, seed=1)
    assert len(splits["val"]) == 4 and len(splits["train"]) == 16
    assert {y for _, y in splits["val"]} == {0, 1}
    assert splits == folder_items(tmp_path / "flat", val_fraction=0.2, seed=1)[0]
    with pytest.raises(ValueError, match="no class folders"):
        folder_items(tmp_path / "empty")


def test_split_by_group_keeps_groups_together():
    items = [(Path(f"{g}-{v}.wav"), c) for c in (0, 1) for g in range(6) for v in range(3)]
    groups = [f"{c}/{p.stem.split('-')[0]}" for p, c in items]
    splits = split_by_group(items, groups, val_fraction=0.2, test_fraction=0.2, seed=0)
    where = {}
    for split, members in splits.items():
        for item in members:
            where.setdefault(groups[items.index(item)], set()).add(split)
    assert all(len(s) == 1 for s in where.values())
    assert sum(len(v) for v in splits.values()) == len(items)
    assert all({y for _, y in splits[s]} == {0, 1} for s in splits)


def test_sound_type_rules():
    cases = {
        "/x/drumkits/GMRockKit/Kick-Hard.wav": "kick",
        "/x/drumkits/Kit/HatClosed-Med.wav": "hihat",
        "/x/drumkits/Kit/hh_01.flac": "hihat",
        "/x/drumkits/Kit/SabianCrash-Soft.wav": "cymbal",
        "/x/drumkits/Kit/sd_03.flac": "snare",
        "/x/drumkits/Kit/TomFloor-Hard.wav": "tom",
        "/x/drumkits/Kit/Agogo-1.wav": None,
        "/usr/share/sonic-pi/samples/bd_haus.flac": "kick",
        "/usr/share/sonic-pi/samples/elec_snare.flac": "snare",
        "/usr/share/sonic-pi/samples/tabla_ghe1.flac": "tabla",
        "/usr/share/sonic-pi/samples/ambi_drone.flac": "ambi",
    }
    assert {p: sound_type_label(Path(p)) for p in cases} == cases


def test_sound_type_items_dedupes_and_drops_rare_classes(tmp_path):
    pi, kits = tmp_path / "sonic-pi" / "samples", tmp_path / "drumkits"
    for i in range(4):
        write(pi / f"tabla_t{i}.flac", sine(200 + 50 * i, 0.1, 16000))
        write(kits / "A" / f"Kick-{i}.wav", sine(60 + 5 * i, 0.1, 16000))
        write(kits / "B" / f"Kick-{i}.wav", sine(60 + 5 * i, 0.1, 16000))  # byte-identical copies
    write(pi / "vinyl_hiss.flac", sine(900, 0.1, 16000))
    splits, classes = sound_type_items([pi, kits], min_clips=3, val_fraction=0.25, test_fraction=0.25)
    assert classes == ["kick", "tabla"]
    files = [p for items in splits.values() for p, _ in items]
    assert len(files) == 8 and not any(p.parent.name == "B" for p in files)
    # the velocity/take suffix is stripped: kit A's four kicks form one group, so they stay together
    assert [sum(p.parent.name == "A" for p, _ in splits[s]) for s in ("train", "val", "test")] == [4, 0, 0]
    with pytest.raises(ValueError, match="apt-get install"):
        sound_type_items([tmp_path / "missing"])


def test_audio_clip_dataset(tmp_path):
    files = [(write(tmp_path / f"{i}.wav", sine(500 * (i + 1), 2.0, 16000)), i) for i in range(2)]
    frontend = LogMelFrontend(frames=20, n_mels=32)
    train = AudioClipDataset(
        files, frontend, train=True, spec_augment_args={"freq_mask": 4, "time_mask": 4}, cache=True
    )
    evaluation = AudioClipDataset(files, frontend, train=False)
    x, y = train[1]
    assert x.shape == (1, 20, 32) and y == 1 and train.targets == [0, 1]
    assert torch.equal(evaluation[0][0], evaluation[0][0])
    assert torch.equal(evaluation[0][0], frontend(load_audio(files[0][0])))
    with pytest.raises(ValueError, match="empty"):
        AudioClipDataset([], frontend, train=False)
