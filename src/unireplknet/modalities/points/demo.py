"""The bundled point-cloud demo: recognising real meshes (Debian's ``libcgal-demo``, see
:mod:`unireplknet.data.sources`) in new random poses."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

import torch

from ...data.sources import CGAL_DATA_ARCHIVE, CGAL_DEMO_MESHES, default_cache_dir
from .datasets import PointClouds
from .io import load_mesh, mesh_points
from .transforms import farthest_point_sample, normalize_unit_sphere, random_rotation

__all__ = ["cgal_meshes", "RandomPoses", "MeshPoses"]


def cgal_meshes(
    names: Sequence[str] = CGAL_DEMO_MESHES,
    archive: str | os.PathLike = CGAL_DATA_ARCHIVE,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Paths of CGAL sample meshes, extracted once from the ``libcgal-demo`` data archive.

    Debian's ``libcgal-demo`` ships its data as ``data.tar.gz`` (``data/meshes/<name>.off``, real
    scans and models such as the Stanford bunny and the armadillo). Only the requested members are
    extracted, into ``<cache_dir>/cgal_meshes/`` (default :func:`default_cache_dir`), atomically per
    file; later calls reuse them.
    """
    target = Path(cache_dir or default_cache_dir()) / "cgal_meshes"
    paths = {name: target / f"{name}.off" for name in names}
    todo = [name for name, p in paths.items() if not p.is_file()]
    if todo:
        if not Path(archive).is_file():
            raise ValueError(
                f"CGAL mesh archive {os.fspath(archive)!r} not found; install it with: apt-get install libcgal-demo"
            )
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            for name in todo:
                member = members.get(f"data/meshes/{name}.off")
                if member is None:
                    raise ValueError(f"{os.fspath(archive)!r} has no mesh data/meshes/{name}.off")
                partial = paths[name].with_suffix(f".off.{os.getpid()}.part")
                with tar.extractfile(member) as src, open(partial, "wb") as dst:
                    dst.write(src.read())
                partial.replace(paths[name])
    return paths


class RandomPoses(PointClouds):
    """Shapes seen in random 3-D poses: ``samples_per_shape`` items per shape, item ``i`` showing shape ``i % S``.

    Each item: the shape's normalised ``(num_points, 3)`` sample (:meth:`shape_points`) rotated by
    :func:`random_rotation` of kind ``rotation`` (``"so3"``: uniformly over all rotations; ``"up"``: about
    ``up_axis``), plus the usual ``augment`` in training. Training draws a fresh pose (and sampling, where the
    subclass samples) on every access; evaluation items are fixed by ``seed`` (one seeded generator per item,
    computed once), so they are never shown in training (a different random stream over a continuous space).
    ``shape_labels`` gives each shape's class index into ``classes``.
    """

    def __init__(
        self,
        shape_labels: Sequence[int],
        classes: Sequence[str],
        *,
        samples_per_shape: int,
        rotation: str = "so3",
        up_axis: int = 1,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        random_rotation(rotation)  # validates the name
        self.classes, self.shape_labels = list(classes), list(shape_labels)
        count = samples_per_shape * len(self.shape_labels)
        self.labels = [self.shape_labels[i % len(self.shape_labels)] for i in range(count)]
        self.rotation, self.up_axis, self.seed = rotation, up_axis, seed
        self.fixed = not self.train  # training always draws a fresh pose: never one of the evaluation seeds

    def shape_points(self, shape: int, generator: torch.Generator | None) -> torch.Tensor:
        """Shape ``shape``'s ``(num_points, 3)`` points in the unit sphere, before the pose; random draws
        come from ``generator`` (None in training: fresh ones)."""
        raise NotImplementedError

    def sample(self, i: int) -> torch.Tensor:
        generator = None if self.train else torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        points = self.shape_points(i % len(self.shape_labels), generator)
        return points @ random_rotation(self.rotation, self.up_axis, generator=generator).T


class MeshPoses(RandomPoses):
    """Which object is this? Each sample is a mesh seen in a random 3-D pose (uniform over SO(3)) and surface
    sampling (:class:`RandomPoses`: item ``i`` shows mesh ``i % K``): ``surface_points`` points sampled
    uniformly on its surface, normalised and farthest-point sampled to ``num_points`` from a random start.
    ``samples_per_class`` sets the split's length; ``seed`` fixes the evaluation items.
    """

    def __init__(
        self,
        meshes: dict[str, str | os.PathLike],
        *,
        samples_per_class: int,
        surface_points: int = 2048,
        **kwargs,
    ) -> None:
        labels, names = range(len(meshes)), list(meshes)
        super().__init__(labels, names, samples_per_shape=samples_per_class, rotation="so3", **kwargs)
        self.meshes = [load_mesh(Path(p)) for p in meshes.values()]
        self.surface_points = surface_points

    def shape_points(self, shape: int, generator: torch.Generator | None) -> torch.Tensor:
        numpy_seed = None if generator is None else int(torch.randint(2**31, (1,), generator=generator))
        points = normalize_unit_sphere(
            torch.from_numpy(mesh_points(self.meshes[shape], self.surface_points, numpy_seed))
        )
        start = int(torch.randint(len(points), (1,), generator=generator))
        return points[farthest_point_sample(points, self.num_points, start=start)]
