"""Baseline for the CGAL mesh-recognition demo: nearest neighbour on rotation-invariant shape histograms.

Scores the *same* test split that ``unireplknet train --config configs/points_cgal.yaml`` evaluates on
(same meshes, test seed, point counts), with a 1-nearest-neighbour classifier over
:func:`~unireplknet.modalities.points.shape_histogram` features (D2 pair distances + distances to the
centroid; invariant to rotation, so pose needs no learning). Its reference set is a fixed draw of
random poses and samplings from a different seed, ``--per-class`` per mesh.

    .venv/bin/python benchmarks/points_cgal_baseline.py --config configs/points_cgal.yaml --per-class 64
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from unireplknet.config import load_yaml, resolve_config
from unireplknet.modalities.points import MeshPoses, cgal_meshes, histogram_features, nearest_neighbour_top1
from unireplknet.tasks.points import PointsTask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/points_cgal.yaml")
    parser.add_argument("--per-class", type=int, default=64, help="reference samples per mesh for the neighbour search")
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = resolve_config(PointsTask.config_schema, load_yaml(args.config))
    data, c = cfg["data"], cfg["data"]["cgal_poses"]
    meshes = cgal_meshes(c["meshes"], c["archive"], c["cache_dir"])
    common = dict(num_points=data["num_points"], surface_points=data["surface_points"])
    start = time.perf_counter()
    test = MeshPoses(meshes, samples_per_class=c["test_samples_per_class"], seed=c["test_seed"], **common)
    reference = MeshPoses(meshes, samples_per_class=args.per_class, seed=c["test_seed"] + 1, **common)
    accuracy = nearest_neighbour_top1(histogram_features(test), histogram_features(reference))
    result = {
        "baseline": "1-NN, L1 distance, shape histograms (D2 + radial)",
        "classes": len(meshes),
        "test_samples": len(test),
        "reference_samples": len(reference),
        "top1": round(accuracy, 2),
        "chance": round(100.0 / len(meshes), 2),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
