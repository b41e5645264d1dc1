"""Dense prediction with UniRepLKNet: semantic segmentation, object detection, instance segmentation.

Submodules load their heavy dependencies on import, so this package stays light:

* :mod:`.segmentation`: smp encoders (``tu-unireplknet_*``), :func:`create_segmenter`, sliding-window inference;
* :mod:`.detection`: :func:`create_detector` (torchvision Mask R-CNN / Faster R-CNN / RetinaNet / FCOS);
* :mod:`.datasets`: ADE20K and image/mask folders, COCO-format detection data;
* :mod:`.metrics`: mIoU / pixel accuracy, COCO box and mask AP;
* :mod:`.demo`: the bundled real-image demo (scikit-image's ``coins`` photograph with derived masks);
* :mod:`.visualize`: colour label-map PNGs and drawn detections;
* :mod:`.param_groups`: layer-wise lr decay groups for networks around the backbone.

The training engine drives them through ``--task segment`` and ``--task detect``
(:mod:`unireplknet.tasks.segment`, :mod:`unireplknet.tasks.detect`).
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["check_choice"]


def check_choice(value: str, choices: Collection[str], what: str) -> None:
    """ValueError naming ``what`` and the allowed ``choices`` unless ``value`` is one of them."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
