"""Point clouds as images: normalise, sample a fixed number of points, project to a ``3 x H x W`` map.

The recipe (modalities.md): centre each cloud and scale it into the unit sphere
(:func:`normalize_unit_sphere`), keep ``P`` well-spread points (:func:`farthest_point_sample`),
augment in training (:class:`PointAugment`: rotation about the up axis or over all of SO(3),
scaling, jitter, point dropout), then project.

Which projection ships: :class:`OrthographicProjection`, fixed and parameter-free. Each of the three
channels is the view along one coordinate axis, rasterised onto the plane of the other two: a pixel
holds the depth of the point nearest to a viewer on that axis' positive side (``(1 + c) / 2`` in
``(0, 1]``, 0 where no point falls) or plain occupancy. The paper instead uses P2P's *learned*
projection (a point encoder whose features are scattered into the image plane and coloured by a small
network). Anything with the same call signature, ``(B, P, 3) -> (B, C, H, W)``, can replace it in
:class:`PointCloudNet`, and its parameters then train with the backbone. Optionally
(``align="pca"``) the projection first turns each cloud into its principal-axis frame
(:func:`pca_align`), which makes the views independent of the object's pose; P2P has no such step.

Datasets: ModelNet40 (``modelnet40_normal_resampled``), ScanObjectNN (``.h5``), folders of mesh files
(``.off``/``.ply``/``.stl``/``.obj`` via trimesh, points sampled on the surface) and the real meshes of
Debian's ``libcgal-demo`` for a pose-invariant recognition demo (:class:`MeshPoses`). trimesh and
h5py are imported only where needed.
"""

from __future__ import annotations

import math
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

__all__ = [
    "MESH_EXTENSIONS",
    "POINT_EXTENSIONS",
    "normalize_unit_sphere",
    "farthest_point_sample",
    "random_rotation",
    "PointAugment",
    "OrthographicProjection",
    "pca_align",
    "PointCloudNet",
    "load_points",
    "PointClouds",
    "ModelNet40",
    "ScanObjectNN",
    "MeshFolder",
    "CGAL_DEMO_MESHES",
    "cgal_meshes",
    "MeshPoses",
    "shape_histogram",
]

MESH_EXTENSIONS = (".off", ".ply", ".stl", ".obj")
POINT_EXTENSIONS = (".txt", ".xyz", ".pts", ".npy")


# -- preprocessing ------------------------------------------------------------------------------------


def normalize_unit_sphere(points: torch.Tensor) -> torch.Tensor:
    """Centre ``(..., N, 3)`` points on their centroid and scale the farthest one to distance 1."""
    centred = points - points.mean(dim=-2, keepdim=True)
    radius = centred.norm(dim=-1).amax(dim=-1, keepdim=True).unsqueeze(-1)
    return centred / radius.clamp_min(torch.finfo(points.dtype).tiny)


def farthest_point_sample(points: torch.Tensor, num: int, *, start: int | None = 0) -> torch.Tensor:
    """Indices of ``num`` points chosen greedily, each the farthest from those already chosen.

    Args:
        points: ``(N, D)``; distances use the first three coordinates.
        num: points to keep. When ``num > N`` every point is kept and the chosen sequence repeats
            (``num`` indices are always returned).
        start: index of the first point; ``None`` draws it at random (training).

    Returns:
        ``(num,)`` int64 indices into ``points``.
    """
    n = points.shape[0]
    if n == 0 or num < 1:
        raise ValueError(f"farthest-point sampling needs points and num >= 1, got {n} points and num={num}")
    # a NumPy loop: ~2x less per-step overhead than torch for these small vector operations
    xyz = points[:, :3].detach().cpu().double().numpy()
    current = int(torch.randint(n, (1,))) if start is None else start
    chosen = np.empty(min(num, n), dtype=np.int64)
    nearest = np.full(n, np.inf)
    for i in range(len(chosen)):
        chosen[i] = current
        offset = xyz - xyz[current]
        np.minimum(nearest, np.einsum("ij,ij->i", offset, offset), out=nearest)
        current = int(nearest.argmax())
    indices = torch.from_numpy(chosen)
    return indices.repeat(math.ceil(num / n))[:num] if num > n else indices


def random_rotation(kind: str = "up", up_axis: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random ``3 x 3`` rotation: about ``up_axis`` by a uniform angle (``"up"``), uniform over SO(3)
    (``"so3"``, from a normalised Gaussian quaternion) or the identity (``"none"``)."""
    if kind == "none":
        return torch.eye(3)
    if kind == "up":
        angle = 2 * math.pi * float(torch.rand((), generator=generator))
        c, s = math.cos(angle), math.sin(angle)
        a, b = [ax for ax in range(3) if ax != up_axis]
        rot = torch.eye(3)
        rot[a, a], rot[a, b], rot[b, a], rot[b, b] = c, -s, s, c
        return rot
    if kind == "so3":
        w, x, y, z = (q := torch.randn(4, generator=generator, dtype=torch.float64)) / q.norm()
        return torch.tensor(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
            ],
            dtype=torch.float32,
        )
    raise ValueError(f"rotation must be 'up', 'so3' or 'none', got {kind!r}")


class PointAugment(nn.Module):
    """Training augmentation of one ``(P, 3)`` cloud; ``P`` is kept.

    In order: rotation (:func:`random_rotation`), uniform random scaling in ``scale``, per-point
    Gaussian jitter (``jitter`` sigma, clipped at ``jitter_clip``), and point dropout: a random
    fraction up to ``dropout`` of the points is replaced by the first point (PointNet++'s trick that
    keeps ``P`` fixed while thinning the cloud).
    """

    def __init__(
        self,
        rotation: str = "up",
        up_axis: int = 1,
        scale: tuple[float, float] = (0.8, 1.25),
        jitter: float = 0.01,
        jitter_clip: float = 0.05,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        random_rotation(rotation)  # validates the name
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is the largest fraction of points dropped, in [0, 1), got {dropout}")
        self.rotation, self.up_axis, self.scale = rotation, up_axis, tuple(scale)
        self.jitter, self.jitter_clip, self.dropout = jitter, jitter_clip, dropout

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        points = points @ random_rotation(self.rotation, self.up_axis).T
        lo, hi = self.scale
        points = points * (lo + (hi - lo) * torch.rand(()))
        if self.jitter > 0:
            points = points + (self.jitter * torch.randn_like(points)).clamp(-self.jitter_clip, self.jitter_clip)
        if self.dropout > 0:
            drop = torch.rand(len(points)) < self.dropout * torch.rand(())
            points = torch.where(drop[:, None], points[:1], points)
        return points


def pca_align(points: torch.Tensor) -> torch.Tensor:
    """Express centred ``(B, P, 3)`` clouds in their principal axes: ``(B, P, 3)``, same distances.

    Coordinate 0 runs along the direction of largest variance, 2 along the smallest; each axis points
    where the cloud's third moment along it is positive. A cloud and any rotated (or mirrored) copy
    thus map to the same coordinates, up to sampling noise and ties between principal variances
    (near-symmetric shapes). The frame is treated as a constant for gradients.
    """
    centred = points - points.mean(dim=1, keepdim=True)
    covariance = centred.detach().double().transpose(1, 2) @ centred.detach().double()
    axes = torch.linalg.eigh(covariance).eigenvectors.flip(-1).to(points.dtype)  # largest variance first
    coords = centred @ axes
    signs = torch.where(coords.detach().pow(3).sum(dim=1, keepdim=True) < 0, -1.0, 1.0).to(points.dtype)
    return coords * signs


class OrthographicProjection(nn.Module):
    """Three axis-aligned orthographic views of a point cloud as a ``3 x H x W`` map; no parameters.

    Input ``(B, P, 3)`` points inside the unit cube ``[-1, 1]^3`` (unit-sphere clouds are; points
    outside are clamped to the border pixels). Channel ``k`` looks along axis ``k`` onto the plane of
    axes ``k+1`` (rows) and ``k+2`` (columns), modulo 3. ``mode="depth"``: each pixel holds
    ``(1 + c_k) / 2`` of its point with the largest coordinate ``c_k`` (the one nearest a viewer at
    ``+inf``), 0 if empty; ``mode="occupancy"``: 1 where any point falls, else 0. Output
    ``(B, 3, resolution, resolution)``; differentiable in the depth values.

    ``align="pca"`` first turns each cloud into its principal-axis frame (:func:`pca_align`), so the
    three views no longer depend on the cloud's orientation: use it when test poses are arbitrary.
    """

    def __init__(self, resolution: int = 64, mode: str = "depth", align: str | None = None) -> None:
        super().__init__()
        if mode not in ("depth", "occupancy"):
            raise ValueError(f"projection mode must be 'depth' or 'occupancy', got {mode!r}")
        if align not in (None, "pca"):
            raise ValueError(f"projection align must be null or 'pca', got {align!r}")
        if resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {resolution}")
        self.resolution, self.mode, self.align = resolution, mode, align
        self.out_chans = 3

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"expected points of shape (B, P, 3), got {tuple(points.shape)}")
        if self.align == "pca":
            points = pca_align(points)
        b, r = points.shape[0], self.resolution
        cells = ((points.detach() + 1) * (r / 2)).floor().long().clamp_(0, r - 1)  # (B, P, 3)
        views = []
        for k in range(3):
            rows, cols = cells[..., (k + 1) % 3], cells[..., (k + 2) % 3]
            if self.mode == "depth":
                value = ((points[..., k] + 1) / 2).clamp(1e-6, 1)
            else:
                value = torch.ones_like(points[..., k])
            canvas = value.new_zeros(b, r * r)
            views.append(canvas.scatter_reduce(1, rows * r + cols, value, reduce="amax", include_self=True))
        return torch.stack(views, dim=1).view(b, 3, r, r)


class PointCloudNet(nn.Module):
    """A projection (points -> map) followed by an unchanged image model.

    ``(B, P, 3) -> projection -> (B, C, H, W) -> image_model -> logits``. The image model keeps its own
    parameter names under ``image_model.`` (not ``backbone.``, a prefix checkpoint loaders strip);
    :meth:`group_matcher` forwards its groups for layer-wise learning-rate decay, the projection
    joining the stem group.
    """

    def __init__(self, projection: nn.Module, image_model: nn.Module) -> None:
        super().__init__()
        self.projection, self.image_model = projection, image_model

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.image_model(self.projection(points))

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        def prefixed(rule):
            if isinstance(rule, str):
                return rule.replace("^", "^image_model\\.", 1)
            return [(prefixed(pattern), order) for pattern, order in rule]

        groups = {name: prefixed(rule) for name, rule in self.image_model.group_matcher(coarse).items()}
        groups["stem"] = rf"^projection|{groups['stem']}"
        return groups

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.image_model.set_grad_checkpointing(enable)


# -- reading files ------------------------------------------------------------------------------------


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
        array = _mesh_points(_load_mesh(path), num_surface_points, seed)
    else:
        raise ValueError(
            f"cannot read {os.fspath(path)!r}: expected one of {', '.join(POINT_EXTENSIONS + MESH_EXTENSIONS)}"
        )
    if array.ndim != 2 or array.shape[1] < 3 or len(array) == 0:
        raise ValueError(f"{os.fspath(path)!r} holds an array of shape {array.shape}; expected (N >= 1, >= 3)")
    return torch.from_numpy(np.ascontiguousarray(array[:, :3], dtype=np.float32))


def _load_mesh(path: Path):
    import trimesh

    try:
        return trimesh.load(path, force="mesh" if path.suffix.lower() != ".ply" else None, process=False)
    except Exception as e:  # trimesh raises many exception types for malformed files
        raise ValueError(f"trimesh cannot read {os.fspath(path)!r}: {e}") from None


def _mesh_points(geometry, count: int, seed: int | np.random.Generator | None) -> np.ndarray:
    """``count`` points sampled uniformly on a mesh's surface, or a point cloud's own vertices."""
    import trimesh

    if isinstance(geometry, trimesh.Scene):
        geometry = geometry.to_mesh()
    if isinstance(geometry, trimesh.PointCloud) or len(getattr(geometry, "faces", ())) == 0:
        return np.asarray(geometry.vertices, dtype=np.float32)
    points, _ = trimesh.sample.sample_surface(geometry, count, seed=seed)
    return np.asarray(points, dtype=np.float32)


# -- datasets -----------------------------------------------------------------------------------------


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
        from .video import scan_class_folders

        items = scan_class_folders(root, MESH_EXTENSIONS + POINT_EXTENSIONS)
        self.classes = sorted({label for _, label in items})
        self.files = [p for p, _ in items]
        self.labels = [self.classes.index(label) for _, label in items]
        self.surface_points = surface_points

    def raw(self, i: int) -> torch.Tensor:
        return load_points(self.files[i], self.surface_points, seed=i if self.fixed else None)


# -- demo: recognising real meshes in new poses -----------------------------------------------------------

CGAL_DATA_ARCHIVE = Path("/usr/share/doc/libcgal-dev/data.tar.gz")
CGAL_DEMO_MESHES = ("armadillo", "bear", "blade", "bull", "bunny00", "camel", "cow", "dino", "elephant", "elk",
                    "fandisk", "femur", "hand", "homer", "lion", "man", "mushroom", "pig", "rotor", "triceratops")  # fmt: skip


def default_cache_dir() -> Path:
    """``$UNIREPLKNET_CACHE``, else ``$XDG_CACHE_HOME/unireplknet``, else ``~/.cache/unireplknet``."""
    if "UNIREPLKNET_CACHE" in os.environ:
        return Path(os.environ["UNIREPLKNET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "unireplknet"


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
        self.meshes = [_load_mesh(Path(p)) for p in meshes.values()]
        self.labels = [i % len(self.classes) for i in range(samples_per_class * len(self.classes))]
        self.surface_points, self.seed = surface_points, seed
        self.fixed = not self.train  # training always draws a fresh pose: never one of the test seeds

    def sample(self, i: int) -> torch.Tensor:
        generator = None if self.train else torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        numpy_seed = None if self.train else int(torch.randint(2**31, (1,), generator=generator))
        points = torch.from_numpy(_mesh_points(self.meshes[self.labels[i]], self.surface_points, numpy_seed))
        points = normalize_unit_sphere(points)
        start = int(torch.randint(len(points), (1,), generator=generator))
        points = points[farthest_point_sample(points, self.num_points, start=start)]
        return points @ random_rotation("so3", generator=generator).T


def shape_histogram(points: torch.Tensor, bins: int = 32, max_pairs: int = 200_000) -> torch.Tensor:
    """A rotation-invariant shape descriptor (the baseline's feature): ``(2 * bins,)``.

    The concatenation of two normalised histograms over ``[0, 2]`` of a unit-sphere cloud ``(P, 3)``:
    distances between random point pairs (Osada et al.'s D2 shape distribution) and distances to
    the centroid. Both are unchanged by any rotation, so a nearest-neighbour classifier on them needs
    no pose augmentation.
    """
    points = normalize_unit_sphere(points.double())
    pairs = torch.cdist(points, points)[torch.triu_indices(len(points), len(points), 1).unbind()]
    if len(pairs) > max_pairs:
        pairs = pairs[torch.randperm(len(pairs))[:max_pairs]]
    radial = points.norm(dim=-1)
    hists = [torch.histc(v.float(), bins=bins, min=0.0, max=2.0) for v in (pairs, radial)]
    return torch.cat([h / h.sum() for h in hists])
