"""The golden fixtures of this folder: outputs of the authors' reference implementation on random weights.

The weights behind each fixture are not stored: :func:`random_state_dict` re-creates them bit for bit from the
fixture's ``shapes`` and ``seed`` (the generator the fixtures were made with: one ``torch.Generator`` drawing
every tensor in sorted key order). The authors' own re-parameterized file is summarised by
:func:`fingerprint` in ``*.deploy.fingerprint.json`` (a few statistics per tensor instead of 18 MB).

Run ``python tests/golden/golden.py fingerprint AUTHORS.deploy.pth OUT.json`` to fingerprint a deploy file.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
FINGERPRINT_SEED = 0


def fixture_stems() -> list[str]:
    """Names ``MODEL-inC-clsK-INPUTSHAPE-seedS`` of the fixtures in this folder."""
    return sorted(p.name[: -len(".expected.pt")] for p in HERE.glob("*.expected.pt"))


def load_expected(stem: str) -> dict:
    """``{'model', 'in_chans', 'num_classes', 'seed', 'shapes', 'input', 'logits_fp32', 'logits_fp64',
    'logits_fp64_reparameterized'}`` of one fixture."""
    return torch.load(HERE / f"{stem}.expected.pt", map_location="cpu", weights_only=True)


def load_manifest() -> dict:
    """Per variant: parameter counts and reference state-dict key -> shape maps (train and deploy)."""
    return json.loads((HERE / "reference_manifest.json").read_text())


def load_fingerprint(stem: str) -> dict[str, dict[str, float]]:
    """:func:`fingerprint` of the reference's own re-parameterized weights of a fixture."""
    return json.loads((HERE / f"{stem}.deploy.fingerprint.json").read_text())


def random_state_dict(shapes: Mapping[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    """The reference-format training weights of a fixture: random, with BN statistics that matter.

    Scales: weights ``N(0, 1 / fan_in)``; BN running mean ``N(0, 0.1^2)``, variance ``U(0.75, 1.25)``; layer
    scales ``U(0.05, 0.25)``; norm weights ``1 + N(0, 0.3^2)``; biases and GRN parameters ``N(0, 0.3^2)``.
    """
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key in sorted(shapes):
        shape = list(shapes[key])
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0, dtype=torch.long)
        elif key.endswith("running_mean"):
            out[key] = torch.randn(shape, generator=generator) * 0.1
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=generator) * 0.5 + 0.75
        elif len(shape) >= 2:
            out[key] = torch.randn(shape, generator=generator) / max(math.prod(shape[1:]), 1) ** 0.5
        elif key.endswith(".gamma") and len(shape) == 1:
            out[key] = torch.rand(shape, generator=generator) * 0.2 + 0.05
        elif key.endswith("weight"):
            out[key] = 1.0 + 0.3 * torch.randn(shape, generator=generator)
        else:
            out[key] = 0.3 * torch.randn(shape, generator=generator)
    return out


def projection(numel: int) -> torch.Tensor:
    """The fixed random direction a tensor of ``numel`` elements is projected on in a fingerprint."""
    return torch.randn(numel, generator=torch.Generator().manual_seed(FINGERPRINT_SEED), dtype=torch.float64)


def fingerprint(state_dict: Mapping[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per tensor: ``sum``, ``l2`` and ``proj`` (dot product with :func:`projection`), all in fp64.

    Two tensors that differ by at most ``d`` per element have sums within ``numel * d`` and projections within
    ``d * ||projection||_1``: enough to check a file's values without storing it.
    """
    out = {}
    for key, value in state_dict.items():
        v = value.detach().double().reshape(-1)
        out[key] = {"sum": v.sum().item(), "l2": v.norm().item(), "proj": (v @ projection(v.numel())).item()}
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "fingerprint":
        sys.exit("usage: python tests/golden/golden.py fingerprint DEPLOY.pth OUT.json")
    state = torch.load(sys.argv[2], map_location="cpu", weights_only=True)
    Path(sys.argv[3]).write_text(json.dumps(fingerprint(state), indent=0, sort_keys=True) + "\n")
