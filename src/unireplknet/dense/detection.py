"""Object detection and instance segmentation: torchvision detectors over a UniRepLKNet FPN.

:func:`create_detector` returns a plain torchvision model (Mask R-CNN, Faster R-CNN, RetinaNet or
FCOS) whose ``backbone`` is :class:`UniRepLKNetFPN`: the four normalised stage maps (strides 4, 8,
16, 32) through torchvision's Feature Pyramid Network. It is used like any torchvision detector::

    detector = unireplknet.create_detector("unireplknet_t", arch="mask_rcnn", num_classes=80)
    losses = detector(images, targets)  # train mode: dict of losses
    detections = detector.eval()(images)  # [{'boxes', 'labels', 'scores', 'masks'}]

The paper's COCO numbers use Cascade Mask R-CNN, which torchvision does not provide; Mask R-CNN is
the closest maintained, compile-free detector with masks.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7

from ..checkpoint import load_checkpoint
from ..model import VARIANTS, UniRepLKNet
from . import check_choice
from .param_groups import prefixed_group_matcher

__all__ = ["ARCHS", "UniRepLKNetFPN", "create_detector", "Detections", "TrainableDetector"]

# arch -> (torchvision class, backbone stages fed to the FPN, extra FPN levels)
ARCHS: dict[str, tuple[type[nn.Module], tuple[int, ...], str]] = {
    "mask_rcnn": (MaskRCNN, (0, 1, 2, 3), "maxpool"),  # P2-P5 + P6 by max-pooling, as torchvision's R-CNNs
    "faster_rcnn": (FasterRCNN, (0, 1, 2, 3), "maxpool"),
    "retinanet": (RetinaNet, (1, 2, 3), "p6p7"),  # P3-P5 + P6, P7 from P5, as RetinaNet/FCOS
    "fcos": (FCOS, (1, 2, 3), "p6p7"),
}


class UniRepLKNetFPN(nn.Module):
    """UniRepLKNet stage maps through a Feature Pyramid Network.

    ``(N, C, H, W)`` -> ordered dict of ``(N, out_channels, H / s, W / s)`` maps, one per level
    (keys ``'0'``, ``'1'``, ... for the backbone stages, then the extra levels' names).

    Args:
        body: a UniRepLKNet built with ``features_only=True``; its ``out_indices`` feed the FPN.
        out_channels: FPN width.
        extra: ``"maxpool"`` (one more level by max-pooling the last) or ``"p6p7"`` (two strided convs).
    """

    def __init__(self, body: UniRepLKNet, out_channels: int = 256, extra: str = "maxpool") -> None:
        super().__init__()
        if not body.features_only:
            raise ValueError("the FPN body must be built with features_only=True")
        if extra not in ("maxpool", "p6p7"):
            raise ValueError(f"extra must be 'maxpool' or 'p6p7', got {extra!r}")
        self.body = body
        blocks = LastLevelMaxPool() if extra == "maxpool" else LastLevelP6P7(out_channels, out_channels)
        self.fpn = FeaturePyramidNetwork([body.dims[i] for i in body.out_indices], out_channels, blocks)
        self.out_channels = out_channels  # what torchvision's detectors read

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.body(x)
        return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps)))


def create_detector(
    name: str = "unireplknet_a",
    *,
    num_classes: int,
    arch: str = "mask_rcnn",
    checkpoint: str | os.PathLike | None = None,
    checkpoint_skip: Sequence[str] = (),
    fpn_channels: int = 256,
    min_size: int = 800,
    max_size: int = 1333,
    box_head_dim: int = 1024,
    mask_head_channels: int = 256,
    detector_kwargs: dict[str, Any] | None = None,
    **backbone_kwargs: Any,
) -> nn.Module:
    """A torchvision detector with a UniRepLKNet + FPN backbone.

    Args:
        name: backbone variant (``unireplknet_a`` ... ``unireplknet_xl``).
        num_classes: object classes, background excluded; targets' ``labels`` run 1..num_classes.
        arch: ``mask_rcnn``, ``faster_rcnn``, ``retinanet`` or ``fcos``.
        checkpoint: backbone weights: ImageNet classification (authors' or ours) or the authors'
            MMDet/MMSeg file (``state_dict`` wrapper, ``backbone.`` prefix, ``norm0..3``), loaded strictly.
        checkpoint_skip: names or patterns of backbone tensors the checkpoint may lack or hold in another shape.
        fpn_channels: FPN width.
        min_size, max_size: torchvision's resizing of input images (shorter side, longer side cap).
        box_head_dim, mask_head_channels: R-CNN box-head MLP width and mask-head conv width
            (torchvision's defaults; smaller for small data or CPU).
        detector_kwargs: more keywords for the torchvision class (score thresholds, anchor generator...).
        **backbone_kwargs: UniRepLKNet keywords (``drop_path_rate``, ``depths``, ``kernel_sizes``, ...).

    Returns:
        the torchvision model; ``model.backbone.body`` is the UniRepLKNet.
    """
    check_choice(name, VARIANTS, "backbone")
    check_choice(arch, ARCHS, "detector")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (background excluded), got {num_classes}")
    cls, out_indices, extra = ARCHS[arch]
    variant = VARIANTS[name]
    backbone_kwargs.setdefault("depths", variant.depths)
    backbone_kwargs.setdefault("dims", variant.dims)
    body = UniRepLKNet(num_classes=0, features_only=True, out_indices=out_indices, **backbone_kwargs)
    if checkpoint is not None:
        load_checkpoint(body, checkpoint, skip=checkpoint_skip)
    backbone = UniRepLKNetFPN(body, fpn_channels, extra)
    classes = num_classes + 1  # torchvision counts the background as class 0
    kwargs = dict(min_size=min_size, max_size=max_size)
    if arch in ("mask_rcnn", "faster_rcnn"):
        roi_size = 7  # torchvision's box RoIAlign output
        kwargs["box_head"] = TwoMLPHead(fpn_channels * roi_size**2, box_head_dim)
        kwargs["box_predictor"] = FastRCNNPredictor(box_head_dim, classes)
    if arch == "mask_rcnn":
        kwargs["mask_head"] = MaskRCNNHeads(fpn_channels, (mask_head_channels,) * 4, 1)
        kwargs["mask_predictor"] = MaskRCNNPredictor(mask_head_channels, mask_head_channels, classes)
    kwargs.update(detector_kwargs or {})
    if arch in ("mask_rcnn", "faster_rcnn"):
        return cls(backbone, None, **kwargs)  # torchvision wants num_classes=None beside its own predictors
    return cls(backbone, classes, **kwargs)


class Detections:
    """Per-image torchvision detections ``[{'boxes', 'labels', 'scores', ['masks']}]``.

    A plain container (not a list) on purpose: generic output comparisons skip it, because two
    float-equivalent models may keep a different number of detections (a score at the threshold).
    """

    def __init__(self, items: list[dict[str, torch.Tensor]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]

    def __iter__(self):
        return iter(self.items)


class TrainableDetector(nn.Module):
    """A torchvision detector driven as ``outputs = model(inputs)``, as the training engine does.

    ``inputs`` is ``(images, targets)``: lists of ``(3, H, W)`` images in [0, 1] and their targets
    (in eval mode also a plain ``(N, 3, H, W)`` batch). Training mode returns torchvision's dict of
    losses; eval mode ignores the targets and returns
    ``{'detections': Detections, 'features': the backbone + FPN maps}`` (the features make the
    trained-vs-re-parameterized comparison exact). ``detector`` is the torchvision model.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(
        self, inputs: tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]] | torch.Tensor
    ) -> dict[str, Any]:
        if isinstance(inputs, torch.Tensor):
            if self.training:
                raise ValueError("training a detector needs (images, targets), not an image batch alone")
            inputs = (list(inputs), None)
        images, targets = inputs
        if self.training:
            return self.detector(list(images), list(targets))
        features: dict[str, torch.Tensor] = {}
        handle = self.detector.backbone.register_forward_hook(lambda module, args, out: features.update(out))
        try:
            detections = self.detector(list(images))
        finally:
            handle.remove()
        return {"detections": Detections(detections), "features": features}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """timm layer-wise lr decay groups: the backbone's stem and blocks, then the FPN and heads."""
        return prefixed_group_matcher(self.detector.backbone.body, "detector.backbone.body.", coarse)
