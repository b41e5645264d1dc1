"""The point-cloud classifier: a projection (points -> map) followed by an unchanged image model."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PointCloudNet"]


class PointCloudNet(nn.Module):
    """A projection (points -> map) followed by an unchanged image model.

    ``(B, P, 3) -> projection -> (B, C, H, W) -> image_model -> logits``. The image model keeps its own
    parameter names under ``image_model.`` (not ``backbone.``, a prefix checkpoint loaders strip);
    :meth:`group_matcher` forwards its groups for layer-wise learning-rate decay, the projection
    joining the stem group.
    """

    def __init__(self, projection: nn.Module, image_model: nn.Module) -> None:
        super().__init__()
        self.projection, self.image_model = projection, image_model

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.image_model(self.projection(points))

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        def prefixed(rule):
            if isinstance(rule, str):
                return rule.replace("^", "^image_model\\.", 1)
            return [(prefixed(pattern), order) for pattern, order in rule]

        groups = {name: prefixed(rule) for name, rule in self.image_model.group_matcher(coarse).items()}
        groups["stem"] = rf"^projection|{groups['stem']}"
        return groups

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.image_model.set_grad_checkpointing(enable)
