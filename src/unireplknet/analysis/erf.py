"""Effective receptive field (ERF), the method of RepLKNet (Ding et al., CVPR 2022, Sec. 5 / appendix) and
UniRepLKNet (CVPR 2024, Fig. 1 and Table 9).

For each image ``x``, the contribution score map is ``sum_c relu(d relu(sum_k F[k, h/2, w/2]) / d x[c])``:
the gradient, with respect to the input pixels, of the central position of the last stage's feature map
``F = model.forward_features(x)`` (ReLU over channels, then summed), its negative part dropped and summed
over input channels. The maps are summed over the images. For display and comparison the sum is
log-scaled, ``log10(map + 1)``, and rescaled to ``[0, 1]``; the *high-contribution area ratio* at a threshold
``t`` is the area of the smallest centred square holding more than ``t`` of that rescaled map's total,
divided by the image area (the papers report it at t = 20/30/50/99%). A larger ratio at a low threshold
means the contribution spreads further from the centre: a larger effective receptive field.

As in the authors' ``visualize_erf.py`` / ``analyze_erf.py``, models run in eval mode, images are resized
(squashed) to ``size x size`` and normalised with the model's mean/std (ImageNet's unless the model's
pretrained config says otherwise), and maps with a non-finite value are dropped (counted in the result).
One deliberate difference: the search for the square starts at 1 x 1 instead of 3 x 3 and ends at the
whole image (the authors' stops one step short and returns None).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..files import atomic_save_figure, atomic_write_bytes, atomic_write_text

__all__ = [
    "THRESHOLDS",
    "BUNDLED_IMAGES",
    "ErfResult",
    "contribution_map",
    "accumulate_erf",
    "log_scaled",
    "high_contribution_area",
    "bundled_images",
    "folder_images",
    "prepare_image",
    "save_erf",
    "build_erf_model",
    "model_input",
    "erf_of",
    "summarise",
]

THRESHOLDS = (0.2, 0.3, 0.5, 0.99)

# scikit-image's bundled photographs (shipped inside the wheel, no download), used when no folder is given
BUNDLED_IMAGES = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry", "camera",
    "coins", "moon", "page", "brick", "grass", "gravel", "cell", "microaneurysms", "clock", "text",
)  # fmt: skip


def _feature_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The last stage's map ``(N, C, h, w)`` of a UniRepLKNet or timm ConvNet."""
    forward = getattr(model, "forward_features", None)
    features = forward(x) if forward is not None else model(x)
    if not isinstance(features, torch.Tensor) or features.ndim != 4:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(
            f"the ERF needs a model whose forward_features returns an (N, C, H, W) map; {type(model).__name__} "
            f"returns {shape} (a transformer's tokens or a pooled vector); pick a convolutional model"
        )
    return features


def contribution_map(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Contribution scores ``(H, W)`` of a batch of normalised images ``(N, C, H, W)``, summed over the batch:
    ``sum_{n,c} relu(d relu(F[n, :, h//2, w//2]).sum() / d images[n, c])`` (see the module docstring)."""
    x = images.detach().clone().requires_grad_(True)
    features = _feature_map(model, x)
    h, w = features.shape[-2:]
    central = torch.relu(features[:, :, h // 2, w // 2]).sum()
    (grad,) = torch.autograd.grad(central, x)
    return torch.relu(grad).sum((0, 1))


def accumulate_erf(model: nn.Module, images: Iterable[torch.Tensor]) -> tuple[torch.Tensor, int, int]:
    """``(summed map (H, W) in float64, images used, images dropped for a non-finite map)``; each item of
    ``images`` is one normalised ``(C, H, W)`` image, all of one size."""
    model.eval()
    total: torch.Tensor | None = None
    used = dropped = 0
    for image in images:
        scores = contribution_map(model, image.unsqueeze(0)).double()
        if not torch.isfinite(scores).all():
            dropped += 1
            continue
        total = scores if total is None else total + scores
        used += 1
    if total is None:
        raise ValueError(f"no image gave a finite contribution map ({dropped} dropped); nothing to analyse")
    return total, used, dropped


def log_scaled(scores: np.ndarray | torch.Tensor) -> np.ndarray:
    """``log10(scores + 1)`` rescaled to a maximum of 1 (the papers' heatmap and area-ratio input)."""
    data = np.log10(np.asarray(scores, dtype=np.float64) + 1.0)
    peak = data.max()
    if not peak > 0:
        raise ValueError("the contribution map is zero everywhere: the central output does not depend on the input")
    return data / peak


def high_contribution_area(data: np.ndarray, threshold: float) -> tuple[int, float]:
    """``(side, area ratio)`` of the smallest centred square of ``data (H, W)`` whose sum exceeds ``threshold``
    (in (0, 1)) of the total; ``area ratio`` is the square's area (clipped to the map) over ``H * W``."""
    if not 0 < threshold < 1:
        raise ValueError(f"the area threshold must lie strictly between 0 and 1, got {threshold}")
    h, w = data.shape
    total = data.sum()
    for radius in range(max(h, w) // 2):  # the next radius would cover the whole map
        top, left = max(h // 2 - radius, 0), max(w // 2 - radius, 0)
        window = data[top : h // 2 + radius + 1, left : w // 2 + radius + 1]
        if window.sum() > threshold * total:
            return 2 * radius + 1, window.size / (h * w)
    return max(h, w), 1.0


@dataclass
class ErfResult:
    """What ``unireplknet analyze erf`` writes to JSON: the area ratios and how they were measured."""

    model: str
    weights: str
    size: int
    images: int
    dropped: int
    area_ratio: dict[str, float]  # "20%" -> ratio of the image area
    side: dict[str, int]  # "20%" -> side of the square, pixels
    files: dict[str, str] = field(default_factory=dict)


def summarise(model_name: str, weights: str, scores: torch.Tensor, used: int, dropped: int) -> ErfResult:
    """The area ratios at :data:`THRESHOLDS` of a summed contribution map ``scores (H, W)``."""
    data = log_scaled(scores.numpy())
    ratios, sides = {}, {}
    for t in THRESHOLDS:
        side, ratio = high_contribution_area(data, t)
        key = f"{round(t * 100)}%"
        ratios[key], sides[key] = round(ratio, 6), side
    return ErfResult(model_name, weights, int(scores.shape[-1]), used, dropped, ratios, sides)


def save_erf(result: ErfResult, scores: torch.Tensor, out_dir: Path, stem: str) -> ErfResult:
    """Write ``{stem}.png`` (log-scaled heatmap), ``{stem}.npy`` (the summed map) and ``{stem}.json``, each
    atomically (through a temporary file in the same folder)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / f"{stem}.{kind}" for kind in ("png", "npy", "json")}
    fig, ax = plt.subplots(figsize=(5, 4.4))
    image = ax.imshow(log_scaled(scores.numpy()), cmap="RdYlGn", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ratios = ", ".join(f"{k}: {v:.3f}" for k, v in result.area_ratio.items())
    ax.set_title(f"ERF {result.model} ({result.weights}), {result.images} images\narea ratio {ratios}", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    atomic_save_figure(fig, paths["png"], dpi=110)
    plt.close(fig)
    npy = io.BytesIO()
    np.save(npy, scores.numpy())
    result.files = {kind: str(path) for kind, path in paths.items()}
    atomic_write_bytes(paths["npy"], npy.getvalue())
    atomic_write_text(paths["json"], json.dumps(asdict(result), indent=2) + "\n")
    return result


# -- images --------------------------------------------------------------------------------------
def prepare_image(
    image: np.ndarray, size: int, in_chans: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """A ``(H, W)`` or ``(H, W, 3|4)`` uint8 image as a normalised ``(in_chans, size, size)`` tensor: squashed
    to ``size x size`` (bilinear), grey for one channel, grey repeated for three."""
    from PIL import Image

    pil = Image.fromarray(np.asarray(image))
    pil = pil.convert("L" if in_chans == 1 else "RGB").resize((size, size), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0)
    x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
    if x.shape[0] != in_chans:
        raise ValueError(f"the model takes {in_chans} input channels; the ERF can feed it 1 (grey) or 3 (RGB)")
    mean_t = torch.tensor(mean[:in_chans] if in_chans == 3 else [sum(mean) / len(mean)]).view(-1, 1, 1)
    std_t = torch.tensor(std[:in_chans] if in_chans == 3 else [sum(std) / len(std)]).view(-1, 1, 1)
    return (x - mean_t) / std_t


def bundled_images(limit: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, uint8 image)`` of scikit-image's bundled photographs (:data:`BUNDLED_IMAGES`)."""
    from skimage import data

    for name in BUNDLED_IMAGES[:limit]:
        yield name, getattr(data, name)()


def folder_images(folder: Path, limit: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(path, uint8 image)`` of the image files under ``folder`` (recursively, sorted by path)."""
    from PIL import Image

    from ..data.folders import IMAGE_EXTENSIONS

    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not files:
        raise ValueError(f"{folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    for path in files[:limit]:
        try:
            with Image.open(path) as im:
                yield str(path), np.asarray(im.convert("RGB"))
        except OSError as e:
            raise ValueError(f"cannot read image {path}: {e}") from None


# -- models --------------------------------------------------------------------------------------
def build_erf_model(name: str, checkpoint: str | None = None, **kwargs: Any) -> nn.Module:
    """A UniRepLKNet variant or any timm model by name, without classifier (random weights unless
    ``checkpoint``: a file path or ``hf://`` reference); ``kwargs`` go to ``create_model`` (e.g.
    ``layer_scale_init_value=1``, ``in_chans=1``).

    A checkpoint goes through the package's one loading path (:func:`unireplknet.load_checkpoint`): the authors'
    formats for our variants, a plain state dict or safetensors file (e.g. a run's ``best.safetensors`` of a
    timm model) otherwise. The ERF does not use the classifier, so the file's classifier, of any size, is dropped
    (and reported); every other tensor must fit.
    """
    import timm

    import unireplknet
    from unireplknet.checkpoint import load_checkpoint

    ours = name in unireplknet.list_models()
    if not ours and not timm.list_models(name):
        raise ValueError(f"unknown model {name!r}: give a UniRepLKNet variant or a timm model name (timm.list_models)")
    create = unireplknet.create_model if ours else timm.create_model
    if checkpoint is None:
        return create(name, num_classes=0, **kwargs)
    # Built with a classifier so that fine-tuning semantics can drop the file's whatever its size; then removed.
    model = create(name, **kwargs)
    load_checkpoint(model, checkpoint, finetune=True)
    model.reset_classifier(0)
    return model


def model_input(model: nn.Module) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """``(input channels, mean, std)`` of a model: its first convolution's channels, and the mean/std of its
    timm pretrained config (ImageNet's otherwise)."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer to take image input")
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return first.in_channels, tuple(cfg.get("mean", IMAGENET_DEFAULT_MEAN)), tuple(cfg.get("std", IMAGENET_DEFAULT_STD))


def erf_of(model: nn.Module, images: Iterable[tuple[str, np.ndarray]], size: int) -> tuple[torch.Tensor, int, int]:
    """:func:`accumulate_erf` over raw images, each prepared for ``model`` at ``size x size``."""
    if size < 32:
        raise ValueError(f"the ERF image size must be at least 32 pixels (got {size})")
    in_chans, mean, std = model_input(model)
    tensors = (prepare_image(image, size, in_chans, mean, std) for _, image in images)
    return accumulate_erf(model, tensors)
