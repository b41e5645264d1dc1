"""timm's own model tests (``tests/test_models.py`` of the installed timm's source distribution) on our variants.

``./setup.sh`` downloads that file from the package registry into ``.cache/``. CI runs the small variants
(``UNIREPLKNET_TIMM_SUITE`` lists others, comma-separated, e.g. all nine). Left out: timm's two tests that
download pretrained weights from the hub (no hub here; our loading through timm is tested in test_timm.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import timm

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / ".cache" / f"timm-{timm.__version__}" / "tests" / "test_models.py"
VARIANTS = os.environ.get("UNIREPLKNET_TIMM_SUITE", "unireplknet_a,unireplknet_f").split(",")
NEEDS_HUB = ("test_model_load_pretrained", "test_model_features_pretrained")
# every test of timm's suite that takes a model by name and applies to a ConvNet classifier with timm's full API
EXPECTED = {
    "test_model_forward",
    "test_model_backward",
    "test_model_default_cfgs",
    "test_model_forward_torchscript",
    "test_model_forward_features",
    "test_model_forward_intermediates_features",
    "test_model_forward_intermediates",
    "test_prune_intermediate_layers_contract",
    "test_model_forward_fx",
    "test_model_backward_fx",
    "test_model_forward_fx_torchscript",
}


def run_timm_suite(variants: list[str]) -> tuple[int, Counter, str]:
    """(exit code, {(outcome, test, variant): count}, output tail) of timm's suite on ``variants``."""
    selection = "(" + " or ".join(variants) + ")" + "".join(f" and not {t}" for t in NEEDS_HUB)
    env = dict(
        os.environ,
        TORCH_BACKEND="unireplknet",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests" / "timm_suite")]),
    )
    env.pop("TRITON_INTERPRET", None)  # timm's tests run on the PyTorch path, as a user's CPU would
    cmd = [sys.executable, "-m", "pytest", str(SUITE), "-p", "timm_plugin", "-k", selection]
    cmd += ["-q", "-rA", "-p", "no:cacheprovider", "-W", "ignore", "--rootdir", str(SUITE.parent)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=SUITE.parent)
    outcomes: Counter = Counter()
    for outcome, test, params in re.findall(r"^(\w+) \S*::(\w+)\[(.*)\]", result.stdout, re.M):
        variant = next(p.split(".")[0] for p in params.split("-") if p.startswith("unireplknet"))
        outcomes[outcome, test, variant] += 1
    return result.returncode, outcomes, result.stdout[-6000:] + result.stderr[-3000:]


def test_timm_model_suite_passes_for_our_variants():
    if not SUITE.exists():
        pytest.fail(f"timm's test suite is not at {SUITE}: run ./setup.sh, which downloads timm's sdist")
    code, outcomes, output = run_timm_suite(VARIANTS)
    assert code == 0, output
    assert {outcome for outcome, _, _ in outcomes} == {"PASSED"}, output
    for variant in VARIANTS:
        ran = {test for _, test, v in outcomes if v == variant}
        assert ran >= EXPECTED, f"timm's suite did not run {sorted(EXPECTED - ran)} on {variant}\n{output}"
