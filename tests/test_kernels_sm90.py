"""The spill guard: every kernel config the dispatcher can launch for UniRepLKNet-T and -S compiles for the
H100 (sm_90) without a GPU, and none spills registers to local memory (no timing: the SASS is read)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MODEL = Path(__file__).resolve().parents[1] / "benchmarks" / "kernel_model.py"


def test_every_launchable_config_compiles_for_sm90_without_spills():
    # In a subprocess: the model compiles with the real Triton compiler, this suite runs its interpreter.
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(MODEL), "--spills", "--json"], env=env, capture_output=True, text=True)
    assert done.stdout, done.stderr[-3000:]
    report = json.loads(done.stdout)
    kernels = {row["kernel"] for row in report["rows"]}
    assert kernels == {
        "_dwconv_forward_kernel",
        "_dwconv_weight_grad_kernel",
        "_mma_forward_kernel",
        "_mma_weight_grad_kernel",
    }
    assert report["configs"] == len(report["rows"]) > 20
    assert report["with_spills"] == [], json.dumps(report["with_spills"][:5], indent=1)
    assert done.returncode == 0, done.stderr[-3000:]
