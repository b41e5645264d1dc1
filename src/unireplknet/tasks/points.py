"""``--task points``: point-cloud classification with the unchanged backbone on projected views.

The model is :class:`~unireplknet.models.points.PointCloudNet`: a projection from ``(B, P, 3)``
points to a ``3 x H x W`` map (the fixed three-view :class:`OrthographicProjection` ships; see
:mod:`unireplknet.modalities.points` for how it differs from the paper's learned one), then a plain
UniRepLKNet. Datasets (``data.dataset``):

* ``modelnet40``: ``data.root`` in the ``modelnet40_normal_resampled`` layout (``data.variant: 10``
  for ModelNet10);
* ``scanobjectnn``: ``data.train`` / ``data.val`` ``.h5`` files;
* ``mesh_folder``: ``data.train`` / ``data.val`` folders of ``<class>/<mesh or point file>``;
* ``cgal_poses``: the bundled real-mesh demo: which of Debian ``libcgal-demo``'s meshes is this, seen
  in a new random 3-D pose and surface sampling (:class:`~unireplknet.modalities.points.demo.MeshPoses`).

``predict`` reads point files (``.txt``/``.xyz``/``.pts``/``.npy``) or meshes and, with
``predict.save_input`` (a folder), writes each file's three projected views side by side as a PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import trimesh  # noqa: F401  (fail at task import with the extra's install hint, not mid-run)
from torch import nn
from torch.utils.data import Dataset

from ..data.folders import save_png
from ..modalities import points as P
from ..models.points import PointCloudNet
from .base import register_task, require_data
from .classification import ClassificationTask, build_classifier

__all__ = ["PointsTask"]


@register_task
class PointsTask(ClassificationTask):
    """Point-cloud classification through a projection to a 3-view map."""

    name = "points"
    default_config: dict[str, Any] = {
        "model": {"name": "unireplknet_a"},
        "data": {
            "dataset": "modelnet40",  # modelnet40 | scanobjectnn | mesh_folder | cgal_poses
            "root": None,  # modelnet40 folder
            "variant": 40,  # ModelNet40 or ModelNet10 files
            "train": None,  # scanobjectnn .h5 file or mesh_folder root
            "val": None,
            "num_points": 1024,  # P after farthest-point sampling
            "surface_points": 4096,  # points first sampled on a mesh surface
            "cache": False,  # keep each training cloud's sampled points in memory (augmentation still random)
            "projection": {
                "resolution": 64,
                "mode": "depth",
                "align": None,
            },  # mode depth | occupancy; align null | pca
            "augment": {
                "rotation": "up",  # up | so3 | none
                "up_axis": 1,  # ModelNet and ScanObjectNN are y-up
                "scale": [0.8, 1.25],
                "jitter": 0.01,
                "jitter_clip": 0.05,
                "dropout": 0.0,
            },
            "label_smoothing": 0.0,
            "cgal_poses": {
                "meshes": list(P.CGAL_DEMO_MESHES),
                "archive": str(P.CGAL_DATA_ARCHIVE),
                "cache_dir": None,  # default: $UNIREPLKNET_CACHE or ~/.cache/unireplknet
                "train_samples_per_class": 32,  # per epoch; each a fresh pose and sampling
                "test_samples_per_class": 25,
                "test_seed": 0,
            },
        },
        "predict": {"save_input": None},  # folder for PNGs of the projected inputs
    }
    nullable_sections = frozenset({"data.augment"})  # null: no augmentation

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.data = cfg["data"]

    # -- data -----------------------------------------------------------------------------------
    def build_datasets(self) -> tuple[Dataset, Dataset]:
        d = self.data
        kind = d.get("dataset")
        augment = P.PointAugment(**(d.get("augment") or {"rotation": "none", "scale": (1.0, 1.0), "jitter": 0.0}))
        common = dict(num_points=d["num_points"])
        cached = dict(cache=d["cache"])
        if kind == "modelnet40":
            require_data(d, "root", what="the modelnet40_normal_resampled folder")
            train = P.ModelNet40(
                d["root"], "train", variant=d["variant"], train=True, augment=augment, **cached, **common
            )
            val = P.ModelNet40(d["root"], "test", variant=d["variant"], **common)
        elif kind in ("scanobjectnn", "mesh_folder"):
            require_data(d, "train", "val")
            if kind == "scanobjectnn":
                train = P.ScanObjectNN(d["train"], train=True, augment=augment, **cached, **common)
                val = P.ScanObjectNN(d["val"], classes=train.classes, **common)
            else:
                surface = dict(surface_points=d["surface_points"], **common)
                train = P.MeshFolder(d["train"], train=True, augment=augment, **cached, **surface)
                val = P.MeshFolder(d["val"], **surface)
                if val.classes != train.classes:
                    raise ValueError(f"train classes {train.classes} differ from validation classes {val.classes}")
        elif kind == "cgal_poses":
            c = d["cgal_poses"]
            meshes = P.cgal_meshes(c["meshes"], c["archive"], c["cache_dir"])
            common["surface_points"] = d["surface_points"]
            train = P.MeshPoses(
                meshes, samples_per_class=c["train_samples_per_class"], train=True, augment=augment, **common
            )
            val = P.MeshPoses(meshes, samples_per_class=c["test_samples_per_class"], seed=c["test_seed"], **common)
        else:
            raise ValueError(
                f"data.dataset must be 'modelnet40', 'scanobjectnn', 'mesh_folder' or 'cgal_poses', got {kind!r}"
            )
        self.set_classes(train.classes)
        return train, val

    # -- model ----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        projection = P.OrthographicProjection(**self.data["projection"])
        return PointCloudNet(projection, build_classifier(self.cfg, self.num_classes))

    # -- outputs --------------------------------------------------------------------------------
    def input_points(self, path: Path) -> torch.Tensor:
        """One file's points ``(P, 3)``, preprocessed as the evaluation split does."""
        d = self.data
        points = P.normalize_unit_sphere(P.load_points(path, d["surface_points"], seed=0))
        return points[P.farthest_point_sample(points, d["num_points"])]

    def predict_input(self, path: Path) -> tuple[torch.Tensor, None]:
        """One file's points as a batch ``(1, P, 3)``."""
        return self.input_points(path)[None], None

    def predict_output(
        self, path: Path, outputs: torch.Tensor, *, inputs: torch.Tensor, context: Any, model: nn.Module, top_k: int
    ) -> dict[str, Any]:
        """The top classes; with ``predict.save_input`` the model's three projected views as a PNG."""
        result = super().predict_output(path, outputs, inputs=inputs, context=context, model=model, top_k=top_k)
        save_dir = (self.cfg.get("predict") or {}).get("save_input")
        if save_dir:
            views = model.projection(inputs)[0].cpu()  # (3, H, W): one view per channel
            strip = torch.cat(list(views), dim=1)[None]  # three grey panels side by side
            result["input_png"] = str(
                save_png(strip / strip.max().clamp_min(1e-6), Path(save_dir) / f"{path.stem}_input.png")
            )
        return result
