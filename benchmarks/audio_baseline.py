"""Baseline for the audio task: logistic regression on MFCC statistics, on the task's own split.

Each clip is reduced to the mean (and, for the second baseline, also the standard deviation) of 20 MFCCs
over the same window the network sees at evaluation (the first ``frames`` frames); a standardised
logistic regression is fit on the training split, its C picked on the validation split, and accuracy is
reported on validation and test. Compare with ``unireplknet eval --config CONFIG`` on the same split.

    python benchmarks/audio_baseline.py --config configs/audio_sound_types.yaml
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def mfcc_stats(task, items) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    from unireplknet.modalities.audio import load_audio

    frontend = task.frontend
    feats = []
    for path, _ in items:
        wave = load_audio(path, frontend.sample_rate)[: frontend.clip_samples]
        wave = np.pad(wave, (0, max(frontend.win_length - len(wave), 0)))
        mfcc = librosa.feature.mfcc(
            y=wave,
            sr=frontend.sample_rate,
            n_mfcc=20,
            n_fft=frontend.win_length,
            hop_length=frontend.hop_length,
            n_mels=frontend.n_mels,
            center=False,
        )
        feats.append(np.concatenate([mfcc.mean(1), mfcc.std(1)]))
    return np.stack(feats), np.array([label for _, label in items])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/audio_sound_types.yaml")
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from unireplknet.config import load_yaml, resolve_config
    from unireplknet.tasks.audio import AudioTask

    cfg = resolve_config(AudioTask.config_schema, load_yaml(args.config))
    task = AudioTask(cfg)
    splits, classes, _ = task.splits()
    data = {name: mfcc_stats(task, items) for name, items in splits.items() if items}
    report = {"classes": classes, "sizes": {k: len(v) for k, v in splits.items()}}
    for name, dims in (("logreg_mean_mfcc", slice(0, 20)), ("logreg_mean_std_mfcc", slice(0, 40))):
        best = None
        for c in (0.01, 0.1, 1.0, 10.0, 100.0):
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
            model.fit(data["train"][0][:, dims], data["train"][1])
            val = model.score(data["val"][0][:, dims], data["val"][1])
            if best is None or val > best[0]:
                best = (val, c, model)
        val, c, model = best
        test = model.score(data["test"][0][:, dims], data["test"][1]) if "test" in data else float("nan")
        report[name] = {"C": c, "val_top1": 100 * val, "test_top1": 100 * test}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
