"""The points Task: datasets from config, the projection model, loss, metrics, predict with --save-input."""

from __future__ import annotations

import pytest
import torch

trimesh = pytest.importorskip("trimesh")

from unireplknet.config import config_defaults, resolve_config  # noqa: E402
from unireplknet.engine import predict  # noqa: E402
from unireplknet.modalities.points import OrthographicProjection  # noqa: E402
from unireplknet.models.points import PointCloudNet  # noqa: E402
from unireplknet.tasks import get_task  # noqa: E402
from unireplknet.tasks.points import PointsTask  # noqa: E402

TINY = dict(name="unireplknet_a", depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (7,), (7,), (3,)))


def tiny_cfg(**data) -> dict:
    cfg = config_defaults(PointsTask.config_schema)
    cfg["model"] = dict(TINY)
    cfg["data"].update(num_points=64, surface_points=256, projection={"resolution": 32, "mode": "depth"})
    cfg["data"].update(data)
    return cfg


def test_points_task_mesh_folder_end_to_end_without_engine(tmp_path):
    assert get_task("points") is PointsTask
    shapes = {"box": trimesh.creation.box(), "cone": trimesh.creation.cone(0.5, 1.0)}
    for split in ("train", "val"):
        for label, mesh in shapes.items():
            (tmp_path / split / label).mkdir(parents=True)
            mesh.export(tmp_path / split / label / f"{label}.off")
    cfg = tiny_cfg(dataset="mesh_folder", train=str(tmp_path / "train"), val=str(tmp_path / "val"))
    cfg["predict"]["save_input"] = str(tmp_path / "png")
    task = PointsTask(cfg)
    train, val = task.build_datasets()
    assert task.classes == ["box", "cone"]
    model = task.build_model()
    assert isinstance(model, PointCloudNet) and isinstance(model.projection, OrthographicProjection)
    batch = torch.stack([train[0][0], train[1][0]])
    assert batch.shape == (2, 64, 3)
    task.loss(model(batch), torch.tensor([0, 1]), train=True).backward()
    metrics = task.new_metrics()
    model.eval()
    with torch.no_grad():
        outputs = model(torch.stack([val[0][0], val[1][0]]))
    metrics.update(outputs, torch.tensor([0, 1]))
    assert metrics.compute()["top1"] in (0.0, 50.0, 100.0)
    [result] = predict(task, model, [tmp_path / "val" / "cone" / "cone.off"], top_k=2)
    assert [t["class"] for t in result["top"]] in (["box", "cone"], ["cone", "box"])
    assert sum(t["probability"] for t in result["top"]) == pytest.approx(1.0, abs=1e-5)
    png = tmp_path / "png" / "cone_input.png"
    assert result["input_png"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"


def test_points_task_cgal_poses_from_an_archive(tmp_path):
    import io
    import tarfile

    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, mesh in (("box", trimesh.creation.box()), ("ball", trimesh.creation.icosphere(subdivisions=1))):
            data = mesh.export(file_type="off").encode()
            info = tarfile.TarInfo(f"data/meshes/{name}.off")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cfg = tiny_cfg(dataset="cgal_poses")
    cfg["data"]["cgal_poses"].update(
        meshes=["box", "ball"], archive=str(archive), cache_dir=str(tmp_path / "cache"),
        train_samples_per_class=2, test_samples_per_class=3,
    )  # fmt: skip
    task = PointsTask(cfg)
    train, val = task.build_datasets()
    assert task.classes == ["box", "ball"] and len(train) == 4 and len(val) == 6
    assert train[0][0].shape == (64, 3) and val[5][1] == 1


def test_points_task_config_errors(tmp_path):
    with pytest.raises(ValueError, match="data.root"):
        PointsTask(tiny_cfg(dataset="modelnet40")).build_datasets()
    with pytest.raises(ValueError, match="data.train and data.val"):
        PointsTask(tiny_cfg(dataset="scanobjectnn")).build_datasets()
    with pytest.raises(ValueError, match="'data.dataset' must be one of 'modelnet40', .*, got 'shapenet'"):
        resolve_config(PointsTask.config_schema, {"data": {"dataset": "shapenet"}})
    with pytest.raises(ValueError, match=r"data.dataset=cgal_poses is a bundled demo .* data.root \(--data\)"):
        PointsTask(tiny_cfg(dataset="cgal_poses", root=str(tmp_path))).build_datasets()
    with pytest.raises(ValueError, match="projection mode"):
        task = PointsTask(tiny_cfg(projection={"resolution": 8, "mode": "colour"}))
        task.classes = ["a"]
        task.build_model()


def test_cli_train_predict_points(tmp_path, cli):
    import numpy as np

    for split in ("train", "val"):
        for label, mesh in (("box", trimesh.creation.box()), ("cone", trimesh.creation.cone(0.5, 1.0))):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(2):
                mesh.export(tmp_path / split / label / f"{label}{i}.stl")
    settings = [
        "model.depths=[1,1,1,1]", "model.dims=[8,16,32,64]", "model.kernel_sizes=[[3],[7],[7],[3]]",
        "data.dataset=mesh_folder", f"data.train={tmp_path / 'train'}", f"data.val={tmp_path / 'val'}",
        "data.num_points=64", "data.surface_points=256", "data.projection.resolution=32",
        "data.batch_size=2", "train.epochs=1", "aug=null",
    ]  # fmt: skip
    cli(
        "train",
        "--task",
        "points",
        *[a for s in settings for a in ("--set", s)],
        "--output",
        tmp_path / "runs",
        "--name",
        "p",
    )
    cloud = tmp_path / "cloud.xyz"
    np.savetxt(cloud, trimesh.sample.sample_surface(trimesh.creation.box(), 300, seed=0)[0])
    png_dir = tmp_path / "png"
    result = cli("predict", tmp_path / "runs" / "p" / "deploy.safetensors", cloud, "--save-input", png_dir)
    assert "box" in result.output and "cone" in result.output and (png_dir / "cloud_input.png").is_file()
