"""Point-cloud datasets: ModelNet40/10, ScanObjectNN (``.h5``, h5py imported when read) and mesh folders."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..folders import scan_class_folders
from .io import MESH_EXTENSIONS, POINT_EXTENSIONS, load_points
from .transforms import PointAugment, farthest_point_sample, normalize_unit_sphere

__all__ = ["PointClouds", "ModelNet40", "ScanObjectNN", "MeshFolder"]


class PointClouds(Dataset):
    """Base class: ``(points (P, 3), label)`` items from raw clouds, preprocessed the same way.

    Each raw cloud (:meth:`raw`) is normalised into the unit sphere and farthest-point sampled to
    ``num_points`` (:meth:`sample`); training then applies ``augment``. Evaluation items are
    deterministic (sampling starts at point 0), so each is computed once and kept in memory. With
    ``cache=True`` training items are too (FPS from point 0 once, randomness from ``augment`` only):
    far faster epochs for large clouds such as ModelNet's 10,000 points, as in PointNet++'s
    preprocessed files. The cache lives in the process that reads the dataset (the main process with
    ``num_workers=0``). Subclasses fill ``labels`` and ``classes`` and implement :meth:`raw`.
    """

    classes: list[str]
    labels: list[int]

    def __init__(
        self, num_points: int = 1024, train: bool = False, augment: PointAugment | None = None, cache: bool = False
    ) -> None:
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}")
        self.num_points, self.train, self.augment = num_points, train, augment
        self.fixed = cache or not train
        self._cache: dict[int, torch.Tensor] = {}

    def raw(self, i: int) -> torch.Tensor:
        """Sample ``i``'s points ``(N, 3)`` as stored."""
        raise NotImplementedError

    def sample(self, i: int) -> torch.Tensor:
        """Sample ``i`` normalised and farthest-point sampled, ``(num_points, 3)``, before augmentation."""
        points = normalize_unit_sphere(self.raw(i))
        return points[farthest_point_sample(points, self.num_points, start=0 if self.fixed else None)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not self.fixed:
            points = self.sample(i)
        elif i in self._cache:
            points = self._cache[i]
        else:
            points = self._cache[i] = self.sample(i)
        if self.train and self.augment is not None:
            points = self.augment(points)
        return points, self.labels[i]


class ModelNet40(PointClouds):
    """ModelNet40 (or ModelNet10) in the ``modelnet40_normal_resampled`` layout.

    ``root`` holds ``modelnet{N}_shape_names.txt`` (one class per line), ``modelnet{N}_{split}.txt``
    (one shape id such as ``airplane_0001`` per line) and ``<class>/<shape id>.txt`` files of
    ``x,y,z,nx,ny,nz`` lines (normals are not used). ``split`` is ``"train"`` or ``"test"``.
    """

    def __init__(self, root: str | os.PathLike, split: str, *, variant: int = 40, **kwargs) -> None:
        super().__init__(**kwargs)
        root = Path(root)
        names_file, split_file = root / f"modelnet{variant}_shape_names.txt", root / f"modelnet{variant}_{split}.txt"
        for f in (names_file, split_file):
            if not f.is_file():
                raise ValueError(f"ModelNet{variant} layout: {os.fspath(f)!r} is missing (root={os.fspath(root)!r})")
        self.classes = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        index = {c: i for i, c in enumerate(self.classes)}
        self.files, self.labels = [], []
        for shape in (line.strip() for line in split_file.read_text().splitlines()):
            if not shape:
                continue
            category = shape.rsplit("_", 1)[0]
            if category not in index:
                raise ValueError(f"{os.fspath(split_file)}: shape {shape!r} has unknown class {category!r}")
            self.files.append(root / category / f"{shape}.txt")
            self.labels.append(index[category])

    def raw(self, i: int) -> torch.Tensor:
        return load_points(self.files[i])


class ScanObjectNN(PointClouds):
    """ScanObjectNN: one ``.h5`` file per split with ``data`` ``(N, 2048, 3)`` and ``label`` ``(N,)``.

    Read fully into memory on construction (the largest variant is ~140 MB). ``classes`` defaults
    to the 15 ScanObjectNN categories when there are at most 15 labels.
    """

    CLASSES = ("bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table", "bed",
               "pillow", "sink", "sofa", "toilet")  # fmt: skip

    def __init__(self, file: str | os.PathLike, *, classes: Sequence[str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        import h5py

        if not Path(file).is_file():
            raise ValueError(f"ScanObjectNN file {os.fspath(file)!r} does not exist")
        with h5py.File(file, "r") as f:
            missing = {"data", "label"} - set(f)
            if missing:
                raise ValueError(f"{os.fspath(file)!r} lacks the dataset(s) {sorted(missing)} (keys: {sorted(f)})")
            self.data = torch.from_numpy(np.asarray(f["data"][..., :3], dtype=np.float32))
            self.labels = np.asarray(f["label"]).reshape(-1).astype(np.int64).tolist()
        if len(self.data) != len(self.labels):
            raise ValueError(f"{os.fspath(file)!r}: {len(self.data)} clouds but {len(self.labels)} labels")
        top = max(self.labels, default=-1) + 1
        self.classes = (
            list(classes) if classes is not None else list(self.CLASSES[:top] if top <= 15 else map(str, range(top)))
        )

    def raw(self, i: int) -> torch.Tensor:
        return self.data[i]


class MeshFolder(PointClouds):
    """Meshes in a "folder per class" layout (``root/<class>/<file>.off|.ply|.stl|.obj``).

    Each access samples ``surface_points`` points on the surface: fresh ones in training, a fixed
    draw per file (seeded by its index) in evaluation or with ``cache=True``.
    """

    def __init__(self, root: str | os.PathLike, *, surface_points: int = 4096, **kwargs) -> None:
        super().__init__(**kwargs)
        items = scan_class_folders(root, MESH_EXTENSIONS + POINT_EXTENSIONS)
        self.classes = sorted({label for _, label in items})
        self.files = [p for p, _ in items]
        self.labels = [self.classes.index(label) for _, label in items]
        self.surface_points = surface_points

    def raw(self, i: int) -> torch.Tensor:
        return load_points(self.files[i], self.surface_points, seed=i if self.fixed else None)
