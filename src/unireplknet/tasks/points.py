"""``--task points``: point-cloud classification with the unchanged backbone on projected views.

The model is :class:`~unireplknet.models.points.PointCloudNet`: a projection from ``(B, P, 3)``
points to a ``3 x H x W`` map (the fixed three-view :class:`OrthographicProjection` ships; see
:mod:`unireplknet.modalities.points` for how it differs from the paper's learned one), then a plain
UniRepLKNet. Datasets (``data.dataset``):

* ``modelnet40``: ``data.root`` in the ``modelnet40_normal_resampled`` layout (``data.variant: 10``
  for ModelNet10);
* ``scanobjectnn``: ``data.train`` / ``data.val`` ``.h5`` files (relative: inside ``data.root``);
* ``mesh_folder``: ``data.train`` / ``data.val`` folders of ``<class>/<mesh or point file>`` (same);
* ``cgal_poses``: the bundled real-mesh demo: which of Debian ``libcgal-demo``'s meshes is this, seen
  in a new random 3-D pose and surface sampling (:class:`~unireplknet.modalities.points.demo.MeshPoses`);
* ``furniture``: the bundled ModelNet-style demo: 11 classes of Sweet Home 3D furniture models (Debian's
  ``sweethome3d-furniture``; ``data.root``: another folder of ``.sh3f`` catalogues), split by model into
  train / validation / test, in random poses (:mod:`~unireplknet.modalities.points.furniture`).
  ``data.eval_split`` picks the split scored every epoch (``val``, which picks ``best.safetensors``; the
  end-of-run report then scores ``test``) or by ``eval`` (``test``).

``predict`` reads point files (``.txt``/``.xyz``/``.pts``/``.npy``) or meshes and, with
``predict.save_input`` (a folder), writes each file's three projected views side by side as a PNG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import trimesh  # noqa: F401  (fail at task import with the extra's install hint, not mid-run)
from torch import nn
from torch.utils.data import Dataset

from ..config import (
    DataConfig,
    Fraction,
    Len,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    RunConfig,
)
from ..data.folders import save_png
from ..data.sources import FURNITURE_CATALOG_DIR, debian_file
from ..modalities import points as P
from ..models.points import PointCloudNet
from .base import register_task, require_data
from .classification import ClassificationTask, build_classifier

__all__ = ["PointsTask", "PointsConfig"]


@dataclass
class ProjectionConfig:
    resolution: PositiveInt = 64
    mode: Literal["depth", "occupancy"] = "depth"
    align: Literal["pca"] | None = None  # pca: views in the cloud's principal-axis frame


@dataclass
class CgalPosesConfig:
    meshes: list[str] = field(default_factory=lambda: list(P.CGAL_DEMO_MESHES))
    archive: str = str(P.CGAL_DATA_ARCHIVE)
    cache_dir: str | None = None  # where the meshes are extracted (null: $UNIREPLKNET_CACHE or ~/.cache/unireplknet)
    train_samples_per_class: PositiveInt = 32  # per epoch; each a fresh pose and sampling
    test_samples_per_class: PositiveInt = 25
    test_seed: NonNegativeInt = 0


@dataclass
class FurnitureConfig:
    classes: list[str] = field(default_factory=lambda: list(P.FURNITURE_CLASSES))
    cache_dir: str | None = None  # for the sampled models (null: $UNIREPLKNET_CACHE or ~/.cache/unireplknet)
    split_seed: NonNegativeInt = 0
    val_fraction: Fraction = 0.2  # of each class's models
    test_fraction: Fraction = 0.2
    rotation: Literal["up", "so3"] = "up"  # the random pose: about the vertical axis, or any rotation
    train_samples_per_model: PositiveInt = 4  # per epoch; each a fresh pose and sampling
    eval_samples_per_model: PositiveInt = 4  # fixed poses per validation / test model
    eval_seed: NonNegativeInt = 0


@dataclass
class PointsData(DataConfig):
    dataset: Literal["modelnet40", "scanobjectnn", "mesh_folder", "cgal_poses", "furniture"] = "modelnet40"
    eval_split: Literal["val", "test"] = "val"  # furniture: the split scored by evaluation (others have no test)
    variant: Literal[10, 40] = 40  # modelnet40: ModelNet40 or ModelNet10 files (data.root)
    train: str | None = None  # scanobjectnn .h5 file or mesh_folder folder (relative: inside data.root)
    val: str | None = None
    num_points: PositiveInt = 1024  # P after farthest-point sampling
    surface_points: PositiveInt = 4096  # points first sampled on a mesh surface
    cache: bool = False  # keep each training cloud's sampled points in memory (augmentation still random)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    cgal_poses: CgalPosesConfig = field(default_factory=CgalPosesConfig)
    furniture: FurnitureConfig = field(default_factory=FurnitureConfig)


@dataclass
class PointsAug:
    rotation: Literal["up", "so3", "none"] = "up"
    up_axis: Literal[0, 1, 2] = 1  # ModelNet and ScanObjectNN are y-up
    scale: Annotated[list[PositiveFloat], Len(2)] = field(default_factory=lambda: [0.8, 1.25])
    jitter: NonNegativeFloat = 0.01
    jitter_clip: NonNegativeFloat = 0.05
    dropout: Fraction = 0.0
    label_smoothing: Fraction = 0.0


@dataclass
class PointsPredict:
    save_input: str | None = None  # folder for PNGs of the projected inputs


@dataclass
class PointsConfig(RunConfig):
    task: str = "points"
    data: PointsData = field(default_factory=PointsData)
    aug: PointsAug | None = field(default_factory=PointsAug)  # null: no augmentation, no label smoothing
    predict: PointsPredict = field(default_factory=PointsPredict)


@register_task
class PointsTask(ClassificationTask):
    """Point-cloud classification through a projection to a 3-view map."""

    name = "points"
    config_schema = PointsConfig

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.data = cfg["data"]
        self._test_set: Dataset | None = None  # furniture: the test split while validation picks the best weights

    # -- data -----------------------------------------------------------------------------------
    def build_datasets(self) -> tuple[Dataset, Dataset]:
        d, aug = self.data, self.cfg["aug"]
        kind = d["dataset"]
        if d["eval_split"] == "test" and kind != "furniture":
            raise ValueError(f"data.eval_split=test needs data.dataset=furniture ({kind} has no separate test split)")
        if aug is None:
            augment = P.PointAugment(rotation="none", scale=(1.0, 1.0), jitter=0.0)
        else:
            augment = P.PointAugment(**{k: v for k, v in aug.items() if k != "label_smoothing"})
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
            files = {split: self.data_path(split) for split in ("train", "val")}
            if kind == "scanobjectnn":
                train = P.ScanObjectNN(files["train"], train=True, augment=augment, **cached, **common)
                val = P.ScanObjectNN(files["val"], classes=train.classes, **common)
            else:
                surface = dict(surface_points=d["surface_points"], **common)
                train = P.MeshFolder(files["train"], train=True, augment=augment, **cached, **surface)
                val = P.MeshFolder(files["val"], **surface)
                if val.classes != train.classes:
                    raise ValueError(f"train classes {train.classes} differ from validation classes {val.classes}")
        elif kind == "furniture":
            train, val = self.furniture_datasets(augment)
        else:
            self.bundled_dataset()
            c = d["cgal_poses"]
            meshes = P.cgal_meshes(c["meshes"], c["archive"], c["cache_dir"])
            common["surface_points"] = d["surface_points"]
            train = P.MeshPoses(
                meshes, samples_per_class=c["train_samples_per_class"], train=True, augment=augment, **common
            )
            val = P.MeshPoses(meshes, samples_per_class=c["test_samples_per_class"], seed=c["test_seed"], **common)
        self.set_classes(train.classes)
        return train, val

    def furniture_splits(self) -> dict[str, tuple[list[torch.Tensor], list[int]]]:
        """``{"train", "val", "test"}`` -> (each model's cached surface points, its class index), split by model."""
        f = self.data["furniture"]
        folder = self.data_path("root") or debian_file(FURNITURE_CATALOG_DIR, "sweethome3d-furniture")
        models = P.furniture_models(folder, f["classes"])
        splits = P.split_by_model(models, f["val_fraction"], f["test_fraction"], f["split_seed"])
        return {
            split: (
                P.furniture_clouds(ms, self.data["num_points"], self.data["surface_points"], f["cache_dir"]),
                [f["classes"].index(m.label) for m in ms],
            )
            for split, ms in splits.items()
        }

    def furniture_poses(
        self, clouds: list[torch.Tensor], labels: list[int], samples_per_model: int, **kwargs
    ) -> P.FurniturePoses:
        """A split of the furniture demo as configured (``kwargs``: ``train``/``augment`` or ``seed``)."""
        d, f = self.data, self.data["furniture"]
        return P.FurniturePoses(
            clouds, labels, f["classes"], samples_per_model=samples_per_model, num_points=d["num_points"],
            rotation=f["rotation"], **kwargs,
        )  # fmt: skip

    def furniture_datasets(self, augment: P.PointAugment) -> tuple[Dataset, Dataset]:
        """(training, evaluation) splits of the furniture demo; keeps the test split for the final report."""
        f = self.data["furniture"]
        splits = self.furniture_splits()
        train = self.furniture_poses(*splits["train"], f["train_samples_per_model"], train=True, augment=augment)
        evaluation = {
            split: self.furniture_poses(*splits[split], f["eval_samples_per_model"], seed=f["eval_seed"])
            for split in ("val", "test")
        }
        self._test_set = evaluation["test"] if self.data["eval_split"] == "val" else None
        return train, evaluation[self.data["eval_split"]]

    def build_test_dataset(self) -> Dataset | None:
        """The furniture test split for the end-of-run report while validation picks ``best.safetensors``."""
        return self._test_set

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
        save_dir = self.cfg["predict"]["save_input"]
        if save_dir:
            views = model.projection(inputs)[0].cpu()  # (3, H, W): one view per channel
            strip = torch.cat(list(views), dim=1)[None]  # three grey panels side by side
            result["input_png"] = str(
                save_png(strip / strip.max().clamp_min(1e-6), Path(save_dir) / f"{path.stem}_input.png")
            )
        return result
