"""The spill guard: every kernel config the dispatcher can launch for UniRepLKNet-T and -S compiles for the
H100 (sm_90) without a GPU, and none spills registers to local memory (no timing: the SASS is read).

It covers the precisions the network runs in (bf16 autocast + channels_last, fp32 NCHW), which keeps it
to about 150 compiles; ``python benchmarks/kernel_model.py --spills --all`` checks every dtype and layout
(about 480)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MODEL = Path(__file__).resolve().parents[1] / "benchmarks" / "kernel_model.py"
KERNELS = {"_dwconv_forward_kernel", "_dwconv_weight_grad_kernel", "_mma_forward_kernel", "_mma_weight_grad_kernel"}


def _spill_guard(*flags: str) -> dict:
    # In a subprocess: the model compiles with the real Triton compiler, this suite runs its interpreter.
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, str(MODEL), "--spills", "--json", *flags], env=env, capture_output=True, text=True
    )
    assert done.stdout, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert {row["kernel"] for row in report["rows"]} == KERNELS
    assert report["with_spills"] == [], json.dumps(report["with_spills"][:5], indent=1)
    assert done.returncode == 0, done.stderr[-3000:]
    return report


def test_launchable_configs_of_the_main_precisions_compile_for_sm90_without_spills():
    report = _spill_guard()
    whats = " ".join(row["what"] for row in report["rows"])
    assert "bf16 NHWC" in whats and "fp32 NCHW" in whats and "k3 d3" in whats  # dilated branches (d3-d5: one compile)
    assert report["configs"] == len(report["rows"]) > 40
