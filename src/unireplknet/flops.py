"""Parameters and FLOPs of a variant, counted with PyTorch's own ``FlopCounterMode``.

FLOPs are reported as multiply-accumulates (MACs), the convention of the UniRepLKNet paper and of
most ConvNet papers: ``FlopCounterMode`` counts a multiply and an add separately, so its total is
divided by two. Only convolutions and matrix products are counted (normalisations, activations and
element-wise ops are a few percent at most and conventionally left out).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_macs", "count_params", "model_info"]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on ``x`` (whole batch)."""
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    return counter.get_total_flops() // 2


def model_info(name: str, size: int = 224, batch: int = 1, **kwargs: Any) -> dict[str, Any]:
    """Parameters and MACs of variant ``name`` in both structures, on a ``batch x in_chans x size x size`` input.

    ``kwargs`` go to :func:`unireplknet.create_model` (``in_chans``, ``num_classes``, ``kernel_sizes``, ...).
    Returns ``{"name", "size", "batch", "params_train", "params_deploy", "macs_train", "macs_deploy"}``.
    """
    from .model import create_model
    from .reparam import reparameterize

    if size < 1 or batch < 1:
        raise ValueError(f"size and batch must be positive, got size={size}, batch={batch}")
    with torch.device("meta"):  # skip the (slow, irrelevant) random initialisation
        model = create_model(name, **kwargs).eval()
    model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.zero_()
    deployed = reparameterize(copy.deepcopy(model))
    x = torch.zeros(batch, model.in_chans, size, size)
    return {
        "name": name,
        "size": size,
        "batch": batch,
        "params_train": count_params(model),
        "params_deploy": count_params(deployed),
        "macs_train": count_macs(model, x),
        "macs_deploy": count_macs(deployed, x),
    }
