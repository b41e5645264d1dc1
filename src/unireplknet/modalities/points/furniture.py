"""The furniture demo: Sweet Home 3D's furniture catalogues (Debian's ``sweethome3d-furniture``, see
:mod:`unireplknet.data.sources`) as a ModelNet-style benchmark of 11 classes, split by model.

A catalogue is a ``.sh3f`` zip file: textured OBJ models plus ``PluginFurnitureCatalog.properties`` (a Java
properties file, read with ``javaproperties``) whose numbered entries ``name#N``, ``category#N``,
``model#N`` (the OBJ inside the zip) and optionally ``modelRotation#N`` (a row-major 3 x 3 matrix that
stands the model upright, y up) describe each model. :func:`furniture_class` maps a model's category and
name to a class by the rules of :data:`FURNITURE_CLASS_RULES` (first match wins); models matching no rule
(vehicles, kitchenware, plugs, ...) are left out. Over the five Debian catalogues (820 models) the rules
select 295: table 44, chair 43, plant 40, lamp 34, person 29, sofa 23, cabinet 18, window 18, bed 16,
door 16, armchair 14.

Each selected model is loaded once with trimesh (materials skipped), turned upright, sampled on its
surface, normalised and farthest-point sampled; the points are cached as ``.npy`` under
:func:`~unireplknet.data.sources.default_cache_dir` (atomic writes), keyed by the OBJ's CRC-32, its rotation
and the point counts.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...data.sources import default_cache_dir
from .demo import RandomPoses
from .io import load_mesh, mesh_points
from .transforms import farthest_point_sample, normalize_unit_sphere

__all__ = [
    "FURNITURE_CLASS_RULES",
    "FURNITURE_CLASSES",
    "FURNITURE_EXCLUDED_NAMES",
    "FurnitureModel",
    "furniture_class",
    "read_catalogue",
    "furniture_models",
    "split_by_model",
    "furniture_clouds",
    "FurniturePoses",
]

CATALOGUE_PROPERTIES = "PluginFurnitureCatalog.properties"

_PLANT_WORDS = ("plant", "tree", "bamboo", "cactus", "ficus", "bonsai", "yucca", "orchids", "tulips", "lily",
                "spathiphyllum", "flowers", "palm", "pine", "cypress", "poplar", "maple", "acacia", "beech",
                "blossom", "bush")  # fmt: skip
# (class, catalogue categories it may come from (None: any), words of the name that select it (None: every
# model of those categories)); the first rule that matches decides, so "Desk lamp" is a lamp, not a table.
FURNITURE_CLASS_RULES: tuple[tuple[str, tuple[str, ...] | None, tuple[str, ...] | None], ...] = (
    ("person", ("Characters",), ("boy", "girl", "male", "female")),  # not the animals
    ("lamp", ("Lights",), None),
    ("door", ("Doors and windows",), ("door",)),
    ("window", ("Doors and windows",), ("window",)),
    ("armchair", None, ("armchair",)),
    ("sofa", None, ("sofa", "couch")),
    ("chair", None, ("chair",)),
    ("bed", ("Bedroom",), ("bed", "crib")),
    ("table", None, ("table", "desk")),
    ("cabinet", None, ("cabinet",)),
    ("plant", ("Living room", "Exterior"), _PLANT_WORDS),
)
FURNITURE_CLASSES = tuple(dict.fromkeys(rule[0] for rule in FURNITURE_CLASS_RULES))
# names whose words match a rule but that are other objects
FURNITURE_EXCLUDED_NAMES = frozenset(("Bedside table", "Changing table", "Dressing table", "Football table",
                                      "Pool table", "Table fan", "Table tennis", "Table tennis bat",
                                      "Armchair ottoman"))  # fmt: skip


def furniture_class(category: str, name: str) -> str | None:
    """The class of a catalogue model from its category and name (:data:`FURNITURE_CLASS_RULES`), or None."""
    if name in FURNITURE_EXCLUDED_NAMES:
        return None
    words = set(re.findall(r"[a-z]+", name.lower()))
    for label, categories, selecting in FURNITURE_CLASS_RULES:
        if categories is not None and category not in categories:
            continue
        if selecting is None or words & set(selecting):
            return label
    return None


@dataclass(frozen=True)
class FurnitureModel:
    """One model of a catalogue: where its OBJ is, what it is, and how to stand it upright."""

    catalogue: Path  # the .sh3f file
    index: int  # N of its properties entries (name#N, ...)
    name: str
    category: str
    label: str | None  # its class (:func:`furniture_class`), None if no rule selects it
    member: str  # the OBJ inside the zip
    crc: int  # CRC-32 of the OBJ as the zip stores it: identical geometry, and the cache key
    rotation: tuple[float, ...] | None  # modelRotation, 9 numbers row-major, or None

    @property
    def key(self) -> str:
        """``<catalogue stem>#<N>``: unique among the catalogues of a folder."""
        return f"{self.catalogue.stem}#{self.index}"


def read_catalogue(path: str | os.PathLike) -> list[FurnitureModel]:
    """Every model of a ``.sh3f`` catalogue, in the order of its entry numbers.

    ValueError when the file is not a zip, has no ``PluginFurnitureCatalog.properties``, or an entry lacks
    its category or name, names an OBJ the zip does not hold, or has a malformed ``modelRotation``.
    """
    import javaproperties

    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise ValueError(f"furniture catalogue {os.fspath(path)!r} is not a readable .sh3f (zip) file: {e}") from None
    with archive:
        if CATALOGUE_PROPERTIES not in archive.namelist():
            raise ValueError(
                f"furniture catalogue {os.fspath(path)!r} has no {CATALOGUE_PROPERTIES}: not a Sweet Home 3D "
                "furniture library (.sh3f)"
            )
        with archive.open(CATALOGUE_PROPERTIES) as f:
            props = javaproperties.load(f)
        members = {info.filename: info for info in archive.infolist()}
    models = []
    for index in sorted(int(k.split("#", 1)[1]) for k in props if re.fullmatch(r"model#\d+", k)):
        where = f"{os.fspath(path)}: {CATALOGUE_PROPERTIES} entry #{index}"
        missing = [key for key in ("name", "category") if not props.get(f"{key}#{index}")]
        if missing:
            raise ValueError(f"{where} has no {' or '.join(f'{key}#{index}' for key in missing)}")
        member = props[f"model#{index}"].lstrip("/")
        if member not in members:
            raise ValueError(f"{where}: model#{index}={props[f'model#{index}']!r} is not in the zip")
        rotation = None
        if f"modelRotation#{index}" in props:
            try:
                rotation = tuple(float(v) for v in props[f"modelRotation#{index}"].split())
            except ValueError:
                rotation = ()
            if len(rotation) != 9:
                raise ValueError(f"{where}: modelRotation#{index} must be 9 numbers (a 3 x 3 matrix)")
        name, category = props[f"name#{index}"].strip(), props[f"category#{index}"].strip()
        models.append(
            FurnitureModel(
                path, index, name, category, furniture_class(category, name), member, members[member].CRC, rotation
            )
        )
    return models


def furniture_models(folder: str | os.PathLike, classes: Sequence[str] = FURNITURE_CLASSES) -> list[FurnitureModel]:
    """The models of every ``*.sh3f`` in ``folder`` whose class is in ``classes``, sorted by catalogue and entry.

    ValueError for a class no rule defines, a folder without catalogues, or a class without any model.
    """
    unknown = [c for c in classes if c not in FURNITURE_CLASSES]
    if unknown:
        raise ValueError(f"unknown furniture class(es) {unknown}; the classes are {', '.join(FURNITURE_CLASSES)}")
    files = sorted(Path(folder).glob("*.sh3f"))
    if not files:
        raise ValueError(f"no furniture catalogues (*.sh3f) in {os.fspath(folder)!r}")
    models = [m for f in files for m in read_catalogue(f) if m.label in classes]
    empty = [c for c in classes if not any(m.label == c for m in models)]
    if empty:
        raise ValueError(f"no model of class(es) {empty} in the catalogues of {os.fspath(folder)!r}")
    return models


def split_by_model(
    models: Sequence[FurnitureModel], val_fraction: float, test_fraction: float, seed: int = 0
) -> dict[str, list[FurnitureModel]]:
    """``{"train", "val", "test"}`` -> models: every model in exactly one split, deterministic in ``seed``.

    Per class, models with identical OBJ files (same CRC) form one group and groups are shuffled by a
    generator seeded with ``seed`` and the class name; ``round(fraction * groups)`` (at least one) go to test,
    as many to validation, the rest (at least one) to training. ValueError when a class has too few groups.
    """
    splits: dict[str, list[FurnitureModel]] = {"train": [], "val": [], "test": []}
    for label in dict.fromkeys(m.label for m in models):
        groups: dict[int, list[FurnitureModel]] = {}
        for m in models:
            if m.label == label:
                groups.setdefault(m.crc, []).append(m)
        order = list(groups.values())
        n_test, n_val = (max(1, round(f * len(order))) for f in (test_fraction, val_fraction))
        if len(order) - n_test - n_val < 1:
            raise ValueError(
                f"furniture class {label!r} has {len(order)} distinct models: too few for one training, "
                f"{n_val} validation and {n_test} test model(s); drop it from data.furniture.classes"
            )
        rng = np.random.default_rng([seed, zlib.crc32(str(label).encode())])
        shuffled = [order[i] for i in rng.permutation(len(order))]
        for split, part in (("test", shuffled[:n_test]), ("val", shuffled[n_test : n_test + n_val]),
                            ("train", shuffled[n_test + n_val :])):  # fmt: skip
            splits[split].extend(m for group in part for m in group)
    return splits


def furniture_clouds(
    models: Sequence[FurnitureModel],
    num_points: int = 1024,
    surface_points: int = 8192,
    cache_dir: str | os.PathLike | None = None,
) -> list[torch.Tensor]:
    """Each model's ``(num_points, 3)`` cloud: upright (y up), in the unit sphere, farthest-point sampled.

    ``surface_points`` are sampled uniformly on the model's surface (seeded by its OBJ's CRC), normalised into
    the unit sphere and farthest-point sampled from point 0 to ``num_points``, as PointNet++'s preprocessed
    ModelNet files are. Done once per model and cached in ``<cache_dir>/sweethome3d_points/`` (default
    :func:`default_cache_dir`), written atomically; later calls read the cache.
    """
    target = Path(cache_dir or default_cache_dir()) / "sweethome3d_points"
    clouds, archives = [], {}
    try:
        for m in models:
            key = repr((m.member, m.crc, m.rotation, surface_points, num_points))
            path = target / f"{m.catalogue.stem}-{m.index}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy"
            if not path.is_file():
                if m.catalogue not in archives:
                    archives[m.catalogue] = zipfile.ZipFile(m.catalogue)
                data = archives[m.catalogue].read(m.member)
                mesh = load_mesh(io.BytesIO(data), file_type="obj", name=f"{os.fspath(m.catalogue)}:{m.member}")
                xyz = torch.from_numpy(mesh_points(mesh, surface_points, seed=m.crc))
                if m.rotation is not None:  # Sweet Home 3D applies modelRotation (row-major) as R @ p
                    xyz = xyz @ torch.tensor(m.rotation, dtype=xyz.dtype).view(3, 3).T
                xyz = normalize_unit_sphere(xyz)
                xyz = xyz[farthest_point_sample(xyz, num_points)]
                target.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                with open(partial, "wb") as f:
                    np.save(f, xyz.numpy())
                partial.replace(path)
            clouds.append(torch.from_numpy(np.load(path, allow_pickle=False)))
    finally:
        for archive in archives.values():
            archive.close()
    return clouds


class FurniturePoses(RandomPoses):
    """Which kind of furniture is this? Models in random poses, ``samples_per_model`` items per model.

    ``clouds`` are the models' preprocessed points (:func:`furniture_clouds`), ``labels`` their class indices
    into ``classes``; each item is one cloud turned by a random rotation (``rotation``: ``"up"``, about the
    vertical y axis, or ``"so3"``), fresh in training and fixed by ``seed`` in evaluation
    (:class:`~unireplknet.modalities.points.demo.RandomPoses`), plus ``augment`` in training.
    """

    def __init__(
        self, clouds: Sequence[torch.Tensor], labels: Sequence[int], classes: Sequence[str], *, samples_per_model: int,
        **kwargs,
    ) -> None:  # fmt: skip
        super().__init__(labels, classes, samples_per_shape=samples_per_model, **kwargs)
        if len(clouds) != len(labels):
            raise ValueError(f"{len(clouds)} clouds but {len(labels)} labels")
        self.clouds = list(clouds)

    def shape_points(self, shape: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.clouds[shape][: self.num_points]
