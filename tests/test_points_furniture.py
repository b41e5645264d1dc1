"""The furniture demo on generated Sweet Home 3D catalogues (.sh3f zips of OBJ models + properties): parsing,
the class mapping, the split by model, the point cache, bad input, and a short training run."""

from __future__ import annotations

import zipfile

import pytest
import torch

trimesh = pytest.importorskip("trimesh")
javaproperties = pytest.importorskip("javaproperties")

from unireplknet.config import config_defaults  # noqa: E402
from unireplknet.data.sources import FURNITURE_CATALOG_DIR  # noqa: E402
from unireplknet.engine.trainer import train  # noqa: E402
from unireplknet.modalities.points import (  # noqa: E402
    FURNITURE_CLASSES,
    furniture_class,
    furniture_clouds,
    furniture_models,
    read_catalogue,
    split_by_model,
)
from unireplknet.tasks.points import PointsTask  # noqa: E402

TINY = dict(name="unireplknet_a", depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (7,), (7,), (3,)))
# shapes that tell the classes apart: chairs are tall thin boxes, tables flat boxes, beds long boxes
SHAPES = {"Chair": (0.5, 1.0, 0.5), "Table": (1.0, 0.2, 1.0), "Bed": (2.0, 0.5, 1.0)}
CATEGORIES = {"Chair": "Living room", "Table": "Living room", "Bed": "Bedroom"}


def obj(extents, scale=1.0) -> bytes:
    return trimesh.creation.box(extents=[e * scale for e in extents]).export(file_type="obj").encode()


def write_catalogue(path, entries, properties=True):
    """A .sh3f zip: ``entries`` of (name, category, OBJ bytes, modelRotation or None)."""
    props = {"id": "test", "name": "test catalogue"}
    with zipfile.ZipFile(path, "w") as archive:
        for i, (name, category, data, rotation) in enumerate(entries, start=1):
            member = f"models/m{i}/m{i}.obj"
            archive.writestr(member, data)
            props.update(
                {f"id#{i}": f"test#{i}", f"name#{i}": name, f"category#{i}": category, f"model#{i}": f"/{member}"}
            )
            if rotation:
                props[f"modelRotation#{i}"] = rotation
        if properties:
            archive.writestr("PluginFurnitureCatalog.properties", javaproperties.dumps(props))
    return path


def five_of_each(folder):
    """One catalogue, 5 distinct models per class (sizes differ so the OBJ files differ) and one unmapped model."""
    folder.mkdir(exist_ok=True)
    entries = [(name, CATEGORIES[name], obj(ext, 1 + 0.1 * k), None) for name, ext in SHAPES.items() for k in range(5)]
    entries.append(("Bus", "Vehicles", obj((3, 1, 1)), None))
    return write_catalogue(folder / "test.sh3f", entries)


def test_class_mapping_rules():
    cases = {
        ("Lights", "Desk lamp"): "lamp",  # the lamp rule comes before "desk" -> table
        ("Office", "Desk"): "table",
        ("Living room", "Armchair"): "armchair",  # not "chair"
        ("Living room", "Chair with cushion"): "chair",
        ("Doors and windows", "Double door with panes"): "door",
        ("Doors and windows", "Double-hung window"): "window",
        ("Bedroom", "Captain's bed"): "bed",
        ("Bedroom", "Bedside table"): None,  # excluded by name
        ("Characters", "Sitting female"): "person",
        ("Characters", "Dog"): None,
        ("Exterior", "Palm tree"): "plant",
        ("Kitchen", "Lower cabinet"): "cabinet",
        ("Vehicles", "Bus"): None,
    }
    assert {key: furniture_class(*key) for key in cases} == cases
    assert len(FURNITURE_CLASSES) == 11


def test_catalogue_parsing_split_by_model_and_cache(tmp_path):
    catalogue = five_of_each(tmp_path / "shelf")
    models = read_catalogue(catalogue)
    assert [m.label for m in models] == ["chair"] * 5 + ["table"] * 5 + ["bed"] * 5 + [None]
    assert models[0].name == "Chair" and models[0].member == "models/m1/m1.obj" and models[0].key == "test#1"
    selected = furniture_models(tmp_path / "shelf", ["chair", "table", "bed"])
    assert len(selected) == 15
    splits = split_by_model(selected, 0.2, 0.2, seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [9, 3, 3]
    keys = {s: {m.key for m in ms} for s, ms in splits.items()}
    assert not (keys["train"] & keys["val"] or keys["train"] & keys["test"] or keys["val"] & keys["test"])
    assert keys["train"] | keys["val"] | keys["test"] == {m.key for m in selected}
    for split in ("val", "test"):  # one model of each class
        assert sorted(m.label for m in splits[split]) == ["bed", "chair", "table"]
    again = split_by_model(selected, 0.2, 0.2, seed=0)
    assert {s: [m.key for m in ms] for s, ms in again.items()} == {s: [m.key for m in ms] for s, ms in splits.items()}
    seeds = {tuple(m.key for m in split_by_model(selected, 0.2, 0.2, seed=s)["test"]) for s in range(6)}
    assert len(seeds) > 1  # the seed moves models between splits

    clouds = furniture_clouds(splits["test"], num_points=64, surface_points=512, cache_dir=tmp_path / "cache")
    assert [c.shape for c in clouds] == [(64, 3)] * 3
    assert all(float(c.norm(dim=1).max()) <= 1 + 1e-5 for c in clouds)
    cached = sorted((tmp_path / "cache" / "sweethome3d_points").iterdir())
    assert len(cached) == 3 and not any(p.name.startswith(".") for p in cached)  # no temporary files left
    catalogue.unlink()  # the second call reads the cache only
    again = furniture_clouds(splits["test"], num_points=64, surface_points=512, cache_dir=tmp_path / "cache")
    assert all(torch.equal(a, b) for a, b in zip(clouds, again, strict=True))


def test_model_rotation_stands_models_upright(tmp_path):
    lying = obj((0.2, 0.2, 2.0))  # long along z
    write_catalogue(tmp_path / "a.sh3f", [("Chair", "Living room", lying, "1 0 0 0 0 1 0 -1 0")])  # y' = z
    [model] = read_catalogue(tmp_path / "a.sh3f")
    assert model.rotation == (1, 0, 0, 0, 0, 1, 0, -1, 0)
    [cloud] = furniture_clouds([model], num_points=128, surface_points=1024, cache_dir=tmp_path / "cache")
    extent = cloud.amax(0) - cloud.amin(0)
    assert extent[1] > 5 * extent[0] and extent[1] > 5 * extent[2]


def test_identical_models_stay_in_one_split(tmp_path):
    entries = [("Chair", "Living room", obj(SHAPES["Chair"], 1 + 0.1 * k), None) for k in range(4)]
    entries += [("Chair", "Living room", obj(SHAPES["Chair"]), None)] * 2  # the same OBJ as the first, twice more
    write_catalogue(tmp_path / "a.sh3f", entries)
    models = read_catalogue(tmp_path / "a.sh3f")
    for seed in range(5):
        splits = split_by_model(models, 0.25, 0.25, seed=seed)
        [home] = [s for s, ms in splits.items() if any(m.index == 1 for m in ms)]
        assert {m.index for m in splits[home]} >= {1, 5, 6}


def test_bad_catalogues_give_clear_errors(tmp_path):
    no_props = write_catalogue(tmp_path / "a.sh3f", [("Chair", "Living room", obj((1, 1, 1)), None)], properties=False)
    with pytest.raises(ValueError, match=r"a.sh3f' has no PluginFurnitureCatalog.properties"):
        read_catalogue(no_props)
    (tmp_path / "b.sh3f").write_text("not a zip")
    with pytest.raises(ValueError, match=r"b.sh3f' is not a readable .sh3f \(zip\) file"):
        read_catalogue(tmp_path / "b.sh3f")
    no_category = write_catalogue(tmp_path / "c.sh3f", [("Chair", "", obj((1, 1, 1)), None)])
    with pytest.raises(ValueError, match=r"c.sh3f: PluginFurnitureCatalog.properties entry #1 has no category#1"):
        read_catalogue(no_category)
    bad_rotation = write_catalogue(tmp_path / "d.sh3f", [("Chair", "Living room", obj((1, 1, 1)), "1 0 0")])
    with pytest.raises(ValueError, match="modelRotation#1 must be 9 numbers"):
        read_catalogue(bad_rotation)
    five_of_each(tmp_path / "shelf")
    with pytest.raises(ValueError, match=r"unknown furniture class\(es\) \['stool'\]; the classes are person, lamp"):
        furniture_models(tmp_path / "shelf", ["chair", "stool"])
    with pytest.raises(ValueError, match=r"no model of class\(es\) \['sofa'\]"):
        furniture_models(tmp_path / "shelf", ["chair", "sofa"])
    with pytest.raises(ValueError, match="no furniture catalogues"):
        furniture_models(tmp_path / "empty")
    models = furniture_models(tmp_path / "shelf", ["chair"])
    with pytest.raises(ValueError, match="'chair' has 5 distinct models: too few for one training, 3 validation"):
        split_by_model(models, 0.6, 0.6)


def furniture_cfg(tmp_path) -> dict:
    cfg = config_defaults(PointsTask.config_schema)
    cfg["model"].update(TINY)
    cfg["data"].update(
        dataset="furniture", root=str(tmp_path / "shelf"), num_points=64, surface_points=256, batch_size=4,
        eval_batch_size=8, projection={"resolution": 16, "mode": "depth", "align": None},
    )  # fmt: skip
    cfg["data"]["furniture"].update(
        classes=["chair", "table", "bed"], cache_dir=str(tmp_path / "cache"), train_samples_per_model=2,
        eval_samples_per_model=3,
    )  # fmt: skip
    cfg["train"].update(epochs=1, threads=1)
    cfg["output"].update(dir=str(tmp_path / "runs"), name="furniture")
    return cfg


def test_furniture_task_trains_and_reports_on_test(tmp_path):
    five_of_each(tmp_path / "shelf")
    cfg = furniture_cfg(tmp_path)
    task = PointsTask(cfg)
    train_set, val_set = task.build_datasets()
    test_set = task.build_test_dataset()
    assert task.classes == ["chair", "table", "bed"]
    assert (len(train_set), len(val_set), len(test_set)) == (18, 9, 9)
    assert train_set[0][0].shape == (64, 3) and sorted({y for _, y in val_set}) == [0, 1, 2]
    assert torch.equal(val_set[4][0], val_set[4][0])  # evaluation poses are fixed
    # validation and test are different models
    assert not any(torch.equal(a[0], b[0]) for a in val_set for b in test_set)
    summary = train(cfg)
    assert summary["val_samples"] == 9 and summary["eval_samples"] == 9 and summary["train_samples"] == 18
    assert 0.0 <= summary["eval"]["top1"] <= 100.0 and summary["deploy_max_abs_diff"] < 1e-4

    cfg["data"]["eval_split"] = "test"  # unireplknet eval --set data.eval_split=test
    task = PointsTask(cfg)
    _, evaluation = task.build_datasets()
    assert task.build_test_dataset() is None
    assert all(torch.equal(a[0], b[0]) for a, b in zip(evaluation, test_set, strict=True))


def test_furniture_task_errors(tmp_path):
    cfg = furniture_cfg(tmp_path)
    cfg["data"]["dataset"] = "cgal_poses"
    cfg["data"]["eval_split"] = "test"
    with pytest.raises(ValueError, match="data.eval_split=test needs data.dataset=furniture"):
        PointsTask(cfg).build_datasets()
    cfg = furniture_cfg(tmp_path)
    with pytest.raises(ValueError, match="no furniture catalogues"):  # data.root (--data) points at no catalogues
        PointsTask(cfg).build_datasets()


@pytest.mark.skipif(not FURNITURE_CATALOG_DIR.is_dir(), reason="Debian's sweethome3d-furniture is not installed")
def test_the_debian_catalogues_hold_the_stated_classes():
    counts = {}
    for m in furniture_models(FURNITURE_CATALOG_DIR):
        counts[m.label] = counts.get(m.label, 0) + 1
    assert counts == {"table": 44, "chair": 43, "plant": 40, "lamp": 34, "person": 29, "sofa": 23, "cabinet": 18,
                      "window": 18, "bed": 16, "door": 16, "armchair": 14}  # fmt: skip
