"""Effective receptive field of trained global-wind forecasters (``configs/grid_forecast_navy_winds.yaml``).

The RepLKNet / UniRepLKNet method of :mod:`unireplknet.analysis.erf`, on trained weights: the gradient of
the central position of the encoder's last stage with respect to the 73 x 144 input map (through the
circular padding), summed over the test forecasts' inputs, and the high-contribution area ratios (squares
clipped to the grid's 73 rows). Pass run folders written by ``unireplknet train``:

    python benchmarks/grid_forecast_erf.py RUN_DIR [RUN_DIR ...] [--data DIR] [--output DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from unireplknet.analysis import erf
from unireplknet.checkpoint import load_checkpoint
from unireplknet.config import load_yaml, resolve_config
from unireplknet.engine import build_task
from unireplknet.engine.state import read_weights
from unireplknet.tasks import get_task


class LastStage(nn.Module):
    """``forward_features``: the encoder's last map inside a :class:`GridForecaster`'s own forward pass (so
    the input is padded exactly as the forecaster pads it)."""

    def __init__(self, forecaster: nn.Module) -> None:
        super().__init__()
        self.forecaster = forecaster

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        hook = self.forecaster.net.encoder.register_forward_hook(lambda _m, _i, out: captured.append(out[-1]))
        try:
            self.forecaster(x)
        finally:
            hook.remove()
        return captured[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", default=None, help="folder of monthly_navy_winds.cdf (default: the run's)")
    parser.add_argument("--output", type=Path, default=Path("erf_grid"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run in args.runs:
        stored = load_yaml(run / "config.yaml")  # a run's config; older runs' moved keys are moved
        root = {"data": {"root": args.data}} if args.data is not None else None
        cfg = resolve_config(get_task(stored["task"]).config_schema, overrides=root, stored=stored)
        task = build_task(cfg)
        task.build_datasets()
        test = task.build_test_dataset()
        weights, info = read_weights(run / "best.safetensors")
        task.load_state_dict(info["task_state"])
        model = task.build_model()
        load_checkpoint(model, weights, structure="file")
        model.eval()
        scores, used, dropped = erf.accumulate_erf(LastStage(model), (test[i][0] for i in range(len(test))))
        kernels = cfg["model"].get("kernel_sizes")
        label = cfg["model"]["name"] + (f" {max(max(stage) for stage in kernels)}x" if kernels else "")
        summary = erf.summarise(label, f"trained, {run.name}", scores, used, dropped)
        result = erf.save_erf(summary, scores, args.output, run.name)
        print(json.dumps({"run": run.name, "model": label, "area_ratio": result.area_ratio, "side": result.side}))


if __name__ == "__main__":
    main()
