"""Decoding: a video file -> ``(T, 3, H, W)`` uint8 frames with PyAV (imported only when decoding)."""

from __future__ import annotations

import os

import torch

__all__ = ["VIDEO_EXTENSIONS", "read_video"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")


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
