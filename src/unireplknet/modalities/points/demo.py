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

__all__ = ["cgal_meshes", "MeshPoses"]


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


class MeshPoses(PointClouds):
    """Which object is this? Each sample is a mesh seen in a random 3-D pose and surface sampling.

    Item ``i`` shows mesh ``i % K`` (``K`` meshes): ``surface_points`` points sampled uniformly on its
    surface, normalised, farthest-point sampled to ``num_points`` and rotated uniformly over SO(3),
    plus the usual ``augment`` in training. Training draws a fresh pose and sampling on every access;
    the test split's are fixed by ``seed`` (one seeded generator per item, computed once), so test poses and point
    samples are never shown in training (they come from a different random stream over a continuous
    space). ``samples_per_class`` sets the split's length.
    """

    def __init__(
        self,
        meshes: dict[str, str | os.PathLike],
        *,
        samples_per_class: int,
        surface_points: int = 2048,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.classes = list(meshes)
        self.meshes = [load_mesh(Path(p)) for p in meshes.values()]
        self.labels = [i % len(self.classes) for i in range(samples_per_class * len(self.classes))]
        self.surface_points, self.seed = surface_points, seed
        self.fixed = not self.train  # training always draws a fresh pose: never one of the test seeds

    def sample(self, i: int) -> torch.Tensor:
        generator = None if self.train else torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        numpy_seed = None if self.train else int(torch.randint(2**31, (1,), generator=generator))
        points = torch.from_numpy(mesh_points(self.meshes[self.labels[i]], self.surface_points, numpy_seed))
        points = normalize_unit_sphere(points)
        start = int(torch.randint(len(points), (1,), generator=generator))
        points = points[farthest_point_sample(points, self.num_points, start=start)]
        return points @ random_rotation("so3", generator=generator).T
