"""A static H100 model of the project's Triton depthwise-conv kernels, built on a machine without a GPU.

Triton ships ``ptxas``, ``cuobjdump`` and ``nvdisasm``, so every kernel the dispatcher can launch is compiled
here for the H100 (sm_90) exactly as a real launch would compile it (the same argument specialisation: which
integers are 1 or divisible by 16, which pointers are aligned) and its machine code (SASS) is read:
registers, spills (local-memory loads/stores), the instruction mix, tensor-core work. With each loop's trip
count per program (derived from the launch geometry) it counts the dynamic warp-instructions of the whole
launch and models its time as

    modeled_ms = max(CALIBRATION * issue_ms, tensor_ms, memory_ms)
    issue_ms   = warp-instructions / (SMs * schedulers * clock)              one instruction per scheduler-clock
    tensor_ms  = tensor-core FMAs / (dense bf16 FMA rate * TENSOR_EFFICIENCY)  HMMA/HGMMA
    memory_ms  = compulsory bytes / (HBM bandwidth * 0.8)                     each tensor read or written once

CALIBRATION is ``measured / issue_ms`` of a naive per-tap Triton kernel that was timed on a real H100
(``benchmarks/data/h100_calibration.json``, recomputed by ``--calibrate`` with this file's own counting).
The tensor-core term is not calibrated (no tensor-core kernel was timed): it counts 35% of the dense peak.
Every number this prints is MODELED, not measured; ``benchmarks/gpu_benchmark.py`` measures them.

    python benchmarks/kernel_model.py            # table: T stage shapes, T forward / training-step sums
    python benchmarks/kernel_model.py --json     # the same as JSON
    python benchmarks/kernel_model.py --spills   # every launchable config of UniRepLKNet-T/-S: exit 1 on a spill
    python benchmarks/kernel_model.py --calibrate
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# The real compiler, not Triton's interpreter: this must be set before Triton is imported.
os.environ["TRITON_INTERPRET"] = "0"

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource, make_backend  # noqa: E402
from triton.runtime.jit import JITFunction, create_function_from_signature  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from unireplknet.kernels import triton_dwconv  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
DEVICE = json.loads((DATA / "h100_device.json").read_text())
CALIBRATION_DATA = json.loads((DATA / "h100_calibration.json").read_text())
CUDNN = json.loads((DATA / "h100_cudnn_dwconv.json").read_text())
CALIBRATION = CALIBRATION_DATA["factor"]
TENSOR_EFFICIENCY = 0.35
HBM_EFFICIENCY = 0.8
TARGET = GPUTarget("cuda", 90, 32)
_BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# UniRepLKNet-T's (and -S's) depthwise convs per stage: (channels, map size, [(kernel, dilation), ...], blocks)
# at 224x224; a LarK block trains a 13x13 kernel beside dilated branches and deploys the merged 13x13.
LARK_BRANCHES = [(5, 1), (7, 2), (3, 3), (3, 4), (3, 5)]


# --------------------------------------------------------------------------------------------------
# Compiling a recorded launch for sm_90 and reading its SASS.


@dataclass
class Launch:
    """One kernel launch as the dispatcher issues it: the kernel, its grid function and arguments."""

    kernel: object  # a JITFunction or an Autotuner around one
    grid: Callable[[dict], tuple[int, ...]]
    args: tuple
    kwargs: dict

    @property
    def jit(self) -> JITFunction:
        kernel = self.kernel
        while not isinstance(kernel, JITFunction):  # an Autotuner (or heuristics) wraps the JITFunction
            kernel = kernel.fn
        return kernel

    @property
    def name(self) -> str:
        return self.jit.__name__

    def configs(self) -> list[dict]:
        """Every config this launch can run with: the autotuner's (after its pruning) or the fixed one."""
        if not hasattr(self.kernel, "configs"):
            return [dict(self.kwargs)]
        named = dict(zip(self.jit.arg_names, self.args, strict=False))
        configs = self.kernel.configs
        prune = getattr(self.kernel, "early_config_prune", None)
        if prune is not None:
            configs = prune(configs, named, **self.kwargs)
        return [{**self.kwargs, **c.kwargs, "num_warps": c.num_warps, "num_stages": c.num_stages} for c in configs]


@contextlib.contextmanager
def recording() -> Iterator[list[Launch]]:
    """Run the kernels' Python wrappers on CPU tensors and record their launches instead of running them."""
    launches: list[Launch] = []
    original = triton_dwconv.launch

    def record(kernel, grid, *args, **kwargs):
        launches.append(Launch(kernel, grid, args, kwargs))

    sm_count = triton_dwconv.multiprocessors
    triton_dwconv.launch = record
    triton_dwconv.multiprocessors = lambda device: DEVICE["sms"]  # launch geometry as on the H100
    try:
        yield launches
    finally:
        triton_dwconv.launch = original
        triton_dwconv.multiprocessors = sm_count


_BACKEND = make_backend(TARGET)
_SASS: dict[str, Sass] = {}


def _source(launch: Launch, config: dict) -> tuple[ASTSource, dict]:
    """The source and options a real launch with these arguments compiles (the JIT's own specialisation)."""
    fn = launch.jit
    binder = create_function_from_signature(fn.signature, fn.params, _BACKEND)
    bound, specialization, options = binder(*launch.args, **config)
    options, signature, constexprs, attrs = fn._pack_args(_BACKEND, config, bound, specialization, options)
    return ASTSource(fn, signature, constexprs, attrs), options.__dict__


def compile_key(launch: Launch, config: dict) -> str:
    src, options = _source(launch, config)
    return src.hash() + repr(sorted(options.items()))


def sass_of(launch: Launch, config: dict) -> Sass:
    """Compile ``launch`` with ``config`` for sm_90 (specialised like a GPU launch) and read its SASS."""
    key = compile_key(launch, config)
    if key not in _SASS:
        src, options = _source(launch, config)
        _SASS[key] = read_sass(triton.compile(src, target=TARGET, options=options).asm["cubin"])
    return _SASS[key]


@dataclass
class Sass:
    registers: int
    stack_bytes: int
    shared_bytes: int
    ops: list[tuple[str, str]]  # (opcode, modifiers and operands) per instruction
    loops: list[tuple[int, int]]  # (first, last) instruction index of each backward branch's body

    @property
    def spill_instructions(self) -> int:
        return sum(op in ("STL", "LDL") for op, _ in self.ops)


def read_sass(cubin: bytes) -> Sass:
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        usage = subprocess.run([_BIN / "cuobjdump", "-res-usage", f.name], capture_output=True, text=True).stdout
        text = subprocess.run([_BIN / "nvdisasm", "-c", f.name], capture_output=True, text=True).stdout
    finally:
        os.remove(f.name)
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+)", usage)
    ops, labels, branches = [], {}, []
    for line in text.splitlines():
        label = re.match(r"^(\.L_x_\d+):", line)
        if label:
            labels[label[1]] = len(ops)
            continue
        ins = re.match(r"\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9]*)(\S*)(.*)", line)
        if ins:
            if ins[1] == "BRA":
                target = re.search(r"\((\.L_x_\d+)\)", ins[3])
                if target:
                    branches.append((target[1], len(ops)))
            ops.append((ins[1], ins[2] + ins[3]))
    # A backward branch closes a loop; a branch to itself is the trap after EXIT, never executed.
    loops = [(labels[t], i) for t, i in branches if t in labels and labels[t] < i]
    return Sass(int(m[1]), int(m[2]), int(m[3]), ops, loops)


def dynamic_mix(sass: Sass, trips: list[float]) -> collections.Counter:
    """Warp-instructions of one program: each loop body counts ``trips[i]`` times per pass of its parent."""
    if len(trips) != len(sass.loops):
        raise ValueError(f"kernel has {len(sass.loops)} loops in SASS, model gave {len(trips)} trip counts")
    weight = [1.0] * len(sass.ops)
    for (first, last), n in zip(sass.loops, trips, strict=True):
        for j in range(first, last + 1):
            weight[j] *= n
    mix: collections.Counter = collections.Counter()
    for (op, _), w in zip(sass.ops, weight, strict=True):
        mix[op] += w
    mix["_tensor_fma"] = sum(_tensor_fma(op, rest) * w for (op, rest), w in zip(sass.ops, weight, strict=True))
    return mix


def _tensor_fma(op: str, rest: str) -> int:
    if op == "HMMA":  # HMMA.16816.F32.BF16: m16 n8 k16 per warp
        s = re.match(r"\.(\d\d)(\d)(\d+)", rest)
        return int(s[1]) * int(s[2]) * int(s[3]) if s else 0
    if op == "HGMMA":  # HGMMA.64xNx16: one warpgroup instruction, counted per warp (a quarter)
        s = re.match(r"\.64x(\d+)x(\d+)", rest)
        return 64 * int(s[1]) * int(s[2]) // 4 if s else 0
    return 0


# --------------------------------------------------------------------------------------------------
# Loop trip counts per program, from each kernel's loop structure (in SASS order) and its launch.


def _named(launch: Launch, config: dict) -> dict:
    return {**dict(zip(launch.jit.arg_names, launch.args, strict=False)), **config}


def _programs(launch: Launch, config: dict) -> tuple[int, ...]:
    return tuple(launch.grid(config))


TripFn = Callable[[dict, tuple[int, ...]], list[tuple[int, list[float]]]]
TRIPS: dict[str, TripFn] = {}


def trips_of(name: str):
    def register(fn: TripFn) -> TripFn:
        TRIPS[name] = fn
        return fn

    return register


@trips_of("_dwconv_forward_kernel")
def _forward_trips(a: dict, grid: tuple[int, ...]) -> list[tuple[int, list[float]]]:
    # One loop over the tile's TILE_H + K - 1 input rows (the kernel columns are unrolled).
    return [(math.prod(grid), [a["TILE_H"] + a["K"] - 1])]


@trips_of("_dwconv_weight_grad_kernel")
def _weight_grad_trips(a: dict, grid: tuple[int, ...]) -> list[tuple[int, list[float]]]:
    # Outer loop: the split's output rows; inner: the row's column tiles.
    rows, per = a["rows_total"], a["rows_per_split"]
    splits = grid[2]
    last = rows - per * (splits - 1)
    cols = triton.cdiv(a["W"], a["TILE_W"])
    per_split = grid[0] * grid[1]
    return [(per_split * (splits - 1), [per, cols]), (per_split, [last, cols])]


@trips_of("_mma_forward_kernel")
def _mma_forward_trips(a: dict, grid: tuple[int, ...]) -> list[tuple[int, list[float]]]:
    # One loop over the K kernel rows (one batched tensor-core product each).
    return [(math.prod(grid), [a["K"]])]


@trips_of("_mma_weight_grad_kernel")
def _mma_weight_grad_trips(a: dict, grid: tuple[int, ...]) -> list[tuple[int, list[float]]]:
    # One loop over the split's row blocks of TILE_M rows.
    rows, per, m = a["rows_total"], a["rows_per_split"], a["TILE_M"]
    col_tiles = triton.cdiv(a["W"], a["TILE_W"])
    splits = grid[2] // col_tiles
    last = rows - per * (splits - 1)
    per_split = grid[0] * grid[1] * col_tiles
    return [(per_split * (splits - 1), [per // m]), (per_split, [triton.cdiv(last, m)])]


# --------------------------------------------------------------------------------------------------
# Modeled time of a launch.


@dataclass
class Modeled:
    kernel: str
    config: dict
    registers: int
    stack_bytes: int
    spills: int
    instructions: float
    ffma_fraction: float
    tensor_fma: float
    issue_ms: float
    tensor_ms: float
    memory_ms: float
    mix: dict = field(default_factory=dict)

    @property
    def ms(self) -> float:
        return max(CALIBRATION * self.issue_ms, self.tensor_ms, self.memory_ms)

    def summary(self) -> dict:
        return {
            "kernel": self.kernel,
            "config": _config_summary(self.config),
            "registers": self.registers,
            "stack_bytes": self.stack_bytes,
            "spills": self.spills,
            "ffma_fraction": round(self.ffma_fraction, 3),
            "tensor_fma": self.tensor_fma,
            "issue_ms": round(self.issue_ms, 4),
            "tensor_ms": round(self.tensor_ms, 4),
            "memory_ms": round(self.memory_ms, 4),
            "modeled_ms": round(self.ms, 4),
            "mix": self.mix,
        }


def _config_summary(config: dict) -> dict:
    """The compile-time part of a config, JSON-ready (Triton dtypes as their names)."""
    keep = {k: v for k, v in config.items() if k.isupper() or k.startswith("num_")}
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in keep.items()}


def model_config(launch: Launch, config: dict, compulsory_bytes: float) -> Modeled:
    sass = sass_of(launch, config)
    named = _named(launch, config)
    grid = _programs(launch, config)
    total: collections.Counter = collections.Counter()
    for programs, trips in TRIPS[launch.name](named, grid):
        for op, n in dynamic_mix(sass, trips).items():
            total[op] += n * programs * config["num_warps"]
    tensor = total.pop("_tensor_fma")
    instructions = sum(total.values())
    scheduler_clocks = DEVICE["sms"] * DEVICE["schedulers_per_sm"] * DEVICE["clock_hz"]
    return Modeled(
        kernel=launch.name,
        config=config,
        registers=sass.registers,
        stack_bytes=sass.stack_bytes,
        spills=sass.spill_instructions,
        instructions=instructions,
        ffma_fraction=total["FFMA"] / instructions if instructions else 0.0,
        tensor_fma=tensor,
        issue_ms=instructions / scheduler_clocks * 1e3,
        tensor_ms=tensor / (DEVICE["dense_bf16_fma_per_s"] * TENSOR_EFFICIENCY) * 1e3,
        memory_ms=compulsory_bytes / (DEVICE["hbm_bytes_per_s"] * HBM_EFFICIENCY) * 1e3,
        mix={op: round(n) for op, n in total.most_common(10)},
    )


def model_launch(launch: Launch, compulsory_bytes: float) -> list[Modeled]:
    """Every config of one launch, fastest first (the tuner's ideal pick leads)."""
    return sorted((model_config(launch, c, compulsory_bytes) for c in launch.configs()), key=lambda m: m.ms)


# --------------------------------------------------------------------------------------------------
# The layer-level view: forward, input gradient, weight gradient of one depthwise conv.


@dataclass(frozen=True)
class Conv:
    batch: int
    channels: int
    size: int
    kernel: int
    dilation: int = 1
    dtype: str = "bf16"
    channels_last: bool = True

    @property
    def label(self) -> str:
        d = f" d{self.dilation}" if self.dilation > 1 else ""
        return f"{self.batch}x{self.channels}x{self.size}x{self.size} k{self.kernel}{d}"

    def tensors(self):
        dtype = DTYPES[self.dtype]
        x = torch.empty(self.batch, self.channels, self.size, self.size, dtype=dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        w = torch.empty(self.channels, 1, self.kernel, self.kernel, dtype=dtype)
        return x, w

    def bytes_per_tensor(self) -> int:
        return self.batch * self.channels * self.size * self.size * DTYPES[self.dtype].itemsize


def record_conv(conv: Conv, bias: bool = False) -> dict[tuple[str, str], Launch]:
    """The launches each Triton algorithm issues for the forward, input gradient and weight gradient of
    ``conv``, keyed by (direction, algorithm)."""
    from unireplknet.kernels.dwconv import ALGORITHMS, crop_kernel

    x, w = conv.tensors()
    w = crop_kernel(w, conv.size, conv.size, conv.dilation)
    b = torch.empty(conv.channels, dtype=x.dtype) if bias else None
    out = {}
    for name, algorithm in ALGORITHMS.items():
        if not algorithm.triton or x.dtype not in algorithm.dtypes:
            continue
        with recording() as launches:
            algorithm.forward(x, w, b, conv.dilation)
            algorithm.forward(x, w.flip(-1, -2), None, conv.dilation)
            algorithm.weight_grad(x, x, w.shape[-1], conv.dilation)
        for direction, launch in zip(("forward", "input_grad", "weight_grad"), launches, strict=True):
            out[direction, name] = launch
    return out


def model_conv(conv: Conv) -> dict[str, list[tuple[str, Modeled]]]:
    """Per direction, (algorithm, its best config) for every Triton algorithm, fastest first. The compulsory
    bytes are two activations (in and out) per direction."""
    traffic = 2 * conv.bytes_per_tensor()
    out: dict[str, list[tuple[str, Modeled]]] = collections.defaultdict(list)
    for (direction, name), launch in record_conv(conv).items():
        out[direction].append((name, model_launch(launch, traffic)[0]))
        out[direction].sort(key=lambda item: item[1].ms)
    return dict(out)


def model_spills(conv: Conv) -> int:
    """Spill instructions summed over every config of every algorithm and direction of ``conv``."""
    traffic = 2 * conv.bytes_per_tensor()
    return sum(m.spills for launch in record_conv(conv).values() for m in model_launch(launch, traffic))


def _cudnn(conv: Conv) -> dict | None:
    for row in CUDNN["rows"]:
        same = (row["C"], row["H"], row["k"]) == (conv.channels, conv.size, conv.kernel)
        layout = row["dtype"] == conv.dtype and row["channels_last"] == conv.channels_last
        if same and layout and conv.dilation == 1 and conv.batch == CUDNN["batch"]:
            return row
    return None


def stage_shapes(batch: int = 128) -> list[Conv]:
    return [Conv(batch, c, s, 13) for c, s in ((80, 56), (160, 28), (320, 14), (640, 7))]


def unireplknet_convs(variant: str, batch: int = 128, train: bool = True) -> list[tuple[Conv, int]]:
    """(conv, count) for every depthwise conv of one forward of ``variant`` at 224x224."""
    from unireplknet.model import default_kernel_sizes
    from unireplknet.variants import VARIANTS

    v = VARIANTS[variant]
    counts: collections.Counter = collections.Counter()
    for stage, (dim, sizes) in enumerate(zip(v.dims, default_kernel_sizes(v.depths), strict=True)):
        size = 56 >> stage
        for k in sizes:
            counts[Conv(batch, dim, size, k)] += 1
            if train and k >= 7:  # the LarK block's training structure: dilated branches beside the 13x13
                for bk, bd in LARK_BRANCHES:
                    counts[Conv(batch, dim, size, bk, bd)] += 1
    return list(counts.items())


# --------------------------------------------------------------------------------------------------
# Reports.


def _row(conv: Conv) -> dict:
    m = model_conv(conv)
    best = {d: ms[0][1] for d, ms in m.items()}
    names = {d: ms[0][0] for d, ms in m.items()}
    fwd = best["forward"].ms
    fwd_bwd = fwd + best["input_grad"].ms + best["weight_grad"].ms
    ref = _cudnn(conv)
    row = {
        "shape": conv.label,
        "forward_ms": round(fwd, 4),
        "forward_vs_cudnn": round(ref["fwd_ms"] / fwd, 2) if ref else None,
        "forward_backward_ms": round(fwd_bwd, 4),
        "forward_backward_vs_cudnn": round((ref["fwd_ms"] + ref["bwd_ms"]) / fwd_bwd, 2) if ref else None,
        "spills": model_spills(conv),
        "algorithm": "/".join(dict.fromkeys(names.values())),
        "algorithms": names,
        "cudnn_forward_ms": ref["fwd_ms"] if ref else None,
        "cudnn_forward_backward_ms": round(ref["fwd_ms"] + ref["bwd_ms"], 3) if ref else None,
        "directions": {d: b.summary() for d, b in best.items()},
        "alternatives_ms": {d: {n: round(x.ms, 4) for n, x in ms} for d, ms in m.items()},
    }
    return row


def _cudnn_or_bound(conv: Conv) -> tuple[float, float, bool]:
    """cuDNN's (forward, forward + backward) for ``conv``; for a shape without an anchor (dilated branches,
    5x5, 7x7) its anchored 3x3 time at the same (C, H), a lower bound (it moves the same bytes, fewer taps)."""
    ref = _cudnn(conv)
    if ref is not None:
        return ref["fwd_ms"], ref["fwd_ms"] + ref["bwd_ms"], True
    small = _cudnn(Conv(conv.batch, conv.channels, conv.size, 3, 1, conv.dtype, conv.channels_last))
    return small["fwd_ms"], small["fwd_ms"] + small["bwd_ms"], False


def model_sums(variant: str = "unireplknet_t", batch: int = 128) -> dict:
    """One forward and one training step (forward + both gradients) through every depthwise conv.

    Convs the dispatcher leaves to cuDNN (3x3 undilated) count at cuDNN's time on both sides."""
    from unireplknet.kernels.dwconv import MIN_TRITON_KERNEL

    ours_fwd = ours_step = cudnn_fwd = cudnn_step = 0.0
    bounded = False
    for conv, count in unireplknet_convs(variant, batch, train=True):
        ref_fwd, ref_step, anchored = _cudnn_or_bound(conv)
        bounded |= not anchored
        cudnn_fwd += count * ref_fwd
        cudnn_step += count * ref_step
        if conv.kernel < MIN_TRITON_KERNEL and conv.dilation == 1:
            ours_fwd += count * ref_fwd
            ours_step += count * ref_step
            continue
        m = model_conv(conv)
        fwd = m["forward"][0][1].ms
        ours_fwd += count * fwd
        ours_step += count * (fwd + m["input_grad"][0][1].ms + m["weight_grad"][0][1].ms)
    return {
        "model": variant,
        "batch": batch,
        "forward_ms": round(ours_fwd, 3),
        "cudnn_forward_ms": round(cudnn_fwd, 3),
        "forward_vs_cudnn": round(cudnn_fwd / ours_fwd, 2),
        "step_ms": round(ours_step, 3),
        "cudnn_step_ms": round(cudnn_step, 3),
        "step_vs_cudnn": round(cudnn_step / ours_step, 2),
        "cudnn_branches": "lower bound (its 3x3 time)" if bounded else "anchored",
    }


def branch_shapes(batch: int = 128) -> list[Conv]:
    """The dilated branches beside the 13x13 kernels of UniRepLKNet-T's training structure (stages 2-4)."""
    return [Conv(batch, c, s, k, d) for c, s in ((160, 28), (320, 14), (640, 7)) for k, d in LARK_BRANCHES]


def _precision_row(conv: Conv) -> dict:
    """fp16 / fp32 against cuDNN's best layout for this shape: its fp32 NCHW anchor."""
    m = model_conv(conv)
    best = {d: ms[0] for d, ms in m.items()}
    fwd = best["forward"][1].ms
    fwd_bwd = fwd + best["input_grad"][1].ms + best["weight_grad"][1].ms
    ref = _cudnn(Conv(conv.batch, conv.channels, conv.size, conv.kernel, conv.dilation, "fp32", False))
    return {
        "shape": conv.label,
        "dtype": conv.dtype,
        "layout": "channels_last" if conv.channels_last else "nchw",
        "forward_ms": round(fwd, 4),
        "forward_vs_cudnn_fp32_nchw": round(ref["fwd_ms"] / fwd, 2),
        "forward_backward_ms": round(fwd_bwd, 4),
        "forward_backward_vs_cudnn_fp32_nchw": round((ref["fwd_ms"] + ref["bwd_ms"]) / fwd_bwd, 2),
        "algorithms": {d: name for d, (name, _) in best.items()},
    }


def report() -> dict:
    return {
        "modeled": "H100 SXM, static SASS model (not measured)",
        "calibration": CALIBRATION,
        "shapes": [_row(c) for c in stage_shapes()],
        "branches": [_row(c) for c in branch_shapes()],
        "sums": model_sums(),
        "other_precisions": [
            _precision_row(Conv(c.batch, c.channels, c.size, c.kernel, 1, dtype, cl))
            for c in stage_shapes()
            for dtype, cl in (("fp16", True), ("fp32", False))
        ],
    }


def print_table(r: dict) -> None:
    print(f"MODELED H100 times (static SASS model, calibration {r['calibration']}), batch 128, bf16, channels_last")
    print(f"{'shape':<20} {'fwd ms':>8} {'vs cuDNN':>9} {'fwd+bwd ms':>11} {'vs cuDNN':>9} {'spills':>7}  algorithm")
    for s in r["shapes"]:
        print(
            f"{s['shape']:<20} {s['forward_ms']:>8.3f} {s['forward_vs_cudnn']:>8.2f}x {s['forward_backward_ms']:>11.3f}"
            f" {s['forward_backward_vs_cudnn']:>8.2f}x {s['spills']:>7}  {s['algorithm']}"
        )
    for s in r["branches"]:
        print(
            f"{s['shape']:<20} {s['forward_ms']:>8.3f} {'':>9} {s['forward_backward_ms']:>11.3f} {'':>9}"
            f" {s['spills']:>7}  {s['algorithm']}  (no cuDNN anchor)"
        )
    for s in r["other_precisions"]:
        print(
            f"{s['shape']:<20} {s['dtype']} {s['layout']}: forward {s['forward_ms']:.3f} ms "
            f"({s['forward_vs_cudnn_fp32_nchw']:.2f}x cuDNN fp32 NCHW), forward+backward {s['forward_backward_ms']:.3f} ms "
            f"({s['forward_backward_vs_cudnn_fp32_nchw']:.2f}x)"
        )
    t = r["sums"]
    print(
        f"{t['model']} (every depthwise conv, branches included): forward {t['forward_ms']:.2f} ms vs cuDNN "
        f"{t['cudnn_forward_ms']:.2f} ms ({t['forward_vs_cudnn']:.2f}x); training step {t['step_ms']:.2f} ms vs "
        f"cuDNN {t['cudnn_step_ms']:.2f} ms ({t['step_vs_cudnn']:.2f}x); cuDNN branches: {t['cudnn_branches']}"
    )


def markdown_table(r: dict) -> str:
    """The README's table (every figure modeled except cuDNN's, which the anchors measured)."""
    lines = [
        "| C x H x W, k13 | forward (modeled) | cuDNN forward | ratio | fwd + bwd (modeled) | cuDNN fwd + bwd | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in r["shapes"]:
        shape = s["shape"].split(" ")[0].split("x", 1)[1]
        lines.append(
            f"| {shape} | {s['forward_ms']:.3f} ms | {s['cudnn_forward_ms']:.2f} ms | {s['forward_vs_cudnn']:.1f}x "
            f"| {s['forward_backward_ms']:.3f} ms | {s['cudnn_forward_backward_ms']:.1f} ms "
            f"| {s['forward_backward_vs_cudnn']:.1f}x |"
        )
    t = r["sums"]
    lines.append(
        f"| UniRepLKNet-T, every depthwise conv (training structure) | {t['forward_ms']:.2f} ms "
        f"| {t['cudnn_forward_ms']:.1f} ms | {t['forward_vs_cudnn']:.1f}x | {t['step_ms']:.2f} ms "
        f"| {t['cudnn_step_ms']:.1f} ms | {t['step_vs_cudnn']:.1f}x |"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# The spill guard: every config the dispatcher can launch for UniRepLKNet-T and -S.


# The precisions UniRepLKNet runs in: bf16 autocast + channels_last (training and inference on the GPU)
# and fp32 NCHW (the anchors' other layout). ``--all`` adds the other dtype/layout combinations.
MAIN_PRECISIONS = (("bf16", True), ("fp32", False))


def launchable(every_precision: bool = False) -> list[tuple[str, Launch, dict]]:
    """(what, launch, config) for every distinct compile the dispatcher can launch for the depthwise convs
    of UniRepLKNet-T and -S at 224x224 (all batch sizes: the row counts are not specialised)."""
    from unireplknet.kernels.dwconv import MIN_TRITON_KERNEL

    precisions = [(d, cl) for d in DTYPES for cl in (True, False)] if every_precision else MAIN_PRECISIONS
    convs = {c for v in ("unireplknet_t", "unireplknet_s") for c, _ in unireplknet_convs(v, batch=2)}
    seen, out = set(), []
    for base in sorted(convs, key=lambda c: c.label):
        if base.kernel < MIN_TRITON_KERNEL and base.dilation == 1:
            continue  # cuDNN's: the dispatcher never sends these to Triton on its own
        for dtype, cl in precisions:
            conv = Conv(base.batch, base.channels, base.size, base.kernel, base.dilation, dtype, cl)
            for bias in (False, True):
                for (direction, name), launch in record_conv(conv, bias).items():
                    for config in launch.configs():
                        key = compile_key(launch, config)
                        if key not in seen:
                            seen.add(key)
                            what = f"{conv.label} {dtype} {'NHWC' if cl else 'NCHW'} {direction} {name}"
                            out.append((what, launch, config))
    return out


def _spill_check(item: tuple[str, Launch, dict]) -> dict:
    what, launch, config = item
    sass = sass_of(launch, config)
    return {
        "what": what,
        "kernel": launch.name,
        "config": _config_summary(config),
        "registers": sass.registers,
        "stack_bytes": sass.stack_bytes,
        "spills": sass.spill_instructions,
    }


def spill_report(every_precision: bool = False, workers: int = 2) -> list[dict]:
    # Threads: most of a compile is ptxas and nvdisasm, separate processes that run in parallel.
    items = launchable(every_precision)
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(_spill_check, items))


# --------------------------------------------------------------------------------------------------
# Calibration: the naive per-tap kernel that was timed on a real H100.


@triton.jit
def naive_forward(x_ptr, w_ptr, y_ptr, N, H, W, C, K: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
                  BC: tl.constexpr):  # fmt: skip
    """The calibration kernel (not a design): one masked input load per kernel tap, NHWC, fp32 accumulation."""
    pid_s = tl.program_id(0)
    pid_c = tl.program_id(1)
    tiles_w = tl.cdiv(W, BW)
    tiles_h = tl.cdiv(H, BH)
    n = pid_s // (tiles_h * tiles_w)
    r = pid_s % (tiles_h * tiles_w)
    h0 = (r // tiles_w) * BH
    w0 = (r % tiles_w) * BW
    offs_hw = tl.arange(0, BH * BW)
    hh = h0 + offs_hw // BW
    ww = w0 + offs_hw % BW
    cc = pid_c * BC + tl.arange(0, BC)
    cmask = cc < C
    acc = tl.zeros((BH * BW, BC), dtype=tl.float32)
    P: tl.constexpr = K // 2
    for i in tl.static_range(K):
        hi = hh + i - P
        hok = (hi >= 0) & (hi < H)
        for j in tl.static_range(K):
            wi = ww + j - P
            ok = hok & (wi >= 0) & (wi < W)
            ptr = x_ptr + ((n * H + hi) * W + wi)[:, None] * C + cc[None, :]
            xv = tl.load(ptr, mask=ok[:, None] & cmask[None, :], other=0.0)
            wv = tl.load(w_ptr + cc * (K * K) + i * K + j, mask=cmask, other=0.0)
            acc += xv.to(tl.float32) * wv.to(tl.float32)[None, :]
    omask = ((hh < H) & (ww < W))[:, None] & cmask[None, :]
    tl.store(y_ptr + ((n * H + hh) * W + ww)[:, None] * C + cc[None, :], acc.to(y_ptr.dtype.element_ty), mask=omask)


TRIPS["naive_forward"] = lambda a, grid: [(math.prod(grid), [])]


def calibrate() -> list[dict]:
    """measured / issue_ms of the naive kernel on the four T stage shapes, with this file's counting."""
    rows = []
    for m in CALIBRATION_DATA["measured"]:
        c, h, (bh, bw, bc) = m["C"], m["H"], m["tile"]
        x = torch.empty(128, h, h, c, dtype=torch.bfloat16)
        w = torch.empty(c, 13, 13, dtype=torch.bfloat16)
        grid = (128 * triton.cdiv(h, bh) * triton.cdiv(h, bw), triton.cdiv(c, bc))
        launch = Launch(naive_forward, lambda meta, g=grid: g, (x, w, x, 128, h, h, c), {})
        config = {"K": 13, "BH": bh, "BW": bw, "BC": bc, "num_warps": m["num_warps"], "num_stages": m["num_stages"]}
        modeled = model_config(launch, config, 0.0)
        rows.append(
            {
                "shape": f"128x{c}x{h}x{h} k13",
                "measured_ms": m["triton_ms"],
                "issue_ms": round(modeled.issue_ms, 4),
                "factor": round(m["triton_ms"] / modeled.issue_ms, 3),
                "registers": modeled.registers,
                "spills": modeled.spills,
            }
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--spills", action="store_true", help="compile every launchable config; exit 1 on any spill")
    p.add_argument("--all", action="store_true", help="with --spills: every dtype and layout, not just the main two")
    p.add_argument("--calibrate", action="store_true", help="recompute the calibration factor from the H100 data")
    p.add_argument("--markdown", action="store_true", help="print the README's table")
    p.add_argument("--out", type=Path, help="also write the JSON report here (benchmarks/data/kernel_model.json)")
    args = p.parse_args()
    if args.calibrate:
        rows = calibrate()
        factors = [r["factor"] for r in rows]
        out = {"rows": rows, "factor_mean": round(sum(factors) / len(factors), 3), "in_use": CALIBRATION}
        print(json.dumps(out, indent=1))
        return
    if args.spills:
        rows = spill_report(args.all)
        bad = [r for r in rows if r["spills"] or r["stack_bytes"]]
        print(json.dumps({"configs": len(rows), "with_spills": bad, "rows": rows} if args.json else bad, indent=1))
        if not args.json:
            print(f"{len(rows)} configs compiled for sm_90, {len(bad)} with spills")
        sys.exit(1 if bad else 0)
    r = report()
    if args.out:
        args.out.write_text(json.dumps(r, indent=1) + "\n")
    if args.json:
        print(json.dumps(r, indent=1))
    elif args.markdown:
        print(markdown_table(r))
    else:
        print_table(r)


if __name__ == "__main__":
    main()
