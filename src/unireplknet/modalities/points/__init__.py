"""Point clouds as images: normalise, sample a fixed number of points, project to a ``3 x H x W`` map.

The recipe: centre each cloud and scale it into the unit sphere (:func:`normalize_unit_sphere`), keep
``P`` well-spread points (:func:`farthest_point_sample`), augment in training (:class:`PointAugment`:
rotation about the up axis or over all of SO(3), scaling, jitter, point dropout), then project.

Which projection ships: :class:`OrthographicProjection`, fixed and parameter-free. Each of the three
channels is the view along one coordinate axis, rasterised onto the plane of the other two: a pixel
holds the depth of the point nearest to a viewer on that axis' positive side (``(1 + c) / 2`` in
``(0, 1]``, 0 where no point falls) or plain occupancy. The paper instead uses P2P's *learned*
projection (a point encoder whose features are scattered into the image plane and coloured by a small
network). Anything with the same call signature, ``(B, P, 3) -> (B, C, H, W)``, can replace it in
:class:`~unireplknet.models.points.PointCloudNet`, and its parameters then train with the backbone.
Optionally (``align="pca"``) the projection first turns each cloud into its principal-axis frame
(:func:`pca_align`), which makes the views independent of the object's pose; P2P has no such step.

* :mod:`.io`: point files and meshes (trimesh, imported only where needed);
* :mod:`.transforms`: normalisation, farthest-point sampling, augmentation;
* :mod:`.projection`: points -> map;
* :mod:`.datasets`: ModelNet40 (``modelnet40_normal_resampled``), ScanObjectNN (``.h5``, h5py imported
  when read), folders of mesh files (points sampled on the surface);
* :mod:`.demo`: shapes in random poses (:class:`RandomPoses`) and the real meshes of Debian's
  ``libcgal-demo`` for a pose-invariant recognition demo (:class:`MeshPoses`; the archive:
  :mod:`unireplknet.data.sources`);
* :mod:`.furniture`: Sweet Home 3D's furniture catalogues (Debian's ``sweethome3d-furniture``) as an
  11-class ModelNet-style benchmark split by model (:class:`FurniturePoses`);
* :mod:`.features`: the baselines' hand-made shape descriptor and nearest-neighbour classifier.
"""

from __future__ import annotations

from ...data.sources import CGAL_DATA_ARCHIVE, CGAL_DEMO_MESHES
from .datasets import MeshFolder, ModelNet40, PointClouds, ScanObjectNN
from .demo import MeshPoses, RandomPoses, cgal_meshes
from .features import histogram_features, nearest_neighbour_top1, shape_histogram
from .furniture import (
    FURNITURE_CLASS_RULES,
    FURNITURE_CLASSES,
    FURNITURE_EXCLUDED_NAMES,
    FurnitureModel,
    FurniturePoses,
    furniture_class,
    furniture_clouds,
    furniture_models,
    read_catalogue,
    split_by_model,
)
from .io import MESH_EXTENSIONS, POINT_EXTENSIONS, load_mesh, load_points, mesh_points
from .projection import OrthographicProjection, pca_align
from .transforms import PointAugment, farthest_point_sample, normalize_unit_sphere, random_rotation

__all__ = [  # what the parts export, alphabetically
    "CGAL_DATA_ARCHIVE",
    "CGAL_DEMO_MESHES",
    "cgal_meshes",
    "farthest_point_sample",
    "FURNITURE_CLASS_RULES",
    "FURNITURE_CLASSES",
    "FURNITURE_EXCLUDED_NAMES",
    "furniture_class",
    "furniture_clouds",
    "furniture_models",
    "FurnitureModel",
    "FurniturePoses",
    "histogram_features",
    "load_mesh",
    "load_points",
    "MESH_EXTENSIONS",
    "mesh_points",
    "MeshFolder",
    "MeshPoses",
    "ModelNet40",
    "nearest_neighbour_top1",
    "normalize_unit_sphere",
    "OrthographicProjection",
    "pca_align",
    "POINT_EXTENSIONS",
    "PointAugment",
    "PointClouds",
    "random_rotation",
    "RandomPoses",
    "read_catalogue",
    "ScanObjectNN",
    "shape_histogram",
    "split_by_model",
]
