"""Video preprocessing: decoding, frame sampling, tiling, clip-consistent augmentation, datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from unireplknet.modalities.video import (  # noqa: E402
    VIDEO_EXTENSIONS,
    ArrowOfTime,
    ClipTransform,
    VideoClips,
    class_names,
    clip_views,
    collate_views,
    read_annotations,
    read_video,
    sample_indices,
    scan_class_folders,
    tile_frames,
    untile_frames,
)


def write_video(path: Path, num_frames: int = 12, width: int = 48, height: int = 32, fps: int = 10) -> Path:
    """A tiny mp4 whose frame ``i`` is flat grey of brightness ``20 * i`` (decodable back to ``i``)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"qscale": "1"}
        for i in range(num_frames):
            image = np.full((height, width, 3), 20 * i, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4")


def test_tile_is_row_major_and_untile_round_trips():
    frames = torch.arange(16.0).view(16, 1, 1, 1).expand(16, 2, 3, 5)
    grid = tile_frames(frames)
    assert grid.shape == (2, 12, 20)
    for i in range(16):
        r, c = divmod(i, 4)
        assert torch.all(grid[:, 3 * r : 3 * r + 3, 5 * c : 5 * c + 5] == i)
    batch = torch.randn(2, 9, 3, 4, 6)
    assert torch.equal(untile_frames(tile_frames(batch), 9), batch)
    with pytest.raises(ValueError, match="perfect square"):
        tile_frames(torch.zeros(8, 3, 4, 4))
    with pytest.raises(ValueError, match="equal tiles"):
        untile_frames(torch.zeros(3, 10, 12), 16)


def test_sample_indices_uniform_and_strided():
    idx = sample_indices(160, 16)  # uniform, random offset inside each segment of 10 frames
    assert torch.equal(idx // 10, torch.arange(16))
    assert torch.equal(sample_indices(160, 16, position=0.5), torch.arange(16) * 10 + 5)
    assert torch.equal(sample_indices(100, 4, stride=3, position=0.0), torch.tensor([0, 3, 6, 9]))
    assert torch.equal(sample_indices(100, 4, stride=3, position=1.0), torch.tensor([90, 93, 96, 99]))
    strided = sample_indices(100, 4, stride=3)
    assert torch.equal(strided.diff(), torch.full((3,), 3))
    assert torch.equal(sample_indices(5, 4, stride=2, position=0.5), torch.tensor([0, 2, 4, 4]))  # short: clamp
    assert sample_indices(3, 16).max() == 2 and sample_indices(3, 16).diff().min() >= 0
    with pytest.raises(ValueError, match="stride"):
        sample_indices(10, 4, stride=0)
    with pytest.raises(ValueError, match="position"):
        sample_indices(10, 4, position=1.5)


def test_read_video_decodes_frames_in_order(video_file, tmp_path):
    frames, fps = read_video(video_file)
    assert frames.shape == (12, 3, 32, 48) and frames.dtype == torch.uint8
    assert fps == pytest.approx(10.0)
    brightness = frames.float().mean(dim=(1, 2, 3))
    assert torch.allclose(brightness, 20.0 * torch.arange(12), atol=4)
    small, _ = read_video(video_file, short_side=16)
    assert small.shape == (12, 3, 16, 24)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="cannot open video"):
        read_video(bad)


def test_clip_transform_is_identical_across_frames():
    still = torch.randint(0, 256, (1, 3, 40, 60), dtype=torch.uint8).expand(9, 3, 40, 60)
    out = ClipTransform(16, train=True, color_jitter=0.4)(still)
    assert out.shape == (9, 3, 16, 16) and out.dtype == torch.float32
    assert torch.equal(out, out[:1].expand_as(out))  # one crop/flip/jitter for the whole clip
    different = torch.stack([ClipTransform(16, train=True)(still)[0] for _ in range(4)])
    assert not torch.equal(different[0], different[1])  # but drawn afresh per clip


def test_clip_views_multi_clip_multi_crop():
    video = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 3, 8, 24).clone()
    video[..., :8] = 0  # left third dark, so the three crops differ
    views = clip_views(video, num_frames=4, size=8, num_clips=2, num_crops=3)
    assert views.shape == (6, 3, 16, 16)
    frames = untile_frames(views, 4)  # (6, 4, 3, 8, 8)
    assert torch.equal(frames[0].amax(dim=(0, 2, 3)), frames[0].amin(dim=(0, 2, 3)))  # left crop: dark third only
    assert not torch.equal(frames[0], frames[1])
    # clip 1 starts later in time than clip 0 (same crop), so its frames are brighter
    assert frames[4].mean() > frames[1].mean()


def test_read_annotations_formats(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x_000001_000011.mp4").touch()
    (tmp_path / "list.txt").write_text("# comment\nvids/one.mp4 jump\n\nvids/two words.mp4 3\n")
    assert read_annotations(tmp_path / "list.txt") == [
        (tmp_path / "vids/one.mp4", "jump"),
        (tmp_path / "vids/two words.mp4", "3"),
    ]
    (tmp_path / "list.csv").write_text("path,label\nv/1.mp4,run\n")
    assert read_annotations(tmp_path / "list.csv", root="/data") == [(Path("/data/v/1.mp4"), "run")]
    (tmp_path / "k400.csv").write_text("label,youtube_id,time_start,time_end,split\na,x,1,11,train\nb,y,0,10,train\n")
    assert read_annotations(tmp_path / "k400.csv") == [
        (tmp_path / "a" / "x_000001_000011.mp4", "a"),
        (tmp_path / "y_000000_000010.mp4", "b"),
    ]
    (tmp_path / "bad.csv").write_text("file,class\nv.mp4,run\n")
    with pytest.raises(ValueError, match="header"):
        read_annotations(tmp_path / "bad.csv")
    (tmp_path / "bad.txt").write_text("lonely\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_annotations(tmp_path / "bad.txt")
    assert class_names(["10", "9", "2"]) == ["2", "9", "10"] and class_names(["b", "a", "b"]) == ["a", "b"]


def test_video_clips_dataset_train_and_eval(tmp_path, video_file):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "v.mp4").write_bytes(video_file.read_bytes())
    items = scan_class_folders(tmp_path, VIDEO_EXTENSIONS)
    assert [label for _, label in items] == ["cat", "dog"]
    train = VideoClips(items, ["cat", "dog"], num_frames=4, size=8, train=True)
    x, y = train[1]
    assert x.shape == (3, 16, 16) and y == 1
    test = VideoClips(items, ["cat", "dog"], num_frames=4, size=8, stride=2, train=False, num_clips=2, num_crops=3)
    views, target = test[1]
    assert views.shape == (6, 3, 16, 16) and target == (1, 1)
    maps, targets = collate_views([test[0], test[1]])
    assert maps.shape == (12, 3, 16, 16)
    assert targets.tolist() == [[0, 0]] * 6 + [[1, 1]] * 6
    with pytest.raises(ValueError, match="missing"):
        VideoClips([(tmp_path / "nope.mp4", "cat")], ["cat"], num_frames=4, size=8, train=False)
    with pytest.raises(ValueError, match="known classes"):
        VideoClips(items, ["cat"], num_frames=4, size=8, train=False)


def test_arrow_of_time_splits_share_no_frame_and_pairs_are_reversed():
    videos = [
        torch.randint(0, 256, (40, 3, 10, 14), dtype=torch.uint8),
        torch.randint(0, 256, (30, 3, 12, 10), dtype=torch.uint8),
    ]
    kw = dict(num_frames=4, stride=2, size=8, block_frames=10, test_every=3)
    train, test = ArrowOfTime(videos, split="train", **kw), ArrowOfTime(videos, split="test", **kw)
    for v in range(2):
        seen = {int(f) for i in range(len(train)) if train.frame_indices(i)[0] == v for f in train.frame_indices(i)[1]}
        held = {int(f) for i in range(len(test)) if test.frame_indices(i)[0] == v for f in test.frame_indices(i)[1]}
        assert held == set(range(20, 30)) and seen and not seen & held  # block 2 of 10 frames is test
    from collections import Counter

    def placements(direction):  # (video, frame, tile) over all training samples of one direction
        return Counter(
            (train.frame_indices(i)[0], int(f), tile)
            for i in range(direction, len(train), 2)
            for tile, f in enumerate(train.frame_indices(i)[1])
        )

    assert placements(0) == placements(1)  # wrapped training windows: frame identity says nothing of the label
    forward, backward = test[2], test[3]
    assert (forward[1], backward[1]) == (0, 1)
    assert torch.equal(untile_frames(forward[0], 4), untile_frames(backward[0], 4).flip(0))
    single = ArrowOfTime(videos, split="test", layout="single", **kw)
    assert single[0][0].shape == (3, 8, 8) and torch.equal(single[0][0], single[1][0])  # baseline: chance by design
    with pytest.raises(ValueError, match="window"):
        ArrowOfTime(videos, split="test", num_frames=16, stride=4, size=8)
    with pytest.raises(ValueError, match="val_every"):
        ArrowOfTime(videos, split="val", **kw)


def test_arrow_of_time_validation_blocks_come_from_training_blocks_only():
    videos = [torch.zeros(60, 3, 8, 8, dtype=torch.uint8)]  # blocks of 10: 2 and 5 are test (test_every=3)
    kw = dict(num_frames=4, stride=1, size=8, block_frames=10, test_every=3)

    def frames(split, **extra):
        data = ArrowOfTime(videos, split=split, **kw, **extra)
        return {int(f) for i in range(len(data)) for f in data.frame_indices(i)[1]}

    test, full_train = frames("test"), frames("train")
    train, val = frames("train", val_every=2), frames("val", val_every=2)
    assert test == set(range(20, 30)) | set(range(50, 60)) and frames("test", val_every=2) == test
    assert val == set(range(10, 20)) | set(range(40, 50))  # training blocks 0, 1, 3, 4: every 2nd is validation
    assert train == set(range(10)) | set(range(30, 40)) and train | val == full_train
    with pytest.raises(ValueError, match="test_every"):
        ArrowOfTime(videos, split="test", test_every=1)


def test_frame_order_negatives_are_fixed_non_identity_permutations_of_the_positives():
    videos = [torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)]  # blocks of 10: 1 and 3 test
    kw = dict(num_frames=4, stride=1, size=8, block_frames=10, test_every=2, negative="shuffled")
    train, test = ArrowOfTime(videos, split="train", **kw), ArrowOfTime(videos, split="test", **kw)
    assert train.classes == ("ordered", "shuffled") and len(test) == 2 * 2 * 7
    for data, draws in ((train, 20), (test, 1)):  # 4 frames: 1 in 24 permutations is the identity
        for i in range(0, len(data), 2):
            ordered = data.frame_indices(i)[1]
            for _ in range(draws):
                shuffled = data.frame_indices(i + 1)[1]
                assert torch.equal(shuffled.sort().values, ordered.sort().values)  # same frames ...
                assert not torch.equal(shuffled, ordered)  # ... never in their true order

    def negatives(data):
        return torch.stack([data.frame_indices(i)[1] for i in range(1, len(data), 2)])

    fixed = negatives(test)
    assert torch.equal(negatives(test), fixed)  # every epoch scores the same test set ...
    assert torch.equal(negatives(ArrowOfTime(videos, split="test", **kw)), fixed)  # ... and every model
    assert not torch.equal(negatives(ArrowOfTime(videos, split="test", shuffle_seed=1, **kw)), fixed)
    seen = {int(f) for i in range(len(train)) for f in train.frame_indices(i)[1]}
    held = {int(f) for i in range(len(test)) for f in test.frame_indices(i)[1]}
    assert held == set(range(10, 20)) | set(range(30, 40)) and seen == set(range(50)) - held
    (ordered, label0), (shuffled, label1) = test[0], test[1]
    order = test.permutations[0]
    assert (label0, label1) == (0, 1) and torch.equal(untile_frames(shuffled, 4), untile_frames(ordered, 4)[order])
    single = ArrowOfTime(videos, split="test", layout="single", **kw)
    assert all(torch.equal(single[i][0], single[i + 1][0]) for i in range(0, len(single), 2))  # chance by design
    with pytest.raises(ValueError, match="negative"):
        ArrowOfTime(videos, split="test", num_frames=4, negative="swapped")
    with pytest.raises(ValueError, match="num_frames >= 2"):
        ArrowOfTime(videos, split="test", num_frames=1, negative="shuffled")
