"""Semantic segmentation: UniRepLKNet as a ``segmentation_models_pytorch`` encoder, plus inference.

UniRepLKNet is registered with timm, so smp's universal timm encoder takes it by name::

    import segmentation_models_pytorch as smp
    import unireplknet  # registers unireplknet_a ... unireplknet_xl with timm
    net = smp.UPerNet(encoder_name="tu-unireplknet_a", encoder_weights=None, classes=150)

smp asks timm for ``features_only=True``: the four stage maps at strides 4/8/16/32, each after its
own channel LayerNorm, exactly the features of the paper's UperNet. :func:`create_segmenter` wraps
such a network in :class:`Segmenter`, which loads backbone checkpoints, accepts any input size, runs
whole-image or sliding-window inference in eval mode, and groups parameters for layer-wise lr decay.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_checkpoint
from ..model import VARIANTS
from . import check_choice
from .param_groups import prefixed_group_matcher

__all__ = ["HEADS", "Segmenter", "create_segmenter", "pad_to_multiple"]

# head name -> (smp class, our defaults for its decoder); every smp keyword can still be passed.
HEADS: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    "upernet": (smp.UPerNet, {"decoder_channels": 512}),  # the paper's MMSeg UperNet width
    "fpn": (smp.FPN, {}),
    "deeplabv3plus": (smp.DeepLabV3Plus, {}),  # asks the encoder for output stride 16 by default
}
_ENCODER_PREFIX = "net.encoder.model."


def pad_to_multiple(x: torch.Tensor, multiple: int, value: float = 0.0) -> torch.Tensor:
    """Zero-pad ``(..., H, W)`` on the bottom/right so that H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), value=value) if pad_h or pad_w else x


class Segmenter(nn.Module):
    """A UniRepLKNet-encoder segmentation network: ``(N, C, H, W)`` -> logits ``(N, num_classes, H, W)``.

    In training mode the input is padded to the network's stride and the logits cropped back. In eval
    mode, ``inference="whole"`` does the same on the whole image, ``inference="slide"`` averages the
    logits of ``crop_size`` windows taken every ``crop_stride`` pixels (MMSeg's sliding window),
    so arbitrarily large images fit in memory.

    Args:
        net: an smp model whose encoder is ``tu-unireplknet_*``.
        inference: ``"whole"`` or ``"slide"``.
        crop_size: sliding-window ``(h, w)``.
        crop_stride: sliding-window step ``(h, w)``.
    """

    def __init__(
        self,
        net: nn.Module,
        inference: str = "whole",
        crop_size: Sequence[int] = (512, 512),
        crop_stride: Sequence[int] = (341, 341),
    ) -> None:
        super().__init__()
        if inference not in ("whole", "slide"):
            raise ValueError(f"inference must be 'whole' or 'slide', got {inference!r}")
        self.net = net
        self.inference = inference
        self.crop_size = tuple(int(s) for s in crop_size)
        self.crop_stride = tuple(int(s) for s in crop_stride)
        if len(self.crop_size) != 2 or len(self.crop_stride) != 2 or min(self.crop_size + self.crop_stride) < 1:
            raise ValueError(f"crop_size and crop_stride need two positive sizes, got {crop_size} and {crop_stride}")
        self.num_classes = net.segmentation_head[0].out_channels

    @property
    def backbone(self) -> nn.Module:
        """The :class:`~unireplknet.UniRepLKNet` (``features_only=True``) inside the smp encoder."""
        return self.net.encoder.model

    @property
    def stride(self) -> int:
        return self.net.encoder.output_stride

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for any ``(N, C, H, W)``: pad to the stride, run, crop back."""
        h, w = x.shape[-2:]
        return self.net(pad_to_multiple(x, self.stride))[..., :h, :w]

    def slide(self, x: torch.Tensor) -> torch.Tensor:
        """Sliding-window logits ``(N, num_classes, H, W)``, each pixel averaged over the windows covering it."""
        n, _, h, w = x.shape
        (ch, cw), (sh, sw) = self.crop_size, self.crop_stride
        rows = max(math.ceil((h - ch) / sh), 0) + 1
        cols = max(math.ceil((w - cw) / sw), 0) + 1
        logits = x.new_zeros(n, self.num_classes, h, w)
        count = x.new_zeros(1, 1, h, w)
        for r in range(rows):
            for c in range(cols):
                # the last window in a row/column is flush with the border, as in MMSeg
                y0, x0 = max(min(r * sh, h - ch), 0), max(min(c * sw, w - cw), 0)
                y1, x1 = min(y0 + ch, h), min(x0 + cw, w)
                logits[..., y0:y1, x0:x1] += self.forward_padded(x[..., y0:y1, x0:x1])
                count[..., y0:y1, x0:x1] += 1
        return logits / count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.inference == "whole":
            return self.forward_padded(x)
        return self.slide(x)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """timm layer-wise lr decay groups: the backbone's stem and blocks, then everything else (decoder, head)."""
        return prefixed_group_matcher(self.backbone, _ENCODER_PREFIX, coarse)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {_ENCODER_PREFIX + name for name in self.backbone.no_weight_decay()}


def create_segmenter(
    name: str = "unireplknet_a",
    *,
    num_classes: int,
    head: str = "upernet",
    in_chans: int = 3,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_skip: Sequence[str] = (),
    inference: str = "whole",
    crop_size: Sequence[int] = (512, 512),
    crop_stride: Sequence[int] = (341, 341),
    head_kwargs: dict[str, Any] | None = None,
    **backbone_kwargs: Any,
) -> Segmenter:
    """A semantic-segmentation network: UniRepLKNet encoder + an smp head (UperNet, FPN or DeepLabV3+).

    Args:
        name: backbone variant (``unireplknet_a`` ... ``unireplknet_xl``).
        num_classes: output classes K; logits are ``(N, K, H, W)``.
        head: ``upernet``, ``fpn`` or ``deeplabv3plus``.
        in_chans: input channels.
        checkpoint: backbone weights: an ImageNet classification file (authors' or ours; the
            classifier is dropped, the per-stage norms start as identity) or an MMSeg/MMDet file
            (``state_dict`` wrapper, ``backbone.`` prefix; the neck and heads are dropped).
        checkpoint_skip: names or patterns of backbone tensors the checkpoint may lack or hold in another shape.
        inference: eval-mode ``whole`` or ``slide`` (see :class:`Segmenter`).
        crop_size, crop_stride: sliding-window geometry.
        head_kwargs: extra keywords for the smp class (``decoder_channels``, ``encoder_output_stride``...).
        **backbone_kwargs: UniRepLKNet keywords (``drop_path_rate``, ``depths``, ``kernel_sizes``, ...).
    """
    check_choice(name, VARIANTS, "backbone")
    check_choice(head, HEADS, "segmentation head")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    cls, defaults = HEADS[head]
    kwargs = {**defaults, **(head_kwargs or {})}
    net = cls(
        encoder_name=f"tu-{name}",
        encoder_weights=None,
        in_channels=in_chans,
        classes=num_classes,
        **kwargs,
        **backbone_kwargs,
    )
    segmenter = Segmenter(net, inference=inference, crop_size=crop_size, crop_stride=crop_stride)
    if checkpoint is not None:
        load_checkpoint(segmenter.backbone, checkpoint, skip=checkpoint_skip)
    return segmenter
