"""Process-group set-up for ``torchrun``: one process per device, gloo on CPU, NCCL on GPUs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "pick_device", "setup", "teardown", "all_reduce_sum", "barrier", "gather_objects"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` (this process's GPU) or ``cuda:N``."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference == "cuda":
        preference = f"cuda:{local_rank}"
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={preference!r} but no CUDA device is available; use train.device=cpu")
    return device


def setup(device_preference: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group if launched by torchrun (``WORLD_SIZE`` > 1); return (info, device)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank), device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensors: list[torch.Tensor]) -> None:
    """Sum each tensor over all processes, in place (no-op when not distributed)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        on_gpu = dist.get_backend() == "nccl"
        for t in tensors:
            buffer = t.cuda() if on_gpu and not t.is_cuda else t  # NCCL reduces only GPU tensors
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            if buffer is not t:
                t.copy_(buffer)


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def gather_objects(obj: object) -> list[object]:
    """Every process's ``obj``, in rank order (``[obj]`` when not distributed)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        out: list[object] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]
