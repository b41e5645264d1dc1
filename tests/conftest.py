"""Shared fixtures: the golden outputs of the authors' implementation (tests/golden), one intra-op thread, the command
line run in-process, and the few-steps training check of the dense tasks."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Triton reads this when it is first imported, and other tests import it indirectly (torch.compile):
# the CPU suite runs the Triton kernels in Triton's interpreter. GPU checks run outside pytest
# (benchmarks/gpu_benchmark.py).
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
import golden  # noqa: E402  (tests/golden/golden.py: the fixtures and the weights behind them)

GOLDEN_A224 = "unireplknet_a-in3-cls1000-2x3x224x224-seed0"


@pytest.fixture(scope="session")
def manifest() -> dict:
    return golden.load_manifest()


def golden_state_dict(stem: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """A fixture's expected outputs and the reference-format training weights behind them."""
    expected = golden.load_expected(stem)
    return expected, golden.random_state_dict(expected["shapes"], expected["seed"])


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): tiny models
    gain nothing from threads, and two spin-waiting threads on a loaded 2-core machine run ~100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Cli:
    """The ``unireplknet`` command line, run in-process."""

    def __call__(self, *args: Any, exit_code: int = 0) -> Any:
        """Run ``unireplknet ARGS``; checks the exit code and returns typer's result (``.output``)."""
        from typer.testing import CliRunner

        from unireplknet.cli import app

        result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == exit_code, result.output
        return result

    def json(self, *args: Any) -> Any:
        """The parsed output of ``unireplknet ARGS --json`` (from its first line that opens JSON)."""
        lines = self(*args, "--json").output.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith(("{", "[")))
        return json.loads("\n".join(lines[start:]))

    def train(self, config: dict[str, Any], path: Path) -> Path:
        """``unireplknet train --config`` of ``config`` written to ``path`` (YAML); returns the run folder."""
        import yaml

        path.write_text(yaml.safe_dump(config))
        self("train", "--config", path)
        return Path(config["output"]["dir"]) / config["output"]["name"]


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture
def assert_loss_decreases() -> Callable[..., list[float]]:
    """Check that a few AdamW steps on one batch lower ``task``'s loss of ``model(inputs)`` by 20%."""

    def check(task: Any, inputs: Any, targets: Any, steps: int = 4, lr: float = 2e-3) -> list[float]:
        torch.manual_seed(0)
        model = task.build_model().train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        losses = []
        for _ in range(steps):
            loss = task.loss(model(inputs), targets, True)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < 0.8 * losses[0], losses
        return losses

    return check
