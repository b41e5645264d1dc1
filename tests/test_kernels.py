"""The Triton depthwise conv against F.conv2d, run on the CPU by Triton's interpreter.

Shapes are tiny because the interpreter executes every Triton op in NumPy; they still span several
tiles in H, W and channels (interpreter tiles: 4 rows x 8 columns x 8 channels).
"""

from __future__ import annotations

import os
import subprocess
import sys

os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are first imported (lazily, on first use)

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unireplknet
from unireplknet.kernels import DepthwiseConv2d, DepthwiseConv2dFunction, backend, crop_kernel, depthwise_conv2d

# fp32 accumulation everywhere; the bound is the rounding of the output dtype.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def _inputs(shape, kernel, dtype, channels_last, bias=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    x = torch.randn(shape, generator=gen).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(c, 1, kernel, kernel, generator=gen) / kernel).to(dtype)
    b = torch.randn(c, generator=gen).to(dtype) if bias else None
    return x, weight, b


def _reference(x, weight, b, grad):
    """fp64 F.conv2d output and (dx, dw, db) for the same inputs."""
    xr = x.detach().double().requires_grad_()
    wr = weight.detach().double().requires_grad_()
    br = b.detach().double().requires_grad_() if b is not None else None
    y = F.conv2d(xr, wr, br, padding=weight.shape[-1] // 2, groups=x.shape[1])
    y.backward(grad.double())
    return y.detach(), xr.grad, wr.grad, br.grad if br is not None else None


def _assert_close(actual, expected, dtype, what):
    scale = expected.abs().max().clamp_min(1.0)
    err = ((actual.double() - expected).abs().max() / scale).item()
    assert err <= TOLERANCE[dtype], f"{what}: relative error {err:.2e} > {TOLERANCE[dtype]:.0e}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("channels_last", [True, False], ids=["channels_last", "contiguous"])
def test_forward_and_gradients_match_conv2d(dtype, channels_last):
    # 6x9 map, 10 channels: 2 row tiles, 2 column tiles, 2 channel blocks (one partly masked).
    batch = 2 if dtype == torch.float32 else 1
    x, weight, b = _inputs((batch, 10, 6, 9), 5, dtype, channels_last, bias=dtype != torch.float16)
    x.requires_grad_()
    weight.requires_grad_()
    if b is not None:
        b.requires_grad_()
    y = depthwise_conv2d(x, weight, b, backend="triton")
    grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    y.backward(grad)
    ref_y, ref_dx, ref_dw, ref_db = _reference(x, weight, b, grad)

    assert y.dtype == dtype and y.shape == x.shape
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    _assert_close(y, ref_y, dtype, "output")
    _assert_close(x.grad, ref_dx, dtype, "input gradient")
    _assert_close(weight.grad, ref_dw, dtype, "weight gradient")
    if b is not None:
        _assert_close(b.grad, ref_db, dtype, "bias gradient")


@pytest.mark.parametrize("kernel", [3, 7])
def test_odd_kernel_sizes_batch_one(kernel):
    x, weight, b = _inputs((1, 3, 8, 9), kernel, torch.float32, channels_last=True)
    y = depthwise_conv2d(x, weight, b, backend="triton")
    _assert_close(y, _reference(x, weight, b, torch.zeros_like(x))[0], torch.float32, f"{kernel}x{kernel}")


def test_gradcheck_fp64():
    x, weight, b = _inputs((1, 2, 5, 4), 3, torch.float64, channels_last=False)
    for t in (x, weight, b):
        t.requires_grad_()
    assert torch.autograd.gradcheck(DepthwiseConv2dFunction.apply, (x, weight, b), fast_mode=True)


def test_weight_gradient_is_deterministic():
    from unireplknet.kernels.triton_dwconv import dwconv_weight_grad

    x, _, _ = _inputs((2, 10, 6, 9), 5, torch.float32, channels_last=True)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    first = dwconv_weight_grad(x, grad, 5)
    assert torch.equal(first, dwconv_weight_grad(x, grad, 5))


def test_autocast_runs_in_low_precision():
    x, weight, b = _inputs((1, 4, 6, 6), 5, torch.float32, channels_last=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = depthwise_conv2d(x, weight, b, backend="triton")
    assert y.dtype == torch.bfloat16
    _assert_close(y, _reference(x, weight, b, torch.zeros_like(x))[0], torch.bfloat16, "autocast output")


def test_torch_compile_traces_the_triton_path():
    conv = DepthwiseConv2d(3, 5, backend="triton")
    x = torch.randn(1, 3, 6, 6, requires_grad=True)
    compiled = torch.compile(conv, backend="aot_eager", fullgraph=True)
    y = compiled(x)
    y.sum().backward()
    expected = F.conv2d(x, conv.weight, conv.bias, padding=2, groups=3)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x.grad, torch.autograd.grad(expected.sum(), x)[0], atol=1e-5, rtol=1e-5)


def test_deploy_model_on_triton_path_matches_torch_path():
    model = unireplknet.create_model(
        "unireplknet_a", depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (7,), (7,), (3,)), num_classes=5
    )
    unireplknet.reparameterize(model.eval())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad(), backend("torch"):
        expected = model(x)
    with torch.no_grad(), backend("triton"):
        actual = model(x)
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


_COMPILE_FOR_HOPPER = """
import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from unireplknet.kernels import triton_dwconv as k

common = {"K": 13, "CHANNELS_LAST": True, "ACC_DTYPE": tl.float32, "BLOCK_C": 64, "TILE_W": 8}
cases = [
    (
        k._dwconv_forward_kernel,
        {"x_ptr": "*bf16", "w_ptr": "*fp32", "b_ptr": "*bf16", "y_ptr": "*bf16"},
        {**common, "TILE_H": 4, "sxc": 1, "syc": 1, "X_STRIDE_W": 320, "TAPS_PAD": 7, "TAPS_C": 384, "HAS_BIAS": True},
    ),
    (
        k._dwconv_weight_grad_kernel,
        {"x_ptr": "*bf16", "g_ptr": "*bf16", "partial_ptr": "*fp32"},
        {**common, "sxc": 1, "sgc": 1, "K_POW2": 16},
    ),
]
for kernel, pointers, constants in cases:
    signature = {n: "constexpr" if n in constants else pointers.get(n, "i32") for n in kernel.arg_names}
    source = ASTSource(fn=kernel, signature=signature, constexprs=constants)
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 2, "num_stages": 1})
    assert compiled.asm["cubin"], kernel
"""


def test_kernels_compile_for_hopper():
    """Both kernels build for an H100 (sm_90) without a GPU: catches what the interpreter cannot.

    In a subprocess, because this module runs Triton in interpreter mode.
    """
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", _COMPILE_FOR_HOPPER], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


# ---- dispatch and the drop-in module (PyTorch path: fast) ----------------------------------------


def test_drop_in_for_nn_conv2d():
    reference = nn.Conv2d(6, 6, 13, padding=6, groups=6)
    conv = DepthwiseConv2d(6, 13)
    assert isinstance(conv, nn.Conv2d)
    assert conv.state_dict().keys() == reference.state_dict().keys()
    conv.load_state_dict(reference.state_dict())
    x = torch.randn(2, 6, 10, 10).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(conv(x), reference(x))
    assert conv(x).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 2), (5, 9)])
def test_crop_kernel_is_exact(height, width):
    weight = torch.randn(4, 1, 13, 13, dtype=torch.float64)
    x = torch.randn(2, 4, height, width, dtype=torch.float64)
    cropped = crop_kernel(weight, height, width)
    assert cropped.shape[-2:] == (min(13, 2 * height - 1), min(13, 2 * width - 1))
    kh, kw = cropped.shape[-2:]
    torch.testing.assert_close(
        F.conv2d(x, cropped, padding=(kh // 2, kw // 2), groups=4), F.conv2d(x, weight, padding=6, groups=4)
    )


def test_auto_keeps_cpu_on_pytorch_and_backend_can_be_forced(monkeypatch):
    def no_triton(*args):
        raise AssertionError("the Triton path was taken")

    monkeypatch.setattr(DepthwiseConv2dFunction, "apply", no_triton)
    x = torch.randn(1, 2, 8, 8)
    weight = torch.randn(2, 1, 7, 7)
    depthwise_conv2d(x, weight, backend="auto")  # CPU tensor: PyTorch
    monkeypatch.setenv("UNIREPLKNET_DWCONV", "triton")
    with pytest.raises(AssertionError, match="Triton path"):
        depthwise_conv2d(x, weight)
    with backend("torch"):
        depthwise_conv2d(x, weight)  # the override beats the environment


def test_forced_triton_without_support_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(ValueError, match="CUDA tensor"):
        depthwise_conv2d(torch.randn(1, 2, 8, 8), torch.randn(2, 1, 7, 7), backend="triton")


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "message"),
    [((2, 8, 8), (2, 1, 3, 3), "expects x"), ((1, 2, 8, 8), (2, 1, 4, 4), "odd kernel")],
)
def test_bad_shapes_are_clear_errors(x_shape, w_shape, message):
    with pytest.raises(ValueError, match=message):
        depthwise_conv2d(torch.randn(x_shape), torch.randn(w_shape))


def test_bad_backend_name():
    with pytest.raises(ValueError, match="unknown depthwise-conv backend"):
        DepthwiseConv2d(4, 7, backend="cudnn")


def test_cpu_large_kernel_path_returns_input_memory_format():
    x = torch.randn(2, 4, 9, 9).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(4, 1, 13, 13)
    y = depthwise_conv2d(x, weight, backend="torch")
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, F.conv2d(x, weight, padding=6, groups=4))
