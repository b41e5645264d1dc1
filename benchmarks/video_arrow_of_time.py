"""Arrow of time (or frame order) on real footage: tiled 16-frame clips vs the single-frame baseline.

Trains the same backbone twice on the same time-split data (configs/video_arrow.yaml): once on the
4 x 4 grid of a clip's frames in playback order, once on a single frame of the clip
(``data.arrow_of_time.layout=single``). Forward and backward samples hold the same frames, so the
single-frame model cannot beat chance (on the test split it sees the same image for both directions
and scores exactly 50%); any gain of the grid model comes from comparing frames across tiles.

Prints a Markdown table (held-out top-1, last-epoch top-1 on the augmented training clips, CPU
seconds) and the same as JSON. Choose settings on validation blocks cut from the training blocks,
never on the test split: ``--set data.arrow_of_time.val_every=2`` scores those instead.

    .venv/bin/python benchmarks/video_arrow_of_time.py [--output runs] [--set train.epochs=4 ...]

Measured on the 2-core development machine (one thread each, CPU seconds; --set train.seed=N):

| layout | seed | test top-1 | training top-1 (last epoch, augmented) | CPU s |
| --- | --- | --- | --- | --- |
| grid | 0 | 63.4% | 70.2% | 384 |
| grid | 1 | 49.4% | 74.4% | 365 |
| grid | 2 | 64.0% | 77.7% | 360 |
| single | 0 / 1 / 2 | 50.0% / 50.0% / 50.0% | 50.2% / 49.4% / 50.8% | 50 / 52 / 50 |

Not a reliable gain: within each grid run the test score swings between 28% and 69% from epoch
to epoch (an earlier run ended at 35.4%); benchmarks/video_arrow_motion.py shows why (no consistent
direction of motion in these clips).

The frame-order sibling (``--config configs/video_frame_order.yaml``: in order or shuffled? the same
frames in both classes, so the single-frame model again scores exactly 50% on test), same machine:

| layout | seed | test top-1 | training top-1 (last epoch, augmented) | CPU s |
| --- | --- | --- | --- | --- |
| grid | 0 | 85.4% | 95.2% | 222 |
| grid | 1 | 79.9% | 96.9% | 218 |
| grid | 2 | 87.8% | 97.0% | 222 |
| single | 0 / 1 / 2 | 50.0% / 50.0% / 50.0% | 52.2% / 50.5% / 50.0% | 74 / 69 / 69 |
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from unireplknet.config import load_yaml, parse_overrides, resolve_config
from unireplknet.engine import train
from unireplknet.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/video_arrow.yaml")
    parser.add_argument("--output", default="runs", help="folder for the two run folders")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra config override a.b=c")
    args = parser.parse_args()
    user = load_yaml(args.config)
    results = {}
    for layout in ("grid", "single"):
        overrides = parse_overrides(
            [
                "train.threads=1",
                *args.sets,
                f"data.arrow_of_time.layout={layout}",
                f"output.dir={args.output}",
                f"output.name={Path(args.config).stem}_{layout}",
            ]
        )
        cfg = resolve_config(get_task("video").config_schema, user, overrides)
        cpu_start = time.process_time()
        summary = train(cfg)
        epochs = [json.loads(line) for line in Path(summary["outputs"]["metrics"]).read_text().splitlines()]
        train_top1 = [e["train_top1"] for e in epochs if "train_top1" in e]
        results[layout] = {
            "held_out_top1": round(summary["eval"]["top1"], 1),
            "train_top1_last_epoch": round(train_top1[-1], 1),
            "held_out_samples": summary["eval_samples"],
            "cpu_s": round(time.process_time() - cpu_start),
        }
    split = "validation" if "val_every" in " ".join(args.sets) else "test"
    print(f"| layout | {split} top-1 | training top-1 (last epoch, augmented) | CPU s |")
    print("| --- | --- | --- | --- |")
    for layout, r in results.items():
        print(f"| {layout} | {r['held_out_top1']}% | {r['train_top1_last_epoch']}% | {r['cpu_s']} |")
    print(json.dumps({"split": split, "chance": 50.0, **results}))


if __name__ == "__main__":
    main()
