"""The forecaster: the unchanged UniRepLKNet trunk between a series embedding and a linear head.

Each series of a window ``x`` (B, L, N) is handled independently: normalised over its own window
(mean/std, then a learnable affine; undone on the output, so no statistic of the future or of other
windows is used), embedded with a value embedding (conv1d over time), a time-feature embedding and a
learned position embedding into (B*N, L, D), and the (L, D) latent of every series is read row-major
as one ``1 x S x S`` map with ``S = sqrt(L*D)`` (48 x 768 -> 192 x 192 in the paper; our default
48 x 48 -> 48 x 48). UniRepLKNet (``in_chans=1, num_classes=0``) turns it into pooled features and a
linear head predicts the next ``pred_len`` values of that series.

Our addition beyond the paper (``linear_skip=True``, off by default): a linear map of the normalised
window (``input_len -> pred_len``, shared by all series, initialised to zero) is added to the head's
output, and the head's last layer is initialised to zero, so training starts from a linear forecaster
and the backbone learns only the correction to it (the residual idea of RevIN / DLinear-style models).
:meth:`UniRepLKNetForecaster.fit_skip` instead starts the skip at the least-squares linear forecaster of
the training windows (closed form, weighted so that it minimises the training loss on the original scale),
and ``freeze_skip`` keeps it there, so the trunk only ever learns the correction to a fixed linear model.
Without it the network must rediscover the strong linear part of short-range weather through the whole
trunk; with it the trunk still sees the same map and is still the unchanged UniRepLKNet.

``layout="stations"`` (Corrformer's multi-station setting) reads the stations as a spatial axis instead:
the (L, D) latents of all N series of a window are stacked into one ``D x N x L`` map (channels: the
embedding; rows: stations, in the data's order; columns: days), each station-step enlarged to a
``cell x cell`` patch so that the stem's stride-4 patchify gives back one feature per station-step, plus a
learned per-station embedding (the rows' identity). The trunk (``in_chans=D``) mixes stations and time in
every kernel, and the head maps the pooled features to all ``N x P`` outputs. The linear skip then is the
cross-station linear forecaster on the original scale (all stations' raw windows and the time features
of the window's last step -> every station's future; :meth:`~UniRepLKNetForecaster.fit_skip`: least
squares), and the trunk's output, times each
station's window std, is added to it: the model starts at that linear baseline and learns a correction.
(Normalising each station's window first and mixing stations in that space mixes their std ratios into
the linear map, which measurably generalised worse on the Irish wind.)

Its inputs (windows of series and their time features) come from :mod:`unireplknet.modalities.forecast`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..modalities.forecast.transforms import NUM_TIME_FEATURES

__all__ = ["LAYOUTS", "map_side", "WindowNorm", "SeriesEmbedding", "UniRepLKNetForecaster"]

LAYOUTS = ("series", "stations")  # a map per series, or one map of all stations (rows) x time (columns)


def map_side(input_len: int, embed_dim: int) -> int:
    """Side S of the ``1 x S x S`` map holding an (input_len, embed_dim) latent; raises if not square."""
    side = math.isqrt(input_len * embed_dim)
    if side * side != input_len * embed_dim:
        candidates = [d for d in range(1, 4 * embed_dim + 2) if math.isqrt(input_len * d) ** 2 == input_len * d]
        nearest = min(candidates, key=lambda d: abs(d - embed_dim))
        raise ValueError(
            f"input_len * embed_dim = {input_len} * {embed_dim} must be a perfect square to form a square map; "
            f"use embed_dim={nearest}"
        )
    return side


class WindowNorm(nn.Module):
    """Per-series window normalisation with a learnable affine (shared by all series), reversible."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x`` (B, L, N) -> (normalised x, (mean, std) each (B, 1, N))."""
        mean = x.mean(1, keepdim=True).detach()
        std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + self.eps).detach()
        return (x - mean) / std * self.weight + self.bias, (mean, std)

    def inverse(self, y: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Undo :meth:`forward` on a prediction ``y`` (B, P, N)."""
        mean, std = stats
        return (y - self.bias) / (self.weight + self.eps) * std + mean


class SeriesEmbedding(nn.Module):
    """Value (conv1d over time) + time-feature (linear) + learned position embedding: (B*N, L, D)."""

    def __init__(self, input_len: int, embed_dim: int, num_time_features: int = NUM_TIME_FEATURES) -> None:
        super().__init__()
        self.value = nn.Conv1d(1, embed_dim, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        self.time = nn.Linear(num_time_features, embed_dim, bias=False) if num_time_features else None
        self.position = nn.Parameter(torch.zeros(1, input_len, embed_dim))
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None) -> torch.Tensor:
        """``x`` (B, L, N), ``x_mark`` (B, L, F) -> (B*N, L, D)."""
        b, length, n = x.shape
        series = x.permute(0, 2, 1).reshape(b * n, 1, length)
        out = self.value(series).transpose(1, 2) + self.position
        if self.time is not None:
            if x_mark is None:
                raise ValueError("this forecaster uses time features: pass x_mark (B, L, F)")
            out = out + self.time(x_mark).repeat_interleave(n, dim=0)
        return out


class UniRepLKNetForecaster(nn.Module):
    """Predict the next ``pred_len`` steps of every series: ``(B, L, N) -> (B, P, N)``.

    ``backbone`` is an unchanged UniRepLKNet (or any timm model) built with ``num_classes=0`` (it returns
    pooled features of size ``backbone.num_features``) and ``in_chans=1`` (``layout="series"``: one
    ``1 x S x S`` map per series) or ``in_chans=embed_dim`` (``layout="stations"``: one
    ``D x cell*N x cell*L`` map per window of ``num_series`` stations; see the module docstring).
    ``linear_skip`` adds the zero-initialised linear path of the normalised window described in the
    module docstring (see :meth:`fit_skip` for its least-squares start); ``freeze_skip`` excludes it from
    training.
    """

    def __init__(
        self,
        backbone: nn.Module,
        input_len: int = 48,
        pred_len: int = 24,
        embed_dim: int = 48,
        num_time_features: int = NUM_TIME_FEATURES,
        head_dropout: float = 0.0,
        linear_skip: bool = False,
        freeze_skip: bool = False,
        layout: str = "series",
        num_series: int | None = None,
        cell: int = 4,
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        if layout == "stations" and not num_series:
            raise ValueError("layout='stations' needs num_series (the number of stations of every window)")
        in_chans = 1 if layout == "series" else embed_dim
        if getattr(backbone, "num_classes", 0) != 0 or getattr(backbone, "in_chans", in_chans) != in_chans:
            raise ValueError(f"the forecaster's backbone must be built with in_chans={in_chans}, num_classes=0")
        self.input_len, self.pred_len, self.layout, self.cell = input_len, pred_len, layout, cell
        self.side = map_side(input_len, embed_dim) if layout == "series" else 0
        self.num_series = num_series if layout == "stations" else None
        self.window_norm = WindowNorm()
        self.embed = SeriesEmbedding(input_len, embed_dim, num_time_features)
        self.station = None
        if layout == "stations":
            self.station = nn.Parameter(torch.zeros(1, num_series, 1, embed_dim))
            nn.init.trunc_normal_(self.station, std=0.02)
        # not `backbone`/`norm`: checkpoint loading renames such keys (MMDet prefixes, the authors' final norm)
        self.trunk = backbone
        outputs = pred_len * (num_series if layout == "stations" else 1)
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(backbone.num_features, outputs))
        skip_in, skip_out = (input_len, pred_len) if layout == "series" else (input_len * num_series, outputs)
        if layout == "stations":
            skip_in += num_time_features  # the season of the window's last step: a seasonal level
        self.skip = nn.Linear(skip_in, skip_out) if linear_skip else None
        if self.skip is not None:
            # start as the window-mean forecast; the trunk's correction starts at zero
            for layer in (self.skip, self.head[-1]):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
            self.skip.requires_grad_(not freeze_skip)
        elif freeze_skip:
            raise ValueError("freeze_skip needs linear_skip=True")

    @torch.no_grad()
    def fit_skip(
        self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-3, x_mark: torch.Tensor | None = None
    ) -> None:
        """Set the skip path to the least-squares linear forecaster of windows ``x`` (W, L, N) -> ``y``
        (W, P, N), e.g. the training windows.

        The fit is in the normalised space the skip sees, each (window, series) weighted by its squared
        window std, so it minimises the MSE of the de-normalised skip forecast, i.e. the training loss of
        the model whose trunk correction is zero; ``ridge`` regularises the normal equations. With
        ``layout="stations"`` the skip reads all stations' raw windows and the last step of the windows'
        time features ``x_mark`` (W, L, F) (needed when the model has time features): plain least squares
        on the original scale (again the training loss of a zero correction).
        """
        if self.skip is None:
            raise ValueError("fit_skip needs a forecaster built with linear_skip=True")
        if x.dim() != 3 or y.dim() != 3 or x.shape[1] != self.input_len or y.shape[1] != self.pred_len:
            raise ValueError(
                f"expected x (W, {self.input_len}, N) and y (W, {self.pred_len}, N), got {tuple(x.shape)}, {tuple(y.shape)}"
            )
        x, y = x.double(), y.double()
        if self.layout == "stations":
            if x.shape[2] != self.num_series:
                raise ValueError(f"expected windows of {self.num_series} stations, got {x.shape[2]}")
            inputs = torch.cat([self._skip_inputs(x, x_mark), torch.ones_like(x[:, 0, :1])], 1)  # (W, N*L + F + 1)
            solution = _weighted_least_squares(
                inputs, y.transpose(1, 2).flatten(1), torch.ones_like(x[:, 0, :1]), ridge
            )
            self.skip.weight.copy_(solution[:-1].T)
            self.skip.bias.copy_(solution[-1])
            return
        norm = self.window_norm
        z, (mean, std) = norm(x)  # float64: the float32 affine promotes to the input's dtype
        scale = norm.weight.double() + norm.eps
        target = (y - mean) / std * scale + norm.bias.double()  # the normalised output that norm.inverse maps to y
        inputs = torch.cat([z, torch.ones_like(z[:, :1])], 1).transpose(1, 2).reshape(-1, self.input_len + 1)
        target = target.transpose(1, 2).reshape(-1, self.pred_len)
        loss_weight = (std / scale).pow(2).reshape(-1, 1)
        solution = _weighted_least_squares(inputs, target, loss_weight, ridge)  # (L + 1, P)
        self.skip.weight.copy_(solution[:-1].T)
        self.skip.bias.copy_(solution[-1])

    def forward(
        self, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor], x_mark: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x`` (B, L, N) and time features ``x_mark`` (B, L, F), or the pair ``(x, x_mark)`` as a
        batch of :class:`~unireplknet.modalities.forecast.ForecastWindows` inputs holds it -> forecasts (B, pred_len, N)."""
        if isinstance(x, (tuple, list)):
            x, x_mark = x
        if x.dim() != 3 or x.shape[1] != self.input_len:
            raise ValueError(f"expected x of shape (B, {self.input_len}, N), got {tuple(x.shape)}")
        b, _, n = x.shape
        if self.num_series is not None and n != self.num_series:
            raise ValueError(f"this forecaster reads windows of {self.num_series} stations, got {n}")
        z, stats = self.window_norm(x)
        latent = self.embed(z, x_mark)  # (B*N, L, D)
        if self.layout == "series":
            maps = latent.reshape(b * n, 1, self.side, self.side)
        else:
            grid = (latent.reshape(b, n, self.input_len, -1) + self.station).permute(0, 3, 1, 2)  # (B, D, N, L)
            maps = grid.repeat_interleave(self.cell, dim=2).repeat_interleave(self.cell, dim=3)
        y = self.head(self.trunk(maps)).reshape(b, n, self.pred_len)
        if self.skip is not None and self.layout == "stations":  # the raw cross-station linear + scaled correction
            linear = self.skip(self._skip_inputs(x, x_mark).to(y.dtype)).view_as(y)
            return (linear + y * stats[1].transpose(1, 2)).transpose(1, 2)
        if self.skip is not None:
            y = y + self.skip(z.transpose(1, 2))
        return self.window_norm.inverse(y.transpose(1, 2), stats)

    def _skip_inputs(self, x: torch.Tensor, x_mark: torch.Tensor | None) -> torch.Tensor:
        """The stations skip's inputs: every station's window and the last step's time features, ``(B, N*L + F)``."""
        windows = x.transpose(1, 2).flatten(1)
        if self.embed.time is None:
            return windows
        if x_mark is None:
            raise ValueError("this forecaster uses time features: pass x_mark (B, L, F)")
        return torch.cat([windows, x_mark[:, -1].to(windows.dtype)], 1)


def _weighted_least_squares(
    inputs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, ridge: float
) -> torch.Tensor:
    """argmin_W sum(weight * (inputs @ W - target)^2) + ridge |W|^2: ``inputs (R, F)``, ``target (R, P)``,
    ``weight (R, 1)`` -> ``W (F, P)``."""
    gram = inputs.T @ (weight * inputs) + ridge * torch.eye(inputs.shape[1], dtype=inputs.dtype)
    return torch.linalg.solve(gram, inputs.T @ (weight * target))
