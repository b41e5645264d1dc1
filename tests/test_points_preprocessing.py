"""Point-cloud preprocessing: normalisation, farthest-point sampling, augmentation, projection, datasets."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

trimesh = pytest.importorskip("trimesh")
h5py = pytest.importorskip("h5py")

import unireplknet  # noqa: E402
from unireplknet.modalities.points import (  # noqa: E402
    MeshFolder,
    MeshPoses,
    ModelNet40,
    OrthographicProjection,
    PointAugment,
    ScanObjectNN,
    cgal_meshes,
    farthest_point_sample,
    load_points,
    normalize_unit_sphere,
    random_rotation,
)
from unireplknet.models.points import PointCloudNet  # noqa: E402

TINY = dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (7,), (7,), (3,)))


def test_normalize_unit_sphere():
    points = torch.randn(2, 50, 3) * 7 + torch.tensor([3.0, -2.0, 10.0])
    out = normalize_unit_sphere(points)
    assert torch.allclose(out.mean(dim=1), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(out.norm(dim=-1).amax(dim=1), torch.ones(2))


def test_farthest_point_sample():
    line = torch.tensor([[float(x), 0.0, 0.0] for x in range(11)])
    assert farthest_point_sample(line, 3).tolist() == [0, 10, 5]
    assert farthest_point_sample(line, 2, start=4).tolist() == [4, 10]
    cloud = torch.rand(300, 3)
    idx = farthest_point_sample(cloud, 64, start=None)
    assert len(set(idx.tolist())) == 64
    # greedy FPS spreads points: its minimum pairwise distance beats a random subset's
    spread = torch.pdist(cloud[idx]).min()
    assert spread > torch.pdist(cloud[torch.randperm(300)[:64]]).min()
    assert farthest_point_sample(line[:3], 7).tolist() == [0, 2, 1, 0, 2, 1, 0]
    with pytest.raises(ValueError, match="num"):
        farthest_point_sample(line, 0)


@pytest.mark.parametrize("kind", ["up", "so3"])
def test_random_rotation_is_a_rotation(kind):
    rot = random_rotation(kind, up_axis=1)
    assert torch.allclose(rot @ rot.T, torch.eye(3), atol=1e-5)
    assert torch.linalg.det(rot) == pytest.approx(1.0, abs=1e-5)
    if kind == "up":
        assert torch.allclose(rot[1], torch.tensor([0.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="rotation"):
        random_rotation("sideways")


def test_point_augment():
    points = torch.randn(100, 3)
    identity = PointAugment(rotation="none", scale=(1.0, 1.0), jitter=0.0)
    assert torch.equal(identity(points), points)
    rotated = PointAugment(rotation="up", scale=(1.0, 1.0), jitter=0.0)(points)
    assert torch.allclose(rotated[:, 1], points[:, 1]) and torch.allclose(
        rotated.norm(dim=1), points.norm(dim=1), atol=1e-5
    )
    dropped = PointAugment(rotation="none", scale=(1.0, 1.0), jitter=0.0, dropout=0.99)
    outs = [dropped(points) for _ in range(5)]
    assert all(o.shape == points.shape for o in outs)
    assert any((o == points[0]).all(dim=1).sum() > 1 for o in outs)  # dropped points became the first point
    jittered = PointAugment(rotation="none", scale=(1.0, 1.0), jitter=0.5, jitter_clip=0.05)(points)
    assert (jittered - points).abs().max() <= 0.05 + 1e-6
    with pytest.raises(ValueError, match="dropout"):
        PointAugment(dropout=1.0)


def test_orthographic_projection_places_points():
    points = torch.tensor([[[0.9, -0.9, 0.1], [-0.5, -0.9, 0.1]]])  # same (y, z) pixel in view 0
    maps = OrthographicProjection(resolution=4)(points)
    assert maps.shape == (1, 3, 4, 4)
    # view 0 looks along x onto (y rows, z cols): y=-0.9 -> row 0, z=0.1 -> col 2; nearest x=0.9
    assert maps[0, 0, 0, 2] == pytest.approx((1 + 0.9) / 2)
    assert (maps[0, 0] > 0).sum() == 1
    # view 1 along y onto (z rows, x cols): two distinct pixels, depth (1 - 0.9) / 2
    assert (maps[0, 1] > 0).sum() == 2 and maps[0, 1].max() == pytest.approx(0.05)
    occupancy = OrthographicProjection(resolution=4, mode="occupancy")(points)
    assert occupancy.unique().tolist() == [0.0, 1.0] and occupancy[0, 2].sum() == 2
    leaf = torch.rand(2, 30, 3, requires_grad=True)
    OrthographicProjection(8)(leaf * 2 - 1).sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="B, P, 3"):
        OrthographicProjection()(torch.zeros(5, 3))


def test_point_cloud_net_and_layer_decay_groups():
    from timm.optim import param_groups_layer_decay

    net = PointCloudNet(OrthographicProjection(32), unireplknet.create_model("unireplknet_a", num_classes=5, **TINY))
    assert net(torch.rand(2, 64, 3) * 2 - 1).shape == (2, 5)
    groups = param_groups_layer_decay(net, layer_decay=0.8)
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def write_mesh(path: Path) -> Path:
    trimesh.creation.box(extents=(1.0, 2.0, 3.0)).export(path)
    return path


def test_load_points_formats(tmp_path):
    cloud = np.random.rand(20, 6).astype(np.float32)
    np.savetxt(tmp_path / "a.txt", cloud, delimiter=",")
    np.savetxt(tmp_path / "b.xyz", cloud[:, :3])
    np.save(tmp_path / "c.npy", cloud)
    for name in ("a.txt", "b.xyz", "c.npy"):
        assert torch.allclose(load_points(tmp_path / name), torch.from_numpy(cloud[:, :3]), atol=1e-6)
    for ext in (".off", ".ply", ".stl", ".obj"):
        points = load_points(write_mesh(tmp_path / f"box{ext}"), num_surface_points=500)
        assert points.shape == (500, 3)
        assert torch.allclose(points.abs().amax(dim=0), torch.tensor([0.5, 1.0, 1.5]), atol=0.05)  # on the box
    trimesh.PointCloud(cloud[:, :3]).export(tmp_path / "cloud.ply")
    assert load_points(tmp_path / "cloud.ply").shape == (20, 3)
    with pytest.raises(ValueError, match="expected one of"):
        load_points(write_mesh(tmp_path / "box.off").rename(tmp_path / "box.dat"))
    with pytest.raises(ValueError, match="does not exist"):
        load_points(tmp_path / "nope.txt")


def test_modelnet40_layout(tmp_path):
    (tmp_path / "modelnet40_shape_names.txt").write_text("airplane\nnight_stand\n")
    (tmp_path / "modelnet40_train.txt").write_text("airplane_0001\nnight_stand_0002\n")
    (tmp_path / "modelnet40_test.txt").write_text("night_stand_0003\n")
    for shape in ("airplane_0001", "night_stand_0002", "night_stand_0003"):
        (tmp_path / shape.rsplit("_", 1)[0]).mkdir(exist_ok=True)
        np.savetxt(
            tmp_path / shape.rsplit("_", 1)[0] / f"{shape}.txt", np.random.rand(40, 6), delimiter=",", fmt="%.6f"
        )
    train = ModelNet40(tmp_path, "train", num_points=16, train=True, augment=PointAugment())
    assert train.classes == ["airplane", "night_stand"] and train.labels == [0, 1]
    points, label = train[1]
    assert points.shape == (16, 3) and label == 1
    test = ModelNet40(tmp_path, "test", num_points=16)
    assert torch.equal(test[0][0], test[0][0]) and test[0][0].norm(dim=1).max() <= 1 + 1e-6
    with pytest.raises(ValueError, match="modelnet40_val.txt"):
        ModelNet40(tmp_path, "val")


def test_scanobjectnn_h5(tmp_path):
    with h5py.File(tmp_path / "test_objectdataset.h5", "w") as f:
        f["data"] = np.random.rand(3, 64, 3).astype(np.float32)
        f["label"] = np.array([[0], [14], [3]], dtype=np.int8)
    ds = ScanObjectNN(tmp_path / "test_objectdataset.h5", num_points=32)
    assert len(ds) == 3 and ds.classes[14] == "toilet"
    points, label = ds[1]
    assert points.shape == (32, 3) and label == 14
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["points"] = np.zeros((1, 4, 3))
    with pytest.raises(ValueError, match="lacks"):
        ScanObjectNN(tmp_path / "bad.h5")


def test_mesh_folder(tmp_path):
    for label, ext in (("box", ".off"), ("ball", ".stl")):
        (tmp_path / label).mkdir()
        mesh = trimesh.creation.box() if label == "box" else trimesh.creation.icosphere(subdivisions=1)
        mesh.export(tmp_path / label / f"a{ext}")
    test = MeshFolder(tmp_path, num_points=32, surface_points=200)
    assert test.classes == ["ball", "box"] and test.labels == [0, 1]
    assert test[1][0].shape == (32, 3) and torch.equal(test[1][0], test[1][0])  # fixed draw in evaluation


def test_cgal_meshes_extraction_and_mesh_poses(tmp_path):
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, mesh in (("box", trimesh.creation.box()), ("cone", trimesh.creation.cone(0.5, 1.0))):
            data = mesh.export(file_type="off").encode()
            info = tarfile.TarInfo(f"data/meshes/{name}.off")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    paths = cgal_meshes(["box", "cone"], archive=archive, cache_dir=tmp_path / "cache")
    assert paths["cone"] == tmp_path / "cache" / "cgal_meshes" / "cone.off" and paths["cone"].is_file()
    archive.unlink()  # cached: no second extraction
    assert cgal_meshes(["box"], archive=archive, cache_dir=tmp_path / "cache")["box"].is_file()
    with pytest.raises(ValueError, match="libcgal-demo"):
        cgal_meshes(["bunny"], archive=archive, cache_dir=tmp_path / "cache")
    test = MeshPoses(paths, samples_per_class=3, num_points=32, surface_points=128, seed=1)
    assert len(test) == 6 and test.classes == ["box", "cone"] and test.labels[:3] == [0, 1, 0]
    a, b = test[0], test[2]
    assert torch.equal(a[0], test[0][0]) and not torch.equal(a[0], b[0])  # fixed per item, differs across items
    other_seed = MeshPoses(paths, samples_per_class=3, num_points=32, surface_points=128, seed=2)
    assert not torch.equal(a[0], other_seed[0][0])
    train = MeshPoses(paths, samples_per_class=3, num_points=32, surface_points=128, train=True)
    assert not torch.equal(train[0][0], train[0][0])  # fresh pose and sampling on every access


def test_shape_histogram_is_rotation_invariant_and_discriminative():
    from unireplknet.modalities.points import shape_histogram

    box = torch.from_numpy(
        trimesh.sample.sample_surface(trimesh.creation.box(extents=(1, 1, 4)), 400, seed=0)[0]
    ).float()
    ball = torch.from_numpy(trimesh.sample.sample_surface(trimesh.creation.icosphere(), 400, seed=0)[0]).float()
    h = shape_histogram(box, bins=16)
    assert h.shape == (32,) and torch.allclose(h.view(2, 16).sum(1), torch.ones(2))
    rotated = shape_histogram(box @ random_rotation("so3").T, bins=16)
    assert (h - rotated).abs().sum() < 0.05  # only floating-point bin-edge effects
    assert (h - shape_histogram(ball, bins=16)).abs().sum() > 0.5


def test_cached_training_items_fix_sampling_but_keep_augmentation(tmp_path):
    (tmp_path / "box").mkdir()
    trimesh.creation.box().export(tmp_path / "box" / "a.off")
    plain = MeshFolder(tmp_path, num_points=32, surface_points=200, train=True)
    assert not torch.equal(plain[0][0], plain[0][0])  # fresh surface sample and FPS start
    cached = MeshFolder(tmp_path, num_points=32, surface_points=200, train=True, cache=True)
    assert torch.equal(cached[0][0], cached[0][0])
    augmented = MeshFolder(tmp_path, num_points=32, surface_points=200, train=True, cache=True, augment=PointAugment())
    first, second = augmented[0][0], augmented[0][0]
    assert not torch.equal(first, second)
    assert torch.equal(augmented.sample(0), cached[0][0])  # same cached points underneath


def test_pca_aligned_projection_ignores_pose():
    from unireplknet.modalities.points import pca_align

    # distinct principal variances and skew along every axis, so the frame is unique
    base = torch.randn(1, 400, 3) * torch.tensor([0.5, 0.25, 0.1])
    base = normalize_unit_sphere(base + 0.3 * base.square())
    turned = base @ random_rotation("so3").T
    assert torch.allclose(pca_align(base), pca_align(turned), atol=1e-4)
    assert torch.allclose(pca_align(turned).norm(dim=-1), (turned - turned.mean(1, keepdim=True)).norm(dim=-1))

    def differing_pixels(projection):  # fraction of pixels that change with the pose
        return (projection(base) - projection(turned)).abs().gt(1e-3).float().mean()

    assert differing_pixels(OrthographicProjection(32, align="pca")) < 0.002  # only rounding at pixel borders
    assert differing_pixels(OrthographicProjection(32)) > 0.05
    with pytest.raises(ValueError, match="align"):
        OrthographicProjection(align="icp")
