"""Reading point clouds: point files (``.txt``/``.xyz``/``.pts``/``.npy``) and meshes (trimesh, imported
only when a mesh is read) -> ``(N, 3)`` points."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

__all__ = ["MESH_EXTENSIONS", "POINT_EXTENSIONS", "load_points", "load_mesh", "mesh_points"]

MESH_EXTENSIONS = (".off", ".ply", ".stl", ".obj")
POINT_EXTENSIONS = (".txt", ".xyz", ".pts", ".npy")


def load_points(path: str | os.PathLike, num_surface_points: int = 10000, seed: int | None = 0) -> torch.Tensor:
    """The xyz points of one file as ``(N, 3)`` float32.

    Point files: ``.txt``/``.xyz``/``.pts`` (one point per line, comma- or space-separated, first three
    columns used; ModelNet's ``x,y,z,nx,ny,nz`` included), ``.npy`` (``(N, >=3)`` array, read without
    pickle). Meshes (``.off``/``.ply``/``.stl``/``.obj``) are loaded with trimesh and
    ``num_surface_points`` points are sampled uniformly on their surface (``seed`` fixes the draw); a
    ``.ply`` holding only vertices is read as a point cloud.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ValueError(f"point-cloud file {os.fspath(path)!r} does not exist")
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    elif suffix in POINT_EXTENSIONS:
        with open(path) as f:
            delimiter = "," if "," in f.readline() else None
        array = np.loadtxt(path, delimiter=delimiter, ndmin=2, dtype=np.float32)
    elif suffix in MESH_EXTENSIONS:
        array = mesh_points(load_mesh(path), num_surface_points, seed)
    else:
        raise ValueError(
            f"cannot read {os.fspath(path)!r}: expected one of {', '.join(POINT_EXTENSIONS + MESH_EXTENSIONS)}"
        )
    if array.ndim != 2 or array.shape[1] < 3 or len(array) == 0:
        raise ValueError(f"{os.fspath(path)!r} holds an array of shape {array.shape}; expected (N >= 1, >= 3)")
    return torch.from_numpy(np.ascontiguousarray(array[:, :3], dtype=np.float32))


def load_mesh(source: Path | BinaryIO, *, file_type: str | None = None, name: str | None = None):
    """A mesh read with trimesh (a ``.ply`` may come back as a point cloud); ValueError if unreadable.

    ``source`` is a file path or an open binary file (then ``file_type``, e.g. ``"obj"``, says its format and
    ``name`` what to call it in errors, e.g. ``catalogue.sh3f:chair.obj``). Materials are not read (only the
    geometry is used), so an OBJ needs neither its ``.mtl`` nor its textures.
    """
    import trimesh

    suffix = f".{file_type}" if file_type else Path(source).suffix.lower()
    name = name or os.fspath(source)
    try:
        return trimesh.load(
            source, file_type=file_type, force="mesh" if suffix != ".ply" else None, process=False, skip_materials=True
        )
    except Exception as e:  # trimesh raises many exception types for malformed files
        raise ValueError(f"trimesh cannot read {name!r}: {e}") from None


def mesh_points(geometry, count: int, seed: int | np.random.Generator | None) -> np.ndarray:
    """``count`` points sampled uniformly on a mesh's surface, or a point cloud's own vertices."""
    import trimesh

    if isinstance(geometry, trimesh.Scene):
        geometry = geometry.to_mesh()
    if isinstance(geometry, trimesh.PointCloud) or len(getattr(geometry, "faces", ())) == 0:
        return np.asarray(geometry.vertices, dtype=np.float32)
    points, _ = trimesh.sample.sample_surface(geometry, count, seed=seed)
    return np.asarray(points, dtype=np.float32)
