"""The classification task: metrics, losses, datasets (folders, timm/torchvision) and prediction."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from unireplknet.config import resolve_config
from unireplknet.data import find_fashion_mnist, read_idx
from unireplknet.engine import predict
from unireplknet.tasks import get_task
from unireplknet.tasks.classification import ClassificationMetrics, ClassificationTask, classification_loss, top_classes

TINY = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [7], [7], [3]]}


def make_task(**sections: dict) -> object:
    task = get_task("classify")
    return task(resolve_config(task.config_schema, {"task": "classify", **sections}))


def test_metrics_match_direct_computation() -> None:
    logits, labels = torch.randn(50, 7), torch.randint(0, 7, (50,))
    whole, halves = ClassificationMetrics(7), [ClassificationMetrics(7), ClassificationMetrics(7)]
    loss = F.cross_entropy(logits, labels)
    whole.update(logits, labels, loss)
    halves[0].update(logits[:20], labels[:20], F.cross_entropy(logits[:20], labels[:20]))
    halves[1].update(logits[20:], labels[20:], F.cross_entropy(logits[20:], labels[20:]))
    result = whole.compute()
    assert result["top1"] == pytest.approx(100 * (logits.argmax(1) == labels).float().mean().item())
    top5 = (logits.topk(5).indices == labels[:, None]).any(1).float().mean().item()
    assert result["top5"] == pytest.approx(100 * top5)
    assert result["loss"] == pytest.approx(loss.item(), rel=1e-6)
    assert whole.confusion.sum() == 50 and whole.confusion[labels[0], logits[0].argmax()] >= 1
    # summing the statistics of two shards (as the engine's all-reduce does) gives the whole
    for mine, other in zip(halves[0].state_tensors(), halves[1].state_tensors(), strict=True):
        mine += other
    assert halves[0].compute() == pytest.approx(result)
    soft = ClassificationMetrics(7)
    soft.update(logits, F.one_hot(labels, 7).float() * 0.8 + 0.02)  # Mixup-style targets count by argmax
    assert soft.compute()["top1"] == pytest.approx(result["top1"]) and "loss" not in soft.compute()
    assert ClassificationMetrics(3).compute() == {}


def test_confusion_report(tmp_path: Path) -> None:
    metrics = ClassificationMetrics(3, ["a", "b", "c"])
    metrics.update(torch.eye(3)[[0, 1, 2, 2]], torch.tensor([0, 1, 2, 1]))
    paths = metrics.report(tmp_path)
    assert paths["confusion_matrix"].suffix == ".png" and Image.open(paths["confusion_matrix"]).size[0] > 100
    assert '"matrix": [[1, 0, 0], [0, 1, 1], [0, 0, 1]]' in (tmp_path / "confusion_matrix.json").read_text()


def test_losses_and_mixup() -> None:
    task = make_task(aug={"label_smoothing": 0.2, "mixup": 0.4})
    logits, labels = torch.randn(8, 10), torch.randint(0, 10, (8,))
    assert task.loss(logits, labels, False) == pytest.approx(F.cross_entropy(logits, labels).item())
    assert task.loss(logits, labels, True) == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.2).item())
    x, soft = task.batch_transform()(torch.randn(8, 1, 28, 28), labels)
    assert soft.shape == (8, 10) and torch.allclose(soft.sum(1), torch.ones(8))
    expected = -(soft * logits.log_softmax(-1)).sum(-1).mean()
    assert task.loss(logits, soft, True) == pytest.approx(expected.item())
    assert make_task().batch_transform() is None


def test_classification_loss_target_forms() -> None:
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 2, 1, 1])
    expected = F.cross_entropy(logits, labels)
    assert torch.allclose(classification_loss(logits, labels), expected)
    assert torch.allclose(classification_loss(logits, torch.stack([labels, torch.arange(4)], 1)), expected)
    assert torch.allclose(classification_loss(logits, F.one_hot(labels, 3).float()), expected)
    smoothed = F.cross_entropy(logits, labels, label_smoothing=0.3)
    assert torch.allclose(classification_loss(logits.bfloat16().float(), labels, 0.3), smoothed, atol=0.05)
    assert classification_loss(logits.bfloat16(), labels).dtype == torch.float32


def test_classification_task_base_class_plumbing() -> None:
    class Toy(ClassificationTask):
        name = "toy"
        build_datasets = build_model = predict_input = None

    task = Toy({"aug": {"label_smoothing": 0.25}})
    with pytest.raises(ValueError, match="toy task's class list is unknown"):
        task.new_metrics()
    task.set_classes(("a", "b", "c"))
    assert task.num_classes == 3 and task.state_dict() == {"classes": ["a", "b", "c"]}
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 2, 0])
    assert task.loss(logits, labels, True) == pytest.approx(
        F.cross_entropy(logits, labels, label_smoothing=0.25).item()
    )
    assert task.loss(logits, labels, False) == pytest.approx(F.cross_entropy(logits, labels).item())
    assert task.train_metrics().class_names == ["a", "b", "c"]
    views = torch.tensor([[4.0, 0.0, 0.0], [0.0, 3.0, 0.0]])  # two views of one sample: their softmax is averaged
    probs = views.softmax(-1).mean(0)
    top = task.predict_output(Path("x"), views, inputs=views, context=None, model=nn.Identity(), top_k=2)["top"]
    assert [(t["class"], t["probability"]) for t in top] == [
        ("a", round(probs[0].item(), 6)),
        ("b", round(probs[1].item(), 6)),
    ]
    restored = Toy({"aug": {"label_smoothing": 0.0}})
    restored.load_state_dict(task.state_dict())
    restored.set_classes(["a", "b", "c"])
    with pytest.raises(ValueError, match="differ from the checkpoint"):
        restored.set_classes(["a", "b"])
    top = top_classes(torch.tensor([0.2, 0.5, 0.3]), task.classes, k=2)
    assert top == [{"class": "b", "index": 1, "probability": 0.5}, {"class": "c", "index": 2, "probability": 0.3}]


def test_fashion_mnist_splits() -> None:
    task = make_task()
    train, val = task.build_datasets()
    test = task.build_test_dataset()
    # the default run: a fixed 20,000 training images, validation on 5,000 others, the report on the test set
    assert (len(train), len(val), len(test)) == (20_000, 5_000, 10_000)
    assert not set(train.indices) & set(val.indices) and val.images is train.images and test.images is not train.images
    assert task.in_chans == 1 and task.img_size == 28 and len(task.classes) == 10
    image, label = val[0]
    assert image.shape == (1, 28, 28) and label == int(train.labels[val.indices[0]])
    again_train, again_val = make_task().build_datasets()
    assert again_train.indices == train.indices and again_val.indices == val.indices  # fixed, not per run
    full = make_task(data={"train_subset": None, "eval_subset": 100})
    full_train, full_val = full.build_datasets()
    assert (len(full_train), len(full_val), len(full.build_test_dataset())) == (55_000, 100, 100)
    assert set(full_train.indices).isdisjoint(val.indices) and set(full_val.indices) <= set(val.indices)
    on_test = make_task(data={"eval_split": "test"})
    assert len(on_test.build_datasets()[1]) == 10_000 and on_test.build_test_dataset() is None
    for data, message in (
        ({"train_subset": -3}, "train_subset"),
        ({"val_size": 60_000}, "val_size"),
        ({"eval_split": "validation"}, "eval_split"),
    ):
        with pytest.raises(ValueError, match=message):
            make_task(data=data).build_datasets()


def test_image_folders_and_predict(tmp_path: Path) -> None:
    colours = {"blue": (0, 0, 255), "red": (255, 0, 0)}
    for split in ("train", "val"):
        for name, colour in colours.items():
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (40 + i, 36), colour).save(tmp_path / split / name / f"{i}.jpg")
    task = make_task(model=TINY, data={"root": str(tmp_path), "img_size": 32}, aug={"randaugment": "rand-m9-mstd0.5"})
    train, evaluation = task.build_datasets()
    assert task.kind == "folder" and task.classes == ["blue", "red"] and len(train) == len(evaluation) == 6
    image, label = train[4]
    assert image.shape == (3, 32, 32) and label == 1
    model = task.build_model()
    assert model.head.fc.out_features == 2 and model.in_chans == 3
    predictions = predict(task, model, [tmp_path / "val" / "red" / "0.jpg"], top_k=5)
    top = predictions[0]["top"]
    assert len(top) == 2 and {t["class"] for t in top} == {"blue", "red"}
    assert sum(t["probability"] for t in top) == pytest.approx(1.0, abs=1e-5)
    # a checkpoint's task state fixes the classes; a dataset with other classes is refused
    restored = make_task(model=TINY, data={"root": str(tmp_path)})
    restored.load_state_dict({**task.state_dict(), "classes": ["cat", "dog"]})
    with pytest.raises(ValueError, match="differ from the checkpoint"):
        restored.build_datasets()


def test_torchvision_dataset_through_timm(tmp_path: Path) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for source in find_fashion_mnist().glob("t10k-*.gz"):
        with gzip.open(source) as f, open(raw / source.stem, "wb") as out:
            shutil.copyfileobj(f, out)
        shutil.copy(raw / source.stem, raw / source.stem.replace("t10k", "train"))
        (raw / source.name).symlink_to(source)
        (raw / source.name.replace("t10k", "train")).symlink_to(source)
    task = make_task(data={"dataset": "torch/fashion_mnist", "root": str(tmp_path), "in_chans": 1, "img_size": 28,
                           "eval_split": "test", "eval_subset": 10})  # fmt: skip
    train, evaluation = task.build_datasets()
    assert len(train) == 10_000 and len(evaluation) == 10 and task.classes[0].startswith("T-shirt")
    image, label = evaluation[0]
    labels = read_idx(find_fashion_mnist() / "t10k-labels-idx1-ubyte.gz")
    assert image.shape == (1, 28, 28) and label == labels[evaluation.indices[0]]


def test_evaluation_alone_does_not_read_the_training_folder(tmp_path: Path) -> None:
    """``unireplknet eval`` builds only the evaluation split once a checkpoint's task state names the classes."""
    for split, names in (("train", ("blue", "red", "green")), ("val", ("blue", "red"))):
        for name in names:
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (36, 36), (0, 0, 255)).save(tmp_path / split / name / "0.jpg")
    trained = make_task(model=TINY, data={"root": str(tmp_path), "img_size": 32})
    trained.build_datasets()
    restored = make_task(model=TINY, data={"root": str(tmp_path), "img_size": 32})
    restored.load_state_dict(trained.state_dict())
    (tmp_path / "train" / "red" / "0.jpg").write_bytes(b"not an image")  # never opened
    shutil.rmtree(tmp_path / "train" / "green")  # the class list comes from the checkpoint, not this folder
    evaluation = restored.build_eval_dataset()
    assert len(evaluation) == 2 and restored.classes == ["blue", "green", "red"]
    assert [label for _, label in evaluation] == [0, 2]
    with pytest.raises(ValueError, match="class list"):
        make_task(model=TINY, data={"root": str(tmp_path)}).num_classes  # noqa: B018 (nothing restored, nothing built)
