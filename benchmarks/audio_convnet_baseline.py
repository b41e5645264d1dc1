"""Same-budget ConvNet baseline for an audio config, and seeds of ours beside it, on the task's own split.

The baseline is timm's ResNet with 3x3 BasicBlocks and the config's own stage depths and widths
(``model.depths`` / ``model.dims``: for the spoken-language demo 1-1-3-1 blocks of 16-32-64-128
channels, 0.47M parameters against UniRepLKNet's 0.43M; both downsample by 4 in the stem). Every
model is trained by the same engine on the same log-mel maps, split, epochs, optimizer, schedule and
augmentation; only the network differs. ``--model unireplknet`` trains the config itself (add
``--set model.kernel_sizes=...`` for the 3x3-kernel ablation). Prints one JSON line per seed (validation
top-1 of the last epoch, test top-1 of the last weights, parameters, wall time) and their mean.

    python benchmarks/audio_convnet_baseline.py --config configs/audio_spoken_language.yaml --seeds 0 1 2
    python benchmarks/audio_convnet_baseline.py --config configs/audio_spoken_language.yaml --model unireplknet \\
        --set "model.kernel_sizes=[[3],[3],[3,3,3],[3]]"
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from torch import nn

from unireplknet.config import load_yaml, parse_overrides, resolve_config
from unireplknet.engine import train
from unireplknet.tasks import register_task
from unireplknet.tasks.audio import AudioTask


@register_task
class ResNetAudioTask(AudioTask):
    """The audio task with timm's ResNet (BasicBlocks, the config's depths and widths) in place of UniRepLKNet."""

    name = "audio_resnet"

    def build_model(self) -> nn.Module:
        from timm.models.resnet import BasicBlock, ResNet

        m = self.cfg["model"]
        return ResNet(
            BasicBlock,
            layers=tuple(m["depths"]),
            channels=tuple(m["dims"]),
            stem_width=m["dims"][0],
            num_classes=self.num_classes,
            in_chans=1,
            drop_path_rate=m["drop_path_rate"],
        )


def run(config: Path, model: str, seed: int, out: Path, sets: list[str]) -> dict[str, Any]:
    task = ResNetAudioTask if model == "resnet" else AudioTask
    user = {**load_yaml(config), "task": task.name}
    names = [f"train.seed={seed}", f"output.dir={out}", f"output.name={model}-s{seed}-{int(time.time())}"]
    cfg = resolve_config(task.config_schema, user, parse_overrides([*sets, *names]))
    started = time.perf_counter()
    summary = train(cfg)
    records = [json.loads(line) for line in Path(summary["outputs"]["metrics"]).read_text().splitlines()]
    return {
        "model": model,
        "seed": seed,
        "val_top1": records[-1]["eval_top1"],
        "test_top1": summary["eval"]["top1"],
        "params": summary["params"],
        "wall_s": round(time.perf_counter() - started, 1),
        "sets": sets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/audio_spoken_language.yaml"))
    parser.add_argument("--model", choices=("resnet", "unireplknet"), default="resnet")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/audio_baselines"))
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override, e.g. train.epochs=1")
    args = parser.parse_args()
    rows = [run(args.config, args.model, seed, args.out, args.sets) for seed in args.seeds]
    for row in rows:
        print(json.dumps(row))
    mean = {k: round(sum(r[k] for r in rows) / len(rows), 2) for k in ("val_top1", "test_top1", "wall_s")}
    print(json.dumps({"model": args.model, "seeds": args.seeds, "mean": mean, "sets": args.sets}))


if __name__ == "__main__":
    main()
