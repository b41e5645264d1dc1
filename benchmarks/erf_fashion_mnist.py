"""Effective receptive field of UniRepLKNet-T, ConvNeXt-T and ResNet-50, random and trained on Fashion-MNIST.

The trained weights are runs of ``benchmarks/baselines_fashion_mnist.py`` (the classify task's engine, same
data, epochs, optimizer and augmentation for all three; one input channel), for example::

    python benchmarks/baselines_fashion_mnist.py --models unireplknet_t convnext_tiny resnet50 \\
        --set data.img_size=64 --set data.train_subset=8000 --set train.epochs=1 --out runs/erf_fmnist
    python benchmarks/erf_fashion_mnist.py unireplknet_t=RUN_T convnext_tiny=RUN_C resnet50=RUN_R

For each model it measures the ERF of :mod:`unireplknet.analysis.erf` (gradient of the central position of the
last stage's map, summed over images, log-scaled; area ratios at 20/30/50/99%) with the run's
``best.safetensors`` and with a random initialisation of the same network, on Fashion-MNIST test images
normalised as in training and resized to each ``--size``. Prints a Markdown table; writes the PNG/JSON/NPY of
every map to ``--output``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from unireplknet.analysis import erf
from unireplknet.data.fashion_mnist import FASHION_MNIST_MEAN, FASHION_MNIST_STD, FashionMNIST


def test_images(root: str | None, count: int) -> list[np.ndarray]:
    """The first ``count`` Fashion-MNIST test images as ``(28, 28)`` uint8 arrays."""
    return list(FashionMNIST(root, "test").images[:count].numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs",
        nargs="+",
        help="MODEL=RUN_DIR, e.g. unireplknet_t=runs/erf/unireplknet_t-123 (RUN_DIR unused with --weights random)",
    )
    parser.add_argument("--size", type=int, nargs="+", default=[64, 256], help="image sides to measure at")
    parser.add_argument("--num-images", type=int, default=50)
    parser.add_argument("--data", default=None, help="Fashion-MNIST folder (default: Debian's)")
    parser.add_argument("--weights", nargs="+", choices=("random", "trained"), default=["random", "trained"])
    parser.add_argument("--output", type=Path, default=Path("erf_fashion_mnist"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = test_images(args.data, args.num_images)
    rows = []
    for item in args.runs:
        name, _, run = item.partition("=")
        if not run and "trained" in args.weights:
            parser.error(f"give MODEL=RUN_DIR, got {item!r}")
        for weights in args.weights:
            checkpoint = str(Path(run) / "best.safetensors") if weights == "trained" else None
            torch.manual_seed(0)
            model = erf.build_erf_model(name, checkpoint, in_chans=1)
            for size in args.size:
                tensors = (erf.prepare_image(im, size, 1, FASHION_MNIST_MEAN, FASHION_MNIST_STD) for im in images)
                with torch.enable_grad():
                    scores, used, dropped = erf.accumulate_erf(model, tensors)
                stem = f"{name}_{weights}_{size}_erf"
                result = erf.save_erf(erf.summarise(name, weights, scores, used, dropped), scores, args.output, stem)
                rows.append((name, weights, size, used, result.area_ratio))
                print(f"{name} {weights} {size}px: {result.area_ratio}", flush=True)
    print("\n| model | weights | size | images | 20% | 30% | 50% | 99% |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, weights, size, used, ratio in rows:
        cells = " | ".join(f"{ratio[k]:.4f}" for k in ("20%", "30%", "50%", "99%"))
        print(f"| {name} | {weights} | {size} | {used} | {cells} |")


if __name__ == "__main__":
    main()
