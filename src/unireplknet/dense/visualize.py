"""Pictures of dense predictions: colour label maps and drawn detections, written as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = ["palette", "save_label_png", "save_detections_png"]


def palette(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 colours, the PASCAL VOC scheme (class bits spread over R, G, B)."""
    colours = np.zeros((num_classes, 3), dtype=np.uint8)
    for index in range(num_classes):
        c, value = index, [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                value[channel] |= ((c >> channel) & 1) << shift
            c >>= 3
        colours[index] = value
    return colours


def save_label_png(labels: torch.Tensor, num_classes: int, path: str | Path) -> Path:
    """Write ``(H, W)`` class ids as a palette PNG: it shows in colour and reads back as class ids."""
    from PIL import Image

    if num_classes > 256:
        raise ValueError(f"a palette PNG holds at most 256 classes, got {num_classes}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.to(torch.uint8).cpu().numpy())
    image.putpalette(palette(256).reshape(-1).tolist())  # an 8-bit grey image becomes a palette image
    image.save(path)
    return path


def save_detections_png(
    image: torch.Tensor,
    detections: dict[str, torch.Tensor],
    class_names: Sequence[str],
    path: str | Path,
    mask_threshold: float = 0.5,
) -> Path:
    """Draw boxes (and masks, when present) of ``detections`` on ``image`` ``(3, H, W)`` in [0, 1]; write a PNG."""
    from PIL import Image
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas = (image.clamp(0, 1) * 255).to(torch.uint8).cpu()
    labels = detections["labels"].cpu().tolist()
    colours = [tuple(int(v) for v in palette(len(class_names) + 1)[label]) for label in labels]
    if "masks" in detections and len(labels):
        masks = detections["masks"][:, 0].cpu() > mask_threshold
        canvas = draw_segmentation_masks(canvas, masks, alpha=0.4, colors=colours)
    captions = [
        f"{class_names[label - 1]} {score:.2f}"
        for label, score in zip(labels, detections["scores"].cpu().tolist(), strict=True)
    ]
    canvas = draw_bounding_boxes(canvas, detections["boxes"].cpu(), labels=captions, colors=colours, width=2)
    Image.fromarray(canvas.permute(1, 2, 0).numpy()).save(path)
    return path
