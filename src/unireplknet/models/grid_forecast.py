"""The global-grid forecaster: an ``segmentation_models_pytorch`` network over the backbone, padded for the globe,
plus a frozen per-grid-point linear path (:mod:`unireplknet.tasks.grid_forecast` builds it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..modalities.forecast import grid as G

__all__ = ["GridForecaster"]


class GridForecaster(nn.Module):
    """``(N, C, H, W)`` map -> ``(N, V, H, W)`` forecast: pad (circular in W, zeros in H) to ``multiple``,
    run the smp network, crop back.

    With ``skip_features = F``, the forecast is the network's output plus a per-grid-point linear map of
    the first ``F`` input channels (the past anomalies): the buffer ``skip (V, H, W, F + 1)`` (last:
    intercept), set by :meth:`fit_skip` to the least-squares fit on the training windows and not trained,
    so the network only learns a correction to the per-point linear forecaster. The FPN decodes at stride
    4; this full-resolution path keeps what is local to one grid point.
    """

    def __init__(
        self, net: nn.Module, multiple: int = 32, skip_features: int = 0, grid: tuple[int, int] = (0, 0)
    ) -> None:
        super().__init__()
        self.net = net
        self.multiple = multiple
        self.skip_features = skip_features
        if skip_features:
            outputs = net.segmentation_head[0].out_channels
            self.register_buffer("skip", torch.zeros(outputs, *grid, skip_features + 1))

    @torch.no_grad()
    def fit_skip(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Least-squares per-point skip from training inputs ``x (N, C, H, W)`` and targets ``y (N, V, H, W)``."""
        coef = G.per_point_linear_fit(x[:, : self.skip_features].numpy(), y.numpy(), ridge=1e-3)
        self.skip.copy_(torch.from_numpy(coef))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_w, pad_h = -w % self.multiple, -h % self.multiple
        left, top = pad_w // 2, pad_h // 2
        padded = F.pad(x, (left, pad_w - left, 0, 0), mode="circular") if pad_w else x
        if pad_h:
            padded = F.pad(padded, (0, 0, top, pad_h - top))
        out = self.net(padded)[..., top : top + h, left : left + w]
        if self.skip_features:
            weight, bias = self.skip[..., :-1], self.skip[..., -1]
            out = out + torch.einsum("vhwf,nfhw->nvhw", weight, x[:, : self.skip_features]) + bias
        return out
