"""Saving and restoring everything a run needs, in safetensors files (no pickle anywhere).

Two kinds of files:

* weights files (``last.safetensors``, ``best.safetensors``, ``deploy.safetensors``): the model's
  state dict, loadable by ``unireplknet.create_model(checkpoint=...)``, with the run config and the
  task's state in the metadata so ``eval``/``predict``/``reparam`` can rebuild the model alone;
* the training state (``train_state.safetensors``): model, optimizer, scheduler, EMA, grad scaler,
  every process's RNG states and the position in the schedule, for an exact ``--resume``.

Arbitrary nested Python values are stored as JSON in the metadata with their tensors side by side.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import CheckpointError, save_safetensors

__all__ = [
    "encode",
    "decode",
    "save_weights",
    "read_weights",
    "read_metadata",
    "save_state",
    "load_state",
    "capture_rng",
    "restore_rng",
]

_META_KEY = "unireplknet"


def encode(obj: Any, tensors: dict[str, torch.Tensor] | None, prefix: str = "") -> Any:
    """A JSON-able skeleton of ``obj``; tensors go to ``tensors`` (or inline as lists when it is None)."""
    if isinstance(obj, torch.Tensor):
        if tensors is None:
            return {"__tensor__": obj.tolist(), "dtype": str(obj.dtype).removeprefix("torch.")}
        tensors[prefix] = obj
        return {"__tensor_key__": prefix}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": encode(torch.from_numpy(np.ascontiguousarray(obj)), tensors, prefix)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {"__map__": {k: encode(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}}
        return {"__items__": [[k, encode(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint (at {prefix or 'top level'})")


def decode(skeleton: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(skeleton, list):
        return [decode(v, tensors) for v in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if "__tensor_key__" in skeleton:
        return tensors[skeleton["__tensor_key__"]]
    if "__tensor__" in skeleton:
        return torch.tensor(skeleton["__tensor__"], dtype=getattr(torch, skeleton["dtype"]))
    if "__ndarray__" in skeleton:
        return decode(skeleton["__ndarray__"], tensors).numpy()
    if "__map__" in skeleton:
        return {k: decode(v, tensors) for k, v in skeleton["__map__"].items()}
    if "__items__" in skeleton:
        return {k: decode(v, tensors) for k, v in skeleton["__items__"]}
    if "__tuple__" in skeleton:
        return tuple(decode(v, tensors) for v in skeleton["__tuple__"])
    raise CheckpointError(f"unrecognised entry in checkpoint metadata: {sorted(skeleton)}")


# -- weights files ---------------------------------------------------------------------------------
def save_weights(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], info: Mapping[str, Any]) -> Path:
    """Write a model state dict with ``info`` (config, task state, structure) in the metadata, atomically."""
    return save_safetensors(state_dict, path, metadata={_META_KEY: json.dumps(encode(dict(info), None))})


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``info`` stored by :func:`save_weights` (empty for files written elsewhere)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read {path}: not a valid safetensors file ({e})") from None
    return _decode_metadata(path, meta[_META_KEY], {}) if _META_KEY in meta else {}


def _decode_metadata(path: Path, text: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The ``info`` mapping of a file's metadata; CheckpointError naming the file when it is malformed."""
    try:
        info = decode(json.loads(text), tensors)
        if not isinstance(info, dict):
            raise TypeError(f"its top level is a {type(info).__name__}, not a mapping")
        for key in ("config", "task_state"):
            if info.get(key) is not None and not isinstance(info[key], dict):
                raise TypeError(f"its {key!r} entry is a {type(info[key]).__name__}, not a mapping")
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise CheckpointError(
            f"{path}: its unireplknet metadata is malformed ({type(e).__name__}: {e}); the file was not written by "
            "this package or was altered. Its weights alone load with unireplknet.load_state_dict"
        ) from None
    return info


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict in this package's names, stored info) of a weights file in any supported format."""
    from ..checkpoint import load_state_dict

    return load_state_dict(path), read_metadata(path)


# -- training state --------------------------------------------------------------------------------
def save_state(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write a nested training state (tensors + plain values) as one safetensors file, atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = encode(dict(state), tensors, "s")
    return save_safetensors(tensors, path, metadata={_META_KEY: json.dumps(skeleton)})


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file written by :func:`save_state`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no training state at {path}; is this a run folder written by `unireplknet train`?")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read {path}: corrupt or truncated training state ({e})") from None
    if _META_KEY not in meta:
        raise CheckpointError(f"{path} is not a training state written by `unireplknet train`")
    return _decode_metadata(path, meta[_META_KEY], tensors)


def capture_rng() -> dict[str, Any]:
    """This process's random number generator states (Python, NumPy, torch CPU and CUDA)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
