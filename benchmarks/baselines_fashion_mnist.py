"""Baselines on the default run's data and budget: timm's resnet18 and convnext_atto beside UniRepLKNet-A.

Every model is trained by the same engine, on the same 20,000 Fashion-MNIST training images, with the
same epochs, optimizer, schedule and augmentation as ``unireplknet train`` (the classify task's
defaults), and evaluated on all 10,000 test images. Only the network differs::

    python benchmarks/baselines_fashion_mnist.py                       # all three, ~15-30 min on 2 cores
    python benchmarks/baselines_fashion_mnist.py --models resnet18 --set train.epochs=1

Prints a Markdown table (top-1, parameters, training images/s, wall time) for the README.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from torch import nn

from unireplknet.config import parse_overrides, resolve_config
from unireplknet.engine import train
from unireplknet.tasks import register_task
from unireplknet.tasks.classify import ClassifyTask

OURS = "unireplknet_a"
# ConvNeXt's stride-2 downsampling needs a 32 x 32 input (28 -> 7 -> 3 -> 1 cannot be halved again):
# it gets the same images resized to 32 x 32.
INPUT_SIZE = {"convnext_atto": 32}


@register_task
class TimmClassifyTask(ClassifyTask):
    """The classify task with a timm network in place of UniRepLKNet (``model.name`` is a timm name)."""

    name = "classify_timm"

    def build_model(self) -> nn.Module:
        import timm

        return timm.create_model(self.cfg["model"]["name"], num_classes=len(self.classes), in_chans=self.in_chans)


def run(model: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    task = ClassifyTask if model == OURS else TimmClassifyTask
    size = [f"data.img_size={INPUT_SIZE[model]}"] if model in INPUT_SIZE else []
    names = [f"model.name={model}", f"output.dir={out}", f"output.name={model}-{int(time.time())}"]
    layers = parse_overrides([*size, *overrides, *names])
    cfg = resolve_config(task.config_schema, {"task": task.name}, layers)
    started = time.perf_counter()
    summary = train(cfg)
    summary["wall_s"] = time.perf_counter() - started
    summary["input_size"] = cfg["data"]["img_size"] or 28
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[OURS, "resnet18", "convnext_atto"])
    parser.add_argument("--out", type=Path, default=Path("runs/baselines"))
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override, e.g. train.epochs=1")
    args = parser.parse_args()
    rows = []
    for model in args.models:
        summary = run(model, args.out, args.sets)
        records = [json.loads(line) for line in Path(summary["outputs"]["metrics"]).read_text().splitlines()]
        speed = sum(r["train_images_per_s"] for r in records) / len(records)
        rows.append(
            (model, summary["input_size"], summary["eval"]["top1"], summary["params"], speed, summary["wall_s"])
        )
    print("\n| model | input | test top-1 (%) | params (M) | train images/s | wall time (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for model, side, top1, params, speed, wall in rows:
        print(f"| {model} | {side}x{side} | {top1:.2f} | {params / 1e6:.2f} | {speed:.0f} | {wall:.0f} |")


if __name__ == "__main__":
    main()
