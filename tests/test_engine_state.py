"""Training-state files: every nested value round-trips through safetensors; weights load in either structure."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import unireplknet
from unireplknet.checkpoint import CheckpointError
from unireplknet.engine.state import (
    capture_rng,
    load_state,
    read_weights,
    restore_rng,
    save_state,
    save_weights,
)

TINY = dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (7,), (7,), (3,)), num_classes=5, in_chans=1)


def test_nested_state_round_trip(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), betas=(0.8, 0.95))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "rng": [capture_rng()], "tuple": (1, 2.5, "x", None), "ints": {3: "a"}}
    save_state(tmp_path / "s.safetensors", state)
    loaded = load_state(tmp_path / "s.safetensors")
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters())
    fresh.load_state_dict(loaded["optimizer"])
    assert fresh.state_dict()["param_groups"][0]["betas"] == (0.8, 0.95)
    for key, value in opt.state_dict()["state"].items():
        for field, tensor in value.items():
            assert torch.equal(tensor, fresh.state_dict()["state"][key][field])
    assert loaded["tuple"] == (1, 2.5, "x", None) and loaded["ints"] == {3: "a"}


def test_rng_restore_replays_all_generators() -> None:
    saved = capture_rng()
    first = (random.random(), np.random.rand(), torch.rand(2))
    restore_rng(saved)
    again = (random.random(), np.random.rand(), torch.rand(2))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])


def test_bad_state_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no training state"):
        load_state(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_state(tmp_path / "junk.safetensors")


def test_loading_a_run_file_follows_its_structure(tmp_path: Path) -> None:
    model = unireplknet.create_model("unireplknet_a", **TINY).eval()
    deployed = unireplknet.reparameterize(copy.deepcopy(model))
    save_weights(
        tmp_path / "d.safetensors", deployed.state_dict(), {"structure": "deploy", "task_state": {"k": [1, 2]}}
    )
    weights, info = read_weights(tmp_path / "d.safetensors")
    assert info == {"structure": "deploy", "task_state": {"k": [1, 2]}}
    loaded = unireplknet.create_model("unireplknet_a", **TINY)
    unireplknet.load_checkpoint(loaded, weights, structure="file")
    assert loaded.is_deploy
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(x), model(x), atol=1e-5)
    other = unireplknet.create_model("unireplknet_a", **{**TINY, "dims": (8, 16, 32, 48)})
    with pytest.raises(CheckpointError, match="does not fit"):
        unireplknet.load_checkpoint(other, weights, structure="file")
