"""UniRepLKNet: a universal large-kernel ConvNet, exact and easy to use.

>>> import unireplknet
>>> model = unireplknet.create_model("unireplknet_a", num_classes=10)
>>> unireplknet.reparameterize(model.eval())  # exact inference structure
"""

from __future__ import annotations

from typing import Any

from .checkpoint import (
    CheckpointError,
    LoadReport,
    checkpoint_filter_fn,
    load_checkpoint,
    load_state_dict,
    save_safetensors,
)
from .layers import GRN, DilatedReparamBlock, LayerNorm2d, SEBlock, UniRepLKNetBlock
from .model import VARIANTS, UniRepLKNet, create_model, default_cfgs, list_models
from .reparam import merge_dilated_branches, reparameterize

__version__ = "0.1.0"

__all__ = [
    "create_model",
    "list_models",
    "reparameterize",
    "UniRepLKNet",
    "UniRepLKNetBlock",
    "DilatedReparamBlock",
    "GRN",
    "SEBlock",
    "LayerNorm2d",
    "merge_dilated_branches",
    "load_checkpoint",
    "load_state_dict",
    "save_safetensors",
    "checkpoint_filter_fn",
    "CheckpointError",
    "LoadReport",
    "VARIANTS",
    "default_cfgs",
    "create_detector",
    "create_segmenter",
]

# Dense-prediction builders load torchvision detection / segmentation_models_pytorch on first use only.
_DENSE_BUILDERS = {"create_detector": "detection", "create_segmenter": "segmentation"}


def __getattr__(name: str) -> Any:
    if name in _DENSE_BUILDERS:
        import importlib

        return getattr(importlib.import_module(f".dense.{_DENSE_BUILDERS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
