"""The bundled real-image demo: scikit-image's ``coins`` photograph with derived masks.

``skimage.data.coins()`` is a real greyscale photograph (303 x 384) of 24 coins in four rows, shipped
inside the scikit-image package (no download). It has no published labels, so we derive them with
scikit-image's own documented region-based recipe (the "segmenting the coins" example): a Sobel
elevation map, watershed from markers (pixels < 30: background, > 150: coin), hole filling, and
connected components larger than 40 pixels as coin instances. The result is checked on import into
the demo folder (exactly 24 instances). These are real images with algorithmically derived, not
hand-drawn, masks.

Split without shared coins: rows 1-2 (y < 150) train, rows 3-4 (y >= 150) validate. Training images
are 18 overlapping 128 x 128 tiles of the top band; validation is the whole bottom band (153 x 384,
12 coins). Classes: 0 background, 1 coin. One folder serves both tasks:

    ROOT/{train,val}/images/*.png       RGB (grey replicated)
    ROOT/{train,val}/masks/*.png        class ids (the ``folder`` segmentation layout)
    ROOT/{train,val}/instances.json     COCO-format boxes and RLE masks, category 1 "coin"
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.sources import default_cache_dir

__all__ = ["COINS_CLASSES", "coins_instances", "write_coins_demo", "default_demo_root"]

COINS_CLASSES = ("background", "coin")
_VERSION = "coins-demo v1"
_SPLIT_ROW = 150  # between the second and third row of coins
_TILE = 128
_TILE_ORIGINS = [(y, x) for y in (0, _SPLIT_ROW - _TILE) for x in range(0, 384 - _TILE + 1, 32)]
_MIN_PART = 20  # pixels of a coin cut by a tile edge worth labelling as an instance


def default_demo_root() -> Path:
    """``coins-demo`` in the demo data cache (:func:`~unireplknet.data.sources.default_cache_dir`)."""
    return default_cache_dir() / "coins-demo"


def coins_instances() -> tuple[np.ndarray, np.ndarray]:
    """The coins photograph ``(303, 384)`` uint8 and its instance labels (0 background, 1..24 coins)."""
    try:
        from scipy import ndimage
        from skimage import data, filters, measure, segmentation
    except ImportError as e:
        raise ImportError(f"the coins demo needs scikit-image ({e.name}); pip install 'unireplknet[dense]'") from e

    image = data.coins()
    markers = np.zeros(image.shape, dtype=np.uint8)
    markers[image < 30] = 1
    markers[image > 150] = 2
    coins = segmentation.watershed(filters.sobel(image), markers) == 2
    coins = ndimage.binary_fill_holes(coins)
    labels = measure.label(coins)
    sizes = np.bincount(labels.ravel())
    labels[sizes[labels] <= 40] = 0  # specks, not coins
    labels = measure.label(labels > 0)
    if labels.max() != 24:
        raise RuntimeError(f"deriving the coin masks found {labels.max()} coins instead of 24 (scikit-image changed?)")
    return image, labels


def _coco_json(entries: list[tuple[str, np.ndarray]]) -> dict:
    from pycocotools import mask as mask_utils

    images, annotations = [], []
    for image_id, (file_name, instances) in enumerate(entries, start=1):
        h, w = instances.shape
        images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        for k in np.unique(instances[instances > 0]):
            mask = np.asfortranarray((instances == k).astype(np.uint8))
            if mask.sum() < _MIN_PART:
                continue
            rle = mask_utils.encode(mask)
            ys, xs = np.nonzero(mask)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
                    "area": int(mask.sum()),
                    "iscrowd": 0,
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                }
            )
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "coin"}]}


def write_coins_demo(root: str | Path | None = None) -> Path:
    """Write the coins demo under ``root`` (default :func:`default_demo_root`) unless it is there; return it."""
    from PIL import Image

    root = Path(root) if root is not None else default_demo_root()
    stamp = root / "VERSION"
    if stamp.is_file() and stamp.read_text().strip() == _VERSION:
        return root
    image, instances = coins_instances()
    rgb = np.repeat(image[..., None], 3, axis=2)
    splits = {
        "train": [(f"coins_y{y:03d}_x{x:03d}", (slice(y, y + _TILE), slice(x, x + _TILE))) for y, x in _TILE_ORIGINS],
        "val": [("coins_bottom", (slice(_SPLIT_ROW, None), slice(None)))],
    }
    for split, crops in splits.items():
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        entries = []
        for name, window in crops:
            Image.fromarray(rgb[window]).save(root / split / "images" / f"{name}.png")
            Image.fromarray((instances[window] > 0).astype(np.uint8)).save(root / split / "masks" / f"{name}.png")
            entries.append((f"{name}.png", instances[window]))
        (root / split / "instances.json").write_text(json.dumps(_coco_json(entries)))
    (root / "README.txt").write_text(__doc__ or "")
    stamp.write_text(_VERSION + "\n")
    return root
