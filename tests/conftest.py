"""Shared fixtures: paths to the golden outputs of the authors' implementation."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Triton reads this when it is first imported, and other tests import it indirectly (torch.compile):
# the CPU suite runs the Triton kernels in Triton's interpreter. GPU checks run outside pytest
# (benchmarks/gpu_benchmark.py).
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GOLDEN = SHARED / "golden"


def golden_available() -> bool:
    return (GOLDEN / "reference_manifest.json").exists()


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not golden_available():
        pytest.fail(f"golden fixtures not found at {GOLDEN}: the repo expects ../shared beside it")
    return GOLDEN


@pytest.fixture(scope="session")
def manifest(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "reference_manifest.json").read_text())


def golden_state_dict(golden_dir: Path, stem: str, expected: dict) -> dict[str, torch.Tensor]:
    """The reference-format training weights behind a fixture (shipped, or re-created from its seed)."""
    path = golden_dir / f"{stem}.train.pth"
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    sys.path.insert(0, str(golden_dir))
    try:
        from golden_weights import random_state_dict
    finally:
        sys.path.pop(0)
    return random_state_dict(expected["shapes"], expected["seed"])


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
