"""CPU inference: UniRepLKNet-T against timm's ConvNeXt-T, batch-1 latency and batch-8 throughput.

    python benchmarks/cpu_inference.py --threads 2 --out cpu_inference.json
    python benchmarks/cpu_inference.py --layers        # the depthwise-conv layout choice, per layer

All contenders run interleaved, round after round, in one process, and each figure is the best of
its rounds: on a shared machine the absolute numbers are noisy, the ratios to the same-run ConvNeXt-T
baseline (its best memory format) are what to read.

Contenders (224x224, fp32 unless named ``_bf16``):

* ``ref_nchw`` / ``ref_cl``: the re-parameterized model with plain ``nn.Conv2d`` depthwise convs, as
  the reference runs it, in NCHW and channels_last;
* ``ours``: :func:`unireplknet.fast.optimize_for_inference` (channels_last, oneDNN-fused FFN with SE,
  GRN and the residual folded in, the per-device depthwise-conv dispatch);
* ``convnext_nchw`` / ``convnext_cl``: timm's ConvNeXt-T;
* ``ours_bf16`` / ``convnext_bf16``: both models cast to bf16, channels_last (ratio to each other);
  ours takes the plain-PyTorch FFN where the CPU has no oneDNN bf16 linear (the report says which);
* ``ours_onnxrt`` / ``convnext_onnxrt``: the same models exported to ONNX, on ONNX Runtime's CPU
  provider with the same thread count (ratio to each other);
* with ``--compile``: ``ours_compiled`` and ``convnext_compiled`` (``torch.compile``, inductor, best
  format; ratio to each other), and the summary line compares the best fp32 PyTorch figure of each
  model, compiled or not.

fp32 PyTorch contenders are compared with ConvNeXt-T in its best eager memory format.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import unireplknet  # noqa: E402
from unireplknet.export import export_onnx  # noqa: E402
from unireplknet.fast import get_ffn_backend, onednn_linear_supported, optimize_for_inference  # noqa: E402
from unireplknet.kernels import DepthwiseConv2d  # noqa: E402

Runner = Callable[[torch.Tensor], object]


def plain_convs(model: nn.Module) -> nn.Module:
    """Swap every :class:`DepthwiseConv2d` for an equal plain ``nn.Conv2d`` (the reference's layer)."""
    for name, child in model.named_children():
        if isinstance(child, DepthwiseConv2d):
            conv = nn.Conv2d(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                padding=child.padding,
                dilation=child.dilation,
                groups=child.groups,
                bias=child.bias is not None,
            )
            conv.load_state_dict(child.state_dict())
            setattr(model, name, conv)
        else:
            plain_convs(child)
    return model


def _torch_runner(model: nn.Module, channels_last: bool, dtype: torch.dtype = torch.float32) -> Runner:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.eval().to(dtype=dtype, memory_format=fmt)

    def run(x: torch.Tensor) -> object:
        with torch.inference_mode():
            return model(x.to(dtype).contiguous(memory_format=fmt))

    return run


def _onnx_runner(path: Path, threads: int) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x.numpy()})


def build_contenders(threads: int, compile_models: bool, workdir: Path) -> dict[str, Runner]:
    import timm

    torch.manual_seed(0)
    model = unireplknet.create_model("unireplknet_t").eval()
    reference = plain_convs(unireplknet.reparameterize(copy.deepcopy(model)))
    convnext = timm.create_model("convnext_tiny").eval()
    contenders = {
        "ref_nchw": _torch_runner(copy.deepcopy(reference), channels_last=False),
        "ref_cl": _torch_runner(copy.deepcopy(reference), channels_last=True),
        "ours": _torch_runner(optimize_for_inference(model), channels_last=True),
        "convnext_nchw": _torch_runner(copy.deepcopy(convnext), channels_last=False),
        "convnext_cl": _torch_runner(copy.deepcopy(convnext), channels_last=True),
        "ours_bf16": _torch_runner(optimize_for_inference(model), channels_last=True, dtype=torch.bfloat16),
        "convnext_bf16": _torch_runner(copy.deepcopy(convnext), channels_last=True, dtype=torch.bfloat16),
    }
    try:
        ours_onnx = export_onnx(model, workdir / "unireplknet_t.onnx")
        convnext_onnx = workdir / "convnext_t.onnx"
        torch.onnx.export(
            convnext,
            (torch.randn(1, 3, 224, 224),),
            str(convnext_onnx),
            input_names=["input"],
            output_names=["output"],
            opset_version=17,
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            dynamo=False,
        )
        contenders["ours_onnxrt"] = _onnx_runner(ours_onnx, threads)
        contenders["convnext_onnxrt"] = _onnx_runner(convnext_onnx, threads)
    except ImportError as err:
        print(f"skipping ONNX Runtime: {err}")
    if compile_models:
        contenders["ours_compiled"] = _torch_runner(optimize_for_inference(model, compile=True), channels_last=True)
        convnext_cl = copy.deepcopy(convnext).to(memory_format=torch.channels_last)
        contenders["convnext_compiled"] = _torch_runner(torch.compile(convnext_cl), channels_last=True)
    return contenders


# Wall time by default; --cpu-time switches to the calling thread's CPU time (single-threaded runs
# only), which time slices taken by other processes on a shared machine do not inflate.
_clock = time.perf_counter


def _time(fn: Callable[[], object]) -> float:
    start = _clock()
    fn()
    return _clock() - start


def benchmark(contenders: dict[str, Runner], rounds: int) -> dict[str, dict[str, float]]:
    one, eight = torch.randn(1, 3, 224, 224), torch.randn(8, 3, 224, 224)
    for run in contenders.values():  # warm-up (and compilation)
        run(one)
        run(eight)
    latency = {name: [] for name in contenders}
    throughput = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            latency[name].append(min(_time(lambda run=run: run(one)) for _ in range(3)) * 1000)
            throughput[name].append(8 / _time(lambda run=run: run(eight)))
    return {
        name: {
            "batch1_ms_best": round(min(latency[name]), 1),
            "batch1_ms_median": round(statistics.median(latency[name]), 1),
            "batch8_img_s_best": round(max(throughput[name]), 2),
            "batch8_img_s_median": round(statistics.median(throughput[name]), 2),
        }
        for name in contenders
    }


# Contenders compared with their ConvNeXt-T counterpart rather than with eager fp32 ConvNeXt-T.
PAIRED_BASELINES = {"_bf16": "convnext_bf16", "_onnxrt": "convnext_onnxrt", "_compiled": "convnext_compiled"}
OURS_FP32 = ("ref_nchw", "ref_cl", "ours", "ours_compiled")
CONVNEXT_FP32 = ("convnext_nchw", "convnext_cl", "convnext_compiled")


def add_ratios(results: dict[str, dict[str, float]]) -> dict[str, str]:
    """Ratios to ConvNeXt-T: eager fp32 in its best format, or the paired bf16/ONNX/compiled one."""
    eager = [n for n in ("convnext_nchw", "convnext_cl") if n in results]
    best_latency = min(eager, key=lambda n: results[n]["batch1_ms_best"])
    best_throughput = max(eager, key=lambda n: results[n]["batch8_img_s_best"])
    for name, row in results.items():
        paired = next((base for suffix, base in PAIRED_BASELINES.items() if name.endswith(suffix)), None)
        lat_base = paired if paired in results else best_latency
        thr_base = paired if paired in results else best_throughput
        row["batch1_speed_vs_convnext"] = round(results[lat_base]["batch1_ms_best"] / row["batch1_ms_best"], 2)
        row["batch8_throughput_vs_convnext"] = round(
            row["batch8_img_s_best"] / results[thr_base]["batch8_img_s_best"], 2
        )
    return {"pytorch_batch1_baseline": best_latency, "pytorch_batch8_baseline": best_throughput}


def best_against_best(results: dict[str, dict[str, float]]) -> dict[str, object]:
    """The fastest fp32 PyTorch version of each model (eager or compiled, any format), head to head."""
    ours = [n for n in OURS_FP32 if n in results]
    theirs = [n for n in CONVNEXT_FP32 if n in results]
    summary: dict[str, object] = {}
    for key, better in (("batch1_ms_best", min), ("batch8_img_s_best", max)):
        a = better(ours, key=lambda n, key=key: results[n][key])
        b = better(theirs, key=lambda n, key=key: results[n][key])
        ratio = results[b][key] / results[a][key] if key.endswith("ms_best") else results[a][key] / results[b][key]
        summary[key.split("_")[0]] = {"ours": a, "convnext": b, "speed_ratio": round(ratio, 2)}
    return summary


def layers(rounds: int) -> dict[str, dict[str, float]]:
    """The CPU depthwise-conv layout choice: channels_last vs NCHW for each UniRepLKNet-T layer shape."""
    out = {}
    for batch in (1, 8):
        for channels, size, k in [(80, 56, 3), (160, 28, 13), (320, 14, 13), (320, 14, 3), (640, 7, 13)]:
            x = torch.randn(batch, channels, size, size)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            w = torch.randn(channels, 1, k, k)
            runs = {
                "nchw": lambda x=x, w=w, c=channels, k=k: F.conv2d(x, w, padding=k // 2, groups=c),
                "cl": lambda x=x_cl, w=w, c=channels, k=k: F.conv2d(x, w, padding=k // 2, groups=c),
                "cl_via_nchw": lambda x=x_cl, w=w, c=channels, k=k: F.conv2d(
                    x.contiguous(), w, padding=k // 2, groups=c
                ).contiguous(memory_format=torch.channels_last),
            }
            best = {name: min(_time(fn) for _ in range(rounds)) * 1000 for name, fn in runs.items()}
            out[f"b{batch}_{channels}x{size}x{size}_k{k}"] = {name + "_ms": round(v, 3) for name, v in best.items()}
    return out


def markdown(results: dict[str, dict[str, float]]) -> str:
    lines = [
        "| model | batch 1 ms | vs ConvNeXt-T | batch 8 img/s | vs ConvNeXt-T |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['batch1_ms_best']} | {r['batch1_speed_vs_convnext']}x | "
            f"{r['batch8_img_s_best']} | {r['batch8_throughput_vs_convnext']}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds; each figure is the best round")
    parser.add_argument("--compile", action="store_true", help="add torch.compile contenders (slow to compile)")
    parser.add_argument("--layers", action="store_true", help="only time the depthwise-conv layouts per layer")
    parser.add_argument(
        "--cpu-time", action="store_true", help="time by thread CPU time (needs --threads 1; for shared machines)"
    )
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "cpu_inference.json")
    args = parser.parse_args()
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time measures the calling thread only; use it with --threads 1")
    if args.cpu_time:
        global _clock
        _clock = time.thread_time
    torch.set_num_threads(args.threads)
    report: dict = {
        "threads": args.threads,
        "rounds": args.rounds,
        "clock": "thread CPU time" if args.cpu_time else "wall",
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # Which path ours_bf16's fused FFN takes: oneDNN's packed bf16 linear needs AVX-512 (or AVX-NE-CONVERT).
        "ffn_backend": get_ffn_backend(),
        "onednn_bf16_linear": onednn_linear_supported(torch.bfloat16),
    }
    if args.layers:
        report["layers"] = layers(max(args.rounds, 5))
        print(json.dumps(report["layers"], indent=1))
    else:
        with tempfile.TemporaryDirectory() as workdir:
            results = benchmark(build_contenders(args.threads, args.compile, Path(workdir)), args.rounds)
        report["baselines"] = add_ratios(results)
        report["best_against_best"] = best_against_best(results)
        report["results"] = results
        print(markdown(results))
        for batch, row in report["best_against_best"].items():
            print(
                f"best against best, {batch} (fp32, PyTorch): {row['ours']} is {row['speed_ratio']}x "
                f"the speed of {row['convnext']}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
