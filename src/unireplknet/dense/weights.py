"""Backbone weights for dense prediction: classification or MMDet/MMSeg checkpoints into a backbone.

A features-only backbone has per-stage LayerNorms (``stage_norms``, the authors' ``norm0..3``) and
no classifier. ImageNet classification files have the classifier and no stage norms; the authors'
detection/segmentation files have the stage norms under ``backbone.`` inside a ``state_dict`` wrapper,
beside the neck and heads. Both load here: the classifier and head keys are dropped and absent stage
norms start as identity-affine LayerNorms (weight 1, bias 0), which every other key still checked
strictly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from ..checkpoint import CheckpointError, checkpoint_filter_fn, load_checkpoint, load_state_dict

__all__ = ["backbone_state_dict", "load_backbone_checkpoint"]


def backbone_state_dict(
    source: str | os.PathLike | Mapping[str, torch.Tensor], backbone: nn.Module
) -> dict[str, torch.Tensor]:
    """The weights in ``source`` converted for a ``features_only`` UniRepLKNet ``backbone``.

    Drops ``head.*`` (the classifier) and, when the file has no ``stage_norms.*`` keys, supplies
    weight-1/bias-0 norms shaped like the backbone's; a file with only some of them is an error.
    """
    state = checkpoint_filter_fn(source) if isinstance(source, Mapping) else load_state_dict(source)
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    norm_keys = [k for k in backbone.state_dict() if k.startswith("stage_norms.")]
    present = [k for k in norm_keys if k in state]
    if not present:
        for key in norm_keys:
            shape = backbone.state_dict()[key].shape
            state[key] = torch.ones(shape) if key.endswith(".weight") else torch.zeros(shape)
    elif len(present) != len(norm_keys):
        missing = sorted(set(norm_keys) - set(present))
        raise CheckpointError(f"checkpoint has only some of the per-stage norms (missing {', '.join(missing)})")
    return state


def load_backbone_checkpoint(backbone: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> nn.Module:
    """Load classification or MMDet/MMSeg weights into a ``features_only`` UniRepLKNet, strictly otherwise."""
    if not getattr(backbone, "features_only", False):
        raise ValueError("load_backbone_checkpoint needs a backbone built with features_only=True")
    return load_checkpoint(backbone, backbone_state_dict(source, backbone))
