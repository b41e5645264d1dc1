"""UniRepLKNet: a universal large-kernel ConvNet, exact and easy to use.

>>> import unireplknet
>>> model = unireplknet.create_model("unireplknet_a", num_classes=10)
>>> unireplknet.reparameterize(model.eval())  # exact inference structure
"""

from __future__ import annotations

import os
from typing import Any

from .checkpoint import (
    CheckpointError,
    checkpoint_filter_fn,
    is_training_structure,
    load_checkpoint,
    load_state_dict,
    save_safetensors,
)
from .layers import GRN, DilatedReparamBlock, LayerNorm2d, SEBlock, UniRepLKNetBlock
from .model import VARIANTS, UniRepLKNet, list_models
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
    "VARIANTS",
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


def create_model(
    name: str,
    *,
    num_classes: int = 1000,
    in_chans: int = 3,
    deploy: bool = False,
    checkpoint: str | os.PathLike | None = None,
    **kwargs: Any,
) -> UniRepLKNet:
    """Build a UniRepLKNet variant, optionally loading weights.

    Args:
        name: one of :func:`list_models` (``unireplknet_a`` ... ``unireplknet_xl``).
        num_classes: classifier outputs (0: pooled features, no Linear).
        in_chans: input channels.
        deploy: build the re-parameterized inference structure.
        checkpoint: local ``.pth``/``.pt``/``.safetensors`` file in the authors' or our format
            (training or deploy structure), or ``hf://DingXiaoH/UniRepLKNet/<file>``. When the file
            is in the training structure and ``deploy=True``, the model is built in the training
            structure, loaded, then re-parameterized.
        **kwargs: any other :class:`UniRepLKNet` argument (``drop_path_rate``, ``kernel_sizes``,
            ``features_only``, ``grad_checkpointing``, ...).
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(VARIANTS)}")
    variant = VARIANTS[name]
    kwargs.setdefault("depths", variant.depths)
    kwargs.setdefault("dims", variant.dims)
    if checkpoint is None:
        return UniRepLKNet(in_chans=in_chans, num_classes=num_classes, deploy=deploy, **kwargs)
    state = load_state_dict(checkpoint)
    file_is_trained = is_training_structure(state)
    model = UniRepLKNet(in_chans=in_chans, num_classes=num_classes, deploy=deploy and not file_is_trained, **kwargs)
    if kwargs.get("features_only", False):
        from .dense.weights import backbone_state_dict

        state = backbone_state_dict(state, model)  # no classifier; stage norms start as identity if absent
    load_checkpoint(model, state)
    if deploy and file_is_trained:
        reparameterize(model.eval())
    return model
