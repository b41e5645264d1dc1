"""``--task grid_forecast``: next-month forecasting of gridded global fields, the grid as the image.

The bundled demo (``configs/grid_forecast_navy_winds.yaml``) forecasts the next month's U/V surface wind
on the global 2.5 degree grid (73 x 144, Debian's ``ferret-datasets``) from the previous
``data.input_len`` months; see :mod:`unireplknet.modalities.forecast.grid` for the data, the anomaly
normalisation and the time split. The network is an ``segmentation_models_pytorch`` FPN (``model.head``)
whose encoder is the unchanged backbone named by ``model.name`` through timm: a UniRepLKNet variant (the
``model`` section's depths / dims / kernel_sizes apply) or any timm ConvNet (e.g. ``resnet18``, the same
decoder and input, for a same-input baseline). The map is padded to a multiple of 32 before the encoder:
circularly in longitude (the globe wraps around), with zeros (= climatology) beyond the poles, and the
output is cropped back to the grid.

Loss: MSE of the normalised anomalies. Metrics, in the data's units (m/s): MSE and MAE overall and per
variable, and the anomaly correlation (uncentred, against the training climatology) per variable, mean over
forecasts. Validation (``data.eval_split: val``) picks ``best.safetensors``; the end-of-run report scores
the test years. ``predict`` reads a file of the same format and forecasts the month after its last one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..config import Check, DataConfig, ModelConfig, PositiveInt, RunConfig
from ..metrics import Metrics
from ..modalities.forecast import grid as G
from ..models.grid_forecast import GridForecaster
from .base import BACKBONE_KWARGS, Task, encoder_kwargs, register_task

__all__ = ["GridForecastTask", "GridForecastConfig", "GridForecastMetrics"]

HEADS = {"fpn": smp.FPN, "unet": smp.Unet}


def _is_month(text: str) -> bool:
    try:
        np.datetime64(text, "M")
    except ValueError:
        return False
    return True


Month = Annotated[str, Check(_is_month, 'a month as "YYYY-MM" (quoted in YAML)')]


@dataclass
class GridForecastModel(ModelConfig):
    head: Literal["fpn", "unet"] = "fpn"  # segmentation_models_pytorch decoders
    decoder_channels: PositiveInt = 64  # fpn: pyramid and segmentation channels
    linear_skip: bool = True  # add the per-point least-squares forecast of the past anomalies (frozen)


@dataclass
class GridForecastData(DataConfig):
    dataset: Literal["navy_winds"] = "navy_winds"
    # root: folder of monthly_navy_winds.cdf (null: Debian's ferret-datasets location)
    input_len: PositiveInt = 2  # past months per forecast
    val_start: Month = "1990-01"  # first validation target month; training targets are the months before
    test_start: Month = "1991-01"  # first test target month
    eval_split: Literal["val", "test"] = "val"


@dataclass
class GridForecastPredict:
    out_dir: str | None = None  # also write each forecast (V, H, W) as <file stem>_forecast.npy here


@dataclass
class GridForecastConfig(RunConfig):
    task: str = "grid_forecast"
    model: GridForecastModel = field(default_factory=GridForecastModel)
    data: GridForecastData = field(default_factory=GridForecastData)
    predict: GridForecastPredict = field(default_factory=GridForecastPredict)


class GridForecastMetrics(Metrics):
    """MSE / MAE (in the data's units: the normalised errors times ``anomaly_std``) and the anomaly
    correlation, overall and per variable."""

    def __init__(self, variables: Sequence[str], anomaly_std: Sequence[float]) -> None:
        self.variables = list(variables)
        self.scale = torch.tensor(anomaly_std, dtype=torch.float64)
        # rows: variables; columns: squared-error sum, absolute-error sum, values, ACC sum, forecasts
        self.sums = torch.zeros(len(self.variables), 5, dtype=torch.float64)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | None = None) -> None:
        outputs, targets = outputs.detach().double().cpu(), targets.double().cpu()
        error = (outputs - targets) * self.scale.view(1, -1, 1, 1)
        acc = G.anomaly_correlation(outputs, targets)  # (N, V); scale-free
        n, _, h, w = error.shape
        self.sums[:, 0] += error.pow(2).sum((0, 2, 3))
        self.sums[:, 1] += error.abs().sum((0, 2, 3))
        self.sums[:, 2] += n * h * w
        self.sums[:, 3] += acc.sum(0)
        self.sums[:, 4] += n

    def compute(self) -> dict[str, float]:
        sse, sae, count, acc, forecasts = self.sums.T
        if not count.sum():
            return {}
        result = {
            "mse": float(sse.sum() / count.sum()),
            "mae": float(sae.sum() / count.sum()),
            "acc": float((acc / forecasts).mean()),
        }
        for i, name in enumerate(self.variables):
            result |= {f"mse/{name}": float(sse[i] / count[i]), f"mae/{name}": float(sae[i] / count[i])}
            result[f"acc/{name}"] = float(acc[i] / forecasts[i])
        return result

    def state_tensors(self) -> list[torch.Tensor]:
        return [self.sums]


@register_task
class GridForecastTask(Task):
    """Forecast the next month of gridded fields (see the module docstring)."""

    name = "grid_forecast"
    primary_metric = "mse"
    higher_is_better = False
    config_schema = GridForecastConfig

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.data = cfg["data"]
        self.variables: list[str] = []
        self.anomaly_std: list[float] = []
        self.in_chans: int | None = None
        self.grid_shape: list[int] = [0, 0]
        self._windows: dict[str, G.GridWindows] = {}

    # -- data -----------------------------------------------------------------------------------
    def _build_splits(self) -> None:
        fields = G.read_navy_winds(G.find_navy_winds(self.data["root"]))
        length = int(self.data["input_len"])
        splits = G.month_splits(fields.months, self.data["val_start"], self.data["test_start"], length)
        scaler = G.AnomalyScaler(fields, train_end=int(splits["val"][0]))
        self._windows = {name: G.GridWindows(fields, scaler, targets, length) for name, targets in splits.items()}
        self.variables, self.anomaly_std = list(fields.variables), scaler.anomaly_std.tolist()
        self.in_chans = self._windows["train"].in_chans
        self.grid_shape = [len(fields.lat), len(fields.lon)]

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        self._build_splits()
        return self._windows["train"], self._windows[self.data["eval_split"]]

    def build_test_dataset(self) -> Dataset | None:
        """The test years for the end-of-run report while validation picks ``best.safetensors``."""
        return self._windows["test"] if self.data["eval_split"] == "val" else None

    # -- model ----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        if self.in_chans is None:
            raise ValueError("the grid_forecast model's input channels are unknown: build the datasets first")
        m = self.cfg["model"]
        backbone_kwargs = encoder_kwargs(m, BACKBONE_KWARGS)  # a UniRepLKNet variant's, or a timm model's
        decoder = {"decoder_pyramid_channels": m["decoder_channels"],
                   "decoder_segmentation_channels": m["decoder_channels"]}  # fmt: skip
        if m["head"] == "unet":
            decoder = {}
        net = HEADS[m["head"]](
            encoder_name=f"tu-{m['name']}",
            encoder_weights=None,
            in_channels=self.in_chans,
            classes=len(self.variables),
            **decoder,
            **backbone_kwargs,
        )
        # a zero output layer: training starts at the climatology (or, with the skip, the linear) forecast
        nn.init.zeros_(net.segmentation_head[0].weight)
        nn.init.zeros_(net.segmentation_head[0].bias)
        skip = len(self.variables) * int(self.data["input_len"]) if m["linear_skip"] else 0
        model = GridForecaster(net, skip_features=skip, grid=tuple(self.grid_shape))
        # only when training built the datasets: evaluation and prediction load the fitted skip instead
        if skip and "train" in self._windows:
            train = self._windows["train"]
            inputs, targets = zip(*(train[i] for i in range(len(train))), strict=True)
            model.fit_skip(torch.stack(inputs), torch.stack(targets))
        return model

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, train: bool) -> torch.Tensor:
        return F.mse_loss(outputs, targets)

    def new_metrics(self) -> Metrics:
        return GridForecastMetrics(self.variables, self.anomaly_std)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "variables": self.variables,
            "anomaly_std": self.anomaly_std,
            "in_chans": self.in_chans,
            "grid_shape": self.grid_shape,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.variables, self.anomaly_std = list(state["variables"]), list(state["anomaly_std"])
        self.in_chans = int(state["in_chans"])
        self.grid_shape = [int(n) for n in state["grid_shape"]]

    # -- outputs --------------------------------------------------------------------------------
    def predict_input(self, path: Path) -> tuple[torch.Tensor, tuple[np.ndarray, G.AnomalyScaler, np.datetime64]]:
        """The last ``input_len`` months of a file in the training data's format as a ``(1, C, H, W)`` map for
        the month after them, normalised with the training years' climatology (read from ``data.root``'s
        file: the checkpoint does not carry the 12 climatology maps)."""
        length = int(self.data["input_len"])
        train_fields = G.read_navy_winds(G.find_navy_winds(self.data["root"]))
        splits = G.month_splits(train_fields.months, self.data["val_start"], self.data["test_start"], length)
        scaler = G.AnomalyScaler(train_fields, train_end=int(splits["val"][0]))
        fields = G.read_navy_winds(path)
        if len(fields.months) < length:
            raise ValueError(f"{path}: needs at least {length} months to forecast from, has {len(fields.months)}")
        target = fields.months[-1] + 1
        # GridWindows builds inputs for a target month it holds: append a placeholder month (its values unused)
        extended = G.MonthlyFields(
            np.concatenate([fields.values, fields.values[-1:]]), np.append(fields.months, target),
            fields.lat, fields.lon, fields.variables,
        )  # fmt: skip
        x, _ = G.GridWindows(extended, scaler, [len(fields.months)], length)[0]
        return x.unsqueeze(0), (np.asarray(fields.variables), scaler, target)

    def predict_output(
        self, path: Path, outputs: torch.Tensor, *, inputs: Any, context: Any, model: nn.Module, top_k: int
    ) -> dict[str, Any]:
        """The forecast month and each variable's global mean (``top_k`` is unused); with
        ``predict.out_dir`` the forecast ``(V, H, W)`` in the data's units goes to ``<stem>_forecast.npy``."""
        variables, scaler, target = context
        anomaly = outputs[0].cpu().numpy() * scaler.anomaly_std[:, None, None]
        forecast = anomaly + scaler.clim[int(target.astype(int)) % 12]
        result = {
            "month": str(target),
            "variables": variables.tolist(),
            "mean": forecast.mean((1, 2)).round(4).tolist(),
        }
        if out_dir := self.cfg["predict"]["out_dir"]:
            out = Path(out_dir) / f"{Path(path).stem}_forecast.npy"
            out.parent.mkdir(parents=True, exist_ok=True)
            np.save(out, forecast.astype(np.float32))
            result["output"] = str(out)
        return result
