"""One-command GPU check and benchmark of the Triton depthwise conv and UniRepLKNet (H100-sized).

    python benchmarks/gpu_benchmark.py --out "${OUT:-.}/gpu_benchmark.json"
    python benchmarks/gpu_benchmark.py --smoke --out smoke.json  # no GPU: the checks on tiny shapes,
                                                                 # on the CPU under Triton's interpreter

Sections, in priority order (the JSON is rewritten after each, so a timeout keeps what finished;
sections that would start after ``--budget-s`` are recorded as skipped):

1. ``correctness``: every depthwise-conv layer shape of UniRepLKNet-T and -S at 224x224 and the
   dilated re-parameterization branches of UniRepLKNet-T (training structure), forward and backward
   (input, weight and bias gradients), Triton path forced, in bf16/channels_last, fp16/channels_last
   and fp32/contiguous, against an fp64 reference; cuDNN's own error in the same dtype is reported
   beside ours. Plus: the weight gradient is bitwise deterministic.
2. ``dwconv``: 13x13 depthwise conv at batch 128 on the four UniRepLKNet-T stage shapes, every
   algorithm (cuDNN, ``triton_direct``, ``triton_mma``) and ``auto`` (the run-time selection), forward
   and forward+backward (bf16 channels_last) and forward (fp32 NCHW); the dilated branches of the 13x13
   stages, forward+backward (bf16 channels_last); and a kernel-size sweep at 320x14x14 to check the
   dispatch threshold. Each case prints the selector's choice per direction and, for bf16
   channels_last, the static model's prediction per algorithm (``data/kernel_model.json``) beside the
   measured time, so the first GPU run also checks the model.
3. ``inference`` / ``training``: UniRepLKNet-T (re-parameterized for inference; AdamW steps for
   training), batch 128, 224x224: ours (auto dispatch) vs the same model on PyTorch's conv (= the
   reference) vs timm's ConvNeXt-T, in bf16 autocast + channels_last and in fp32 NCHW, eager; then
   bf16 with ``torch.compile``. Training also reports peak memory and how many depthwise convs
   (dilated branches separately) ran on the Triton path in an eager step.

Fits in under 8 minutes on an H100: no section starts after ``--budget-s`` (default 360 s); Triton
compiles ~1-2 s per kernel variant on first use.

Every figure comes with its same-run baseline and the ratio; timings use CUDA events (median).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

if "--smoke" in sys.argv:  # Triton reads this when first imported, which importing unireplknet does
    os.environ["TRITON_INTERPRET"] = "1"

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import unireplknet  # noqa: E402
from unireplknet.kernels import (  # noqa: E402
    ALGORITHMS,
    DepthwiseConv2d,
    DepthwiseConv2dFunction,
    backend,
    depthwise_conv2d,
    get_selector,
)
from unireplknet.layers import DEFAULT_BRANCHES  # noqa: E402

T_STAGES = [(80, 56), (160, 28), (320, 14), (640, 7)]
# The dilated branches beside each 13x13 kernel of UniRepLKNet-T's training structure (stages 2-4):
# (channels, size, kernel, dilation).
T_BRANCHES = [(c, size, k, r) for c, size in T_STAGES[1:] for k, r in DEFAULT_BRANCHES[13] if r > 1]
# (channels, size, kernel, dilation) of every depthwise conv in UniRepLKNet-T/S at 224x224 (deploy
# structure), and T's dilated training branches.
LAYER_SHAPES = {
    "T": [(80, 56, 3, 1), (160, 28, 13, 1), (320, 14, 13, 1), (320, 14, 3, 1), (640, 7, 13, 1)],
    "S": [(96, 56, 3, 1), (192, 28, 13, 1), (384, 14, 13, 1), (384, 14, 3, 1), (768, 7, 13, 1)],
    "T_branches": T_BRANCHES,
}
# --smoke: tiny shapes spanning several interpreter tiles (4 rows x 8 columns x 8 channels): a 13x13
# kernel cropped to 9x9 on a 5x5 map, and a dilated branch whose 7 rows form 3 interleaved row tiles.
SMOKE_SHAPES = {"tiny": [(10, 5, 13, 1)], "tiny_branches": [(10, 7, 3, 3)]}
CHECK_DTYPES = [("bf16", torch.bfloat16, True), ("fp16", torch.float16, True), ("fp32", torch.float32, False)]
TOLERANCE = {"bf16": 2e-2, "fp16": 3e-3, "fp32": 1e-4}


class Report:
    def __init__(self, path: Path, budget_s: float, device: str) -> None:
        self.path, self.budget_s, self.start = path, budget_s, time.time()
        self.data: dict = {
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu, Triton interpreter",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "python": platform.python_version(),
            "batch": 128,
            "image_size": 224,
            "sections": {},
        }
        try:
            import timm
            import triton

            self.data.update(triton=triton.__version__, timm=timm.__version__)
        except ImportError as err:
            self.data["import_error"] = str(err)

    def elapsed(self) -> float:
        return time.time() - self.start

    def run(self, name: str, fn) -> None:
        if self.elapsed() > self.budget_s:
            self.data["sections"][name] = {"skipped": f"time budget {self.budget_s:.0f}s spent"}
        else:
            t0 = time.time()
            try:
                self.data["sections"][name] = fn()
            except Exception as err:  # a failed section must not lose the others' numbers
                self.data["sections"][name] = {"error": f"{type(err).__name__}: {err}"}
            self.data["sections"][name + "_seconds"] = round(time.time() - t0, 1)
            print(f"[{self.elapsed():6.0f}s] {name}: {json.dumps(self.data['sections'][name])[:2000]}", flush=True)
        self.data["elapsed_s"] = round(self.elapsed(), 1)
        self.path.write_text(json.dumps(self.data, indent=2))


def cuda_time_ms(fn, warmup: int = 3, reps: int = 10) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.double() - expected).abs().max() / expected.abs().max().clamp_min(1e-12)).item()


# ---- 1. correctness -----------------------------------------------------------------------------


def _conv_and_grads(x, weight, bias, grad, path, dilation=1):
    x = x.detach().requires_grad_()
    weight = weight.detach().requires_grad_()
    bias = bias.detach().requires_grad_()
    y = depthwise_conv2d(x, weight, bias, dilation, backend=path)
    y.backward(grad)
    return y.detach(), x.grad, weight.grad, bias.grad


def correctness(shapes: dict = LAYER_SHAPES, device: str = "cuda", batch: int = 4) -> dict:
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # an fp32 cuDNN baseline, not TF32
    try:
        return _check_all_layers(shapes, device, batch)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def _check_all_layers(shapes: dict, device: str, batch: int) -> dict:
    results, failures = [], []
    for model, layers in shapes.items():
        for channels, size, k, dilation in layers:
            gen = torch.Generator(device=device).manual_seed(channels + k + dilation)
            x64 = torch.randn(batch, channels, size, size, device=device, dtype=torch.float64, generator=gen)
            w64 = torch.randn(channels, 1, k, k, device=device, dtype=torch.float64, generator=gen) / k
            b64 = torch.randn(channels, device=device, dtype=torch.float64, generator=gen)
            g64 = torch.randn(x64.shape, device=device, dtype=torch.float64, generator=gen)
            reference = _conv_and_grads(x64, w64, b64, g64, "torch", dilation)
            for name, dtype, channels_last in CHECK_DTYPES:
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                inputs = [t.to(dtype) for t in (x64, w64, b64, g64)]
                inputs[0] = inputs[0].contiguous(memory_format=fmt)
                inputs[3] = inputs[3].contiguous(memory_format=fmt)
                ours = _conv_and_grads(*inputs, "triton", dilation)
                cudnn = _conv_and_grads(*inputs, "torch", dilation)
                row = {"model": model, "C": channels, "HW": size, "k": k, "dilation": dilation, "dtype": name}
                for label, a, c, e in zip(("y", "dx", "dw", "db"), ours, cudnn, reference, strict=True):
                    row[label] = round(rel_err(a, e), 7)
                    row[label + "_cudnn"] = round(rel_err(c, e), 7)
                row["ok"] = all(
                    row[lbl] <= max(TOLERANCE[name], 2 * row[lbl + "_cudnn"]) for lbl in ("y", "dx", "dw", "db")
                )
                results.append(row)
                if not row["ok"]:
                    failures.append(row)
    # Deterministic weight gradient: two backward passes, bitwise equal, for the widest plain and
    # the widest dilated layer.
    layers = [layer for group in shapes.values() for layer in group]
    widest = [max((s for s in layers if (s[3] > 1) == dilated), key=lambda s: s[0]) for dilated in (False, True)]
    return {
        "all_ok": not failures,
        "cases": len(results),
        "failures": failures,
        "weight_grad_deterministic": {
            "C{}_HW{}_k{}_d{}".format(*layer): _weight_grad_deterministic(*layer, device, 8 * batch) for layer in widest
        },
        "results": results,
    }


def _weight_grad_deterministic(channels, size, k, dilation, device, batch) -> bool:
    x = torch.randn(batch, channels, size, size, device=device, dtype=torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, 1, k, k, device=device, dtype=torch.bfloat16)
    b, g = torch.zeros(channels, device=device, dtype=torch.bfloat16), torch.randn_like(x)
    dw1 = _conv_and_grads(x, w, b, g, "triton", dilation)[2]
    dw2 = _conv_and_grads(x, w, b, g, "triton", dilation)[2]
    return bool(torch.equal(dw1, dw2))


# ---- 2. depthwise conv speed --------------------------------------------------------------------


MODEL_REPORT = Path(__file__).resolve().parent / "data" / "kernel_model.json"


def _modeled() -> dict:
    """The static model's predictions (``kernel_model.py --out``) by shape label, to check them here."""
    if not MODEL_REPORT.exists():
        return {}
    report = json.loads(MODEL_REPORT.read_text())
    return {row["shape"]: row for row in report["shapes"] + report["branches"]}


MODELED = _modeled()


def _selected(batch, channels, size, k, dilation, dtype, channels_last) -> dict:
    """The selector's choice per direction for this call signature."""
    layout = "channels_last" if channels_last else "nchw"
    sig = f"|{batch}x{channels}x{size}x{size}|k{k}|d{dilation}|{str(dtype).removeprefix('torch.')}|{layout}|"
    return {key.split("|")[0]: name for key, name in get_selector().choices.items() if sig in key}


def _dw_case(channels, size, k, dtype, channels_last, backward, batch=128, dilation=1):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, channels, size, size, device="cuda", dtype=dtype).contiguous(memory_format=fmt)
    w = (torch.randn(channels, 1, k, k, device="cuda", dtype=dtype) / k).requires_grad_(backward)
    b = torch.randn(channels, device="cuda", dtype=dtype).requires_grad_(backward)
    x.requires_grad_(backward)
    grad = torch.randn_like(x)
    out, results = {}, {}
    paths = [name for name, a in ALGORITHMS.items() if dtype in a.dtypes] + ["auto"]
    for path in paths:

        def step(path=path):
            with torch.set_grad_enabled(backward):
                y = depthwise_conv2d(x, w, b, dilation, backend=path)
                return (y, *torch.autograd.grad(y, (x, w, b), grad)) if backward else (y,)

        results[path] = step()  # also tunes the Triton tiles and, for auto, selects the algorithms
        out[path + "_ms"] = round(cuda_time_ms(step), 4)
    out["speedup_vs_cudnn"] = round(out["torch_ms"] / out["auto_ms"], 2)  # what a user gets (auto)
    out["selected"] = _selected(batch, channels, size, k, dilation, dtype, channels_last)
    out["max_rel_diff_vs_cudnn"] = round(
        max(rel_err(a, c.double()) for p in paths[1:] for a, c in zip(results[p], results["torch"], strict=True)), 6
    )
    label = f"{batch}x{channels}x{size}x{size} k{k}" + (f" d{dilation}" if dilation > 1 else "")
    row = MODELED.get(label) if dtype == torch.bfloat16 and channels_last else None
    if row is not None:  # the static model's prediction beside each measured figure
        alt = row["alternatives_ms"]
        directions = ("forward", "input_grad", "weight_grad") if backward else ("forward",)
        out["modeled_ms"] = {
            name: round(sum(alt[d][name] for d in directions), 4)
            for name in alt["forward"]
            if name in alt["weight_grad"]
        }
        for name, modeled in out["modeled_ms"].items():
            out[f"{name}_measured_over_modeled"] = round(out[f"{name}_ms"] / modeled, 2)
    return out


def dwconv() -> dict:
    rows = {}
    for channels, size in T_STAGES:
        rows[f"{channels}x{size}x{size}_k13"] = {
            "bf16_cl_fwd": _dw_case(channels, size, 13, torch.bfloat16, True, False),
            "bf16_cl_fwd_bwd": _dw_case(channels, size, 13, torch.bfloat16, True, True),
            "fp32_nchw_fwd": _dw_case(channels, size, 13, torch.float32, False, False),
        }
    branches = {
        f"{c}x{size}x{size}_k{k}_d{r}": _dw_case(c, size, k, torch.bfloat16, True, True, dilation=r)
        for c, size, k, r in T_BRANCHES
    }
    sweep = {f"k{k}": _dw_case(320, 14, k, torch.bfloat16, True, False) for k in (5, 7)}
    fwd = [r["bf16_cl_fwd"]["speedup_vs_cudnn"] >= 10 for r in rows.values()]
    fwd_bwd = [r["bf16_cl_fwd_bwd"]["speedup_vs_cudnn"] >= 6 for r in rows.values()]
    return {
        "stages": rows,
        "dilated_branches_bf16_cl_fwd_bwd": branches,
        # The selection guards the dilated branches: auto must never be slower than cuDNN (5% noise).
        "auto_never_slower_than_cudnn": all(
            case["auto_ms"] <= 1.05 * case["torch_ms"]
            for group in (*rows.values(), branches)
            for case in group.values()
        ),
        "dispatch_sweep_320x14x14_bf16_cl_fwd": sweep,
        "target_fwd_10x_met": all(fwd),
        "target_fwd_bwd_6x_met": all(fwd_bwd),
    }


# ---- 3. models ----------------------------------------------------------------------------------

# (label, fp32, channels_last): bf16 autocast + channels_last, and the anchors' fp32 NCHW.
PRECISIONS = (("bf16_cl", False, True), ("fp32_nchw", True, False))
# (entry, model, depthwise-conv path): ours, ours on PyTorch's conv (= the reference), ConvNeXt-T.
CONTENDERS = (
    ("ours", "unireplknet_t", "auto"),
    ("torch_conv", "unireplknet_t", "torch"),
    ("convnext_t", "convnext_tiny", "auto"),
)


def _build(name: str, deploy: bool, channels_last: bool) -> torch.nn.Module:
    import timm

    torch.manual_seed(0)
    model = timm.create_model(name) if name == "convnext_tiny" else unireplknet.create_model(name, deploy=deploy)
    model = model.cuda()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _batch(channels_last: bool, batch: int = 128) -> torch.Tensor:
    x = torch.randn(batch, 3, 224, 224, device="cuda")
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _ratios(entry: dict) -> dict:
    if all(isinstance(entry.get(k + "_img_s"), float) for k in ("ours", "torch_conv", "convnext_t")):
        entry["ours_vs_torch_conv"] = round(entry["ours_img_s"] / entry["torch_conv_img_s"], 2)
        entry["ours_vs_convnext_t"] = round(entry["ours_img_s"] / entry["convnext_t_img_s"], 2)
    return entry


def inference(report: Report, compiled: bool) -> dict:
    results = {}
    for label, fp32, channels_last in PRECISIONS[:1] if compiled else PRECISIONS:
        x, entry = _batch(channels_last), {}
        for key, name, path in CONTENDERS:
            if report.elapsed() > report.budget_s:
                entry[key + "_img_s"] = "skipped: time budget spent"
                continue
            model = _build(name, deploy=True, channels_last=channels_last).eval()
            with backend(path):  # the dispatch is traced into compiled graphs: set it before compiling
                torch._dynamo.reset()
                run = torch.compile(model) if compiled else model

                def step(run=run, fp32=fp32, x=x):
                    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=not fp32):
                        return run(x)

                entry[key + "_img_s"] = round(128 / cuda_time_ms(step) * 1000, 1)
            del model, run
            torch.cuda.empty_cache()
        results[label] = _ratios(entry)
    bf16 = results["bf16_cl"]
    if "ours_vs_torch_conv" in bf16:
        results["targets"] = {
            "ours_vs_torch_conv>=2.5": bf16["ours_vs_torch_conv"] >= 2.5,
            "ours_vs_convnext_t>=0.8": bf16["ours_vs_convnext_t"] >= 0.8,
        }
    return results


def training(report: Report, compiled: bool) -> dict:
    results = {}
    for label, fp32, channels_last in PRECISIONS[:1] if compiled else PRECISIONS:
        x, entry = _batch(channels_last), {}
        target = torch.randint(0, 1000, (128,), device="cuda")
        for key, name, path in CONTENDERS:
            if report.elapsed() > report.budget_s:
                entry[key + "_img_s"] = "skipped: time budget spent"
                continue
            model = _build(name, deploy=False, channels_last=channels_last).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            with backend(path):
                torch._dynamo.reset()
                run = torch.compile(model) if compiled else model

                def step(run=run, fp32=fp32, optimizer=optimizer, x=x, target=target):
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=not fp32):
                        loss = F.cross_entropy(run(x), target)
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)

                if compiled or name != "unireplknet_t":
                    step()  # optimizer state exists before peak memory is measured
                else:
                    entry[key + "_triton_path"] = triton_path_audit(model, step)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                entry[key + "_img_s"] = round(128 / cuda_time_ms(step, warmup=2, reps=6) * 1000, 1)
                entry[key + "_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            del model, run, optimizer
            torch.cuda.empty_cache()
        _ratios(entry)
        if "ours_peak_gib" in entry and "torch_conv_peak_gib" in entry:
            entry["peak_memory_not_higher"] = entry["ours_peak_gib"] <= entry["torch_conv_peak_gib"]
        results[label] = entry
    bf16 = results["bf16_cl"]
    if "ours_vs_torch_conv" in bf16:
        results["targets"] = {
            "ours_vs_torch_conv>=3.5": bf16["ours_vs_torch_conv"] >= 3.5,
            "peak_memory_not_higher": bf16.get("peak_memory_not_higher"),
        }
        if "ours_triton_path" in bf16:
            audit = bf16["ours_triton_path"]
            results["targets"]["dilated_branches_on_triton"] = audit["dilated_on_triton"] == audit["dilated"]
    return results


def triton_path_audit(model: torch.nn.Module, step) -> dict:
    """Run ``step`` once, counting the depthwise convs that took the Triton path (one forward call each)."""
    with mock.patch.object(DepthwiseConv2dFunction, "apply", wraps=DepthwiseConv2dFunction.apply) as apply:
        step()
    dilations = [call.args[3] for call in apply.call_args_list]
    convs = [m for m in model.modules() if isinstance(m, DepthwiseConv2d)]
    return {
        "depthwise_convs": len(convs),
        "dilated": sum(m.dilation[0] > 1 for m in convs),
        "on_triton": len(dilations),
        "dilated_on_triton": sum(d > 1 for d in dilations),
    }


def smoke(report: Report) -> None:
    """The CPU-runnable parts on tiny shapes, under Triton's interpreter: no timings."""
    report.run("correctness", lambda: correctness(SMOKE_SHAPES, "cpu", batch=1))

    def training_audit() -> dict:
        # On the CPU the auto dispatch keeps PyTorch's conv, so the Triton path is forced here.
        tiny = dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (7,), (7,), (3,)))
        model = unireplknet.create_model("unireplknet_a", num_classes=5, **tiny)
        x, target = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
        with backend("triton"):
            audit = triton_path_audit(model, lambda: F.cross_entropy(model(x), target).backward())
        audit["ok"] = audit["on_triton"] == audit["depthwise_convs"] and audit["dilated_on_triton"] == audit["dilated"]
        return audit

    report.run("training_triton_path", training_audit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(os.environ.get("OUT", ".")) / "gpu_benchmark.json"
    parser.add_argument("--out", type=Path, default=default_out, help=f"JSON path (default {default_out})")
    parser.add_argument(
        "--budget-s", type=float, default=360.0, help="start no new measurement after this many seconds"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile sections")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="no GPU needed: run the checks on tiny shapes on the CPU (Triton interpreter)",
    )
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        report = Report(args.out, args.budget_s, "cpu")
        smoke(report)
        print(f"wrote {args.out} in {report.elapsed():.0f}s")
        return
    if not torch.cuda.is_available():
        raise SystemExit("error: this benchmark needs a CUDA GPU (or pass --smoke)")
    report = Report(args.out, args.budget_s, "cuda")
    # The correctness check runs every shape and dtype on the default tiles (tuning them all would
    # cost minutes of compiling); the speed section checks its tuned tiles against cuDNN's output.
    os.environ["UNIREPLKNET_DWCONV_AUTOTUNE"] = "0"
    report.run("correctness", correctness)
    os.environ["UNIREPLKNET_DWCONV_AUTOTUNE"] = "1"
    report.run("dwconv", dwconv)
    torch.backends.cudnn.benchmark = True
    report.run("inference", lambda: inference(report, compiled=False))
    report.run("training", lambda: training(report, compiled=False))
    if not args.no_compile:
        report.run("inference_compiled", lambda: inference(report, compiled=True))
        report.run("training_compiled", lambda: training(report, compiled=True))
    print(f"wrote {args.out} in {report.elapsed():.0f}s")


if __name__ == "__main__":
    main()
