"""The Triton depthwise conv against F.conv2d, run on the CPU by Triton's interpreter.

Shapes are tiny because the interpreter executes every Triton op in NumPy; they still span several
tiles in H, W and channels (interpreter tiles: 4 rows x 8 columns x 8 channels; with dilation d a
tile's rows are d apart, so a 6-row map at d = 3 spans 3 interleaved row tiles).
"""

from __future__ import annotations

import os
import types

os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are first imported (lazily, on first use)

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unireplknet
from unireplknet.kernels import DepthwiseConv2d, DepthwiseConv2dFunction, backend, depthwise_conv2d
from unireplknet.layers import DilatedReparamBlock

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


def _reference(x, weight, b, grad, dilation=1):
    """fp64 F.conv2d output and (dx, dw, db) for the same inputs."""
    xr = x.detach().double().requires_grad_()
    wr = weight.detach().double().requires_grad_()
    br = b.detach().double().requires_grad_() if b is not None else None
    y = F.conv2d(xr, wr, br, padding=dilation * (weight.shape[-1] // 2), dilation=dilation, groups=x.shape[1])
    y.backward(grad.double())
    return y.detach(), xr.grad, wr.grad, br.grad if br is not None else None


def _assert_close(actual, expected, dtype, what):
    scale = expected.abs().max().clamp_min(1.0)
    err = ((actual.double() - expected).abs().max() / scale).item()
    assert err <= TOLERANCE[dtype], f"{what}: relative error {err:.2e} > {TOLERANCE[dtype]:.0e}"


# Every Triton algorithm with every dtype it takes (the tensor-core one: bf16/fp16 only).
ALGORITHM_DTYPES = [
    ("triton_direct", torch.float32),
    ("triton_direct", torch.bfloat16),
    ("triton_direct", torch.float16),
    ("triton_mma", torch.bfloat16),
    ("triton_mma", torch.float16),
]


@pytest.mark.parametrize(("kernel", "dilation"), [(5, 1), (3, 3)], ids=["k5", "k3_d3"])
@pytest.mark.parametrize(("algorithm", "dtype"), ALGORITHM_DTYPES)
@pytest.mark.parametrize("channels_last", [True, False], ids=["channels_last", "contiguous"])
def test_forward_and_gradients_match_conv2d(algorithm, dtype, channels_last, kernel, dilation):
    # 6x9 map, 10 channels: 2 row tiles, 2 column tiles, 2 channel blocks (one partly masked).
    # No kernel crop: both kernels reach 4 pixels, less than the map's 6 rows.
    batch = 2 if dtype == torch.float32 else 1
    x, weight, b = _inputs((batch, 10, 6, 9), kernel, dtype, channels_last, bias=dtype != torch.float16)
    x.requires_grad_()
    weight.requires_grad_()
    if b is not None:
        b.requires_grad_()
    y = depthwise_conv2d(x, weight, b, dilation, backend=algorithm)
    grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    y.backward(grad)
    ref_y, ref_dx, ref_dw, ref_db = _reference(x, weight, b, grad, dilation)

    assert y.dtype == dtype and y.shape == x.shape
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    _assert_close(y, ref_y, dtype, "output")
    _assert_close(x.grad, ref_dx, dtype, "input gradient")
    _assert_close(weight.grad, ref_dw, dtype, "weight gradient")
    if b is not None:
        _assert_close(b.grad, ref_db, dtype, "bias gradient")


@pytest.mark.parametrize(
    ("kernel", "dilation", "size"),
    [(3, 1, (8, 9)), (7, 1, (8, 9)), (3, 4, (10, 9)), (13, 1, (2, 5)), (7, 2, (3, 5))],
    ids=["k3", "k7", "k3_d4", "k13_cropped", "k7_d2_cropped"],
)
def test_kernel_sizes_and_dilations_batch_one(kernel, dilation, size):
    # k3_d4: 10 rows at d = 4 are 4 interleaved row tiles with 3, 3, 2 and 2 valid rows.
    # The cropped cases' maps are not square: the Triton path crops to a square kernel (9x9, 5x5).
    x, weight, b = _inputs((1, 3, *size), kernel, torch.float32, channels_last=True)
    y = depthwise_conv2d(x, weight, b, dilation, backend="triton")
    expected = _reference(x, weight, b, torch.zeros_like(x), dilation)[0]
    _assert_close(y, expected, torch.float32, f"{kernel}x{kernel} dilation {dilation}")


@pytest.mark.parametrize("dilation", [1, 2])
def test_gradcheck_fp64(dilation):
    x, weight, b = _inputs((1, 2, 5, 4), 3, torch.float64, channels_last=False)
    for t in (x, weight, b):
        t.requires_grad_()
    args = (x, weight, b, dilation, "triton")
    assert torch.autograd.gradcheck(DepthwiseConv2dFunction.apply, args, fast_mode=True)


@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (13, 1), (31, 1), (7, 2), (3, 5)])
def test_tensor_core_algorithm_odd_sizes_and_dilations(kernel, dilation):
    # 17 columns: one 32-wide tile of the map's own columns; 40 columns (k3): 16-wide tiles with a halo.
    from unireplknet.kernels.triton_dwconv_mma import mma_forward, mma_weight_grad

    width = 40 if kernel == 3 and dilation == 1 else 17
    x, weight, b = _inputs((1, 3, 16, width), kernel, torch.bfloat16, channels_last=True)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16)
    ref_y, _, ref_dw, _ = _reference(x, weight, b, grad, dilation)
    _assert_close(mma_forward(x, weight, b, dilation), ref_y, torch.bfloat16, f"k{kernel} d{dilation} output")
    _assert_close(mma_weight_grad(x, grad, kernel, dilation), ref_dw, torch.bfloat16, "weight gradient")


@pytest.mark.parametrize("algorithm", ["triton_direct", "triton_mma"])
def test_weight_gradient_is_deterministic(algorithm):
    from unireplknet.kernels.dwconv import ALGORITHMS

    dtype = torch.float32 if algorithm == "triton_direct" else torch.bfloat16
    x, _, _ = _inputs((2, 10, 6, 9), 5, dtype, channels_last=True)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)).to(dtype)
    weight_grad = ALGORITHMS[algorithm].weight_grad
    first = weight_grad(x, grad, 5, 2)
    assert torch.equal(first, weight_grad(x, grad, 5, 2))


def test_autocast_runs_in_low_precision():
    x, weight, b = _inputs((1, 4, 6, 6), 5, torch.float32, channels_last=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = depthwise_conv2d(x, weight, b, backend="triton")
    assert y.dtype == torch.bfloat16
    _assert_close(y, _reference(x, weight, b, torch.zeros_like(x))[0], torch.bfloat16, "autocast output")


def test_torch_compile_traces_the_triton_path():
    conv = DepthwiseConv2d(3, 3, dilation=2, backend="triton")
    x = torch.randn(1, 3, 6, 6, requires_grad=True)
    compiled = torch.compile(conv, backend="aot_eager", fullgraph=True)
    y = compiled(x)
    y.sum().backward()
    expected = F.conv2d(x, conv.weight, conv.bias, padding=2, dilation=2, groups=3)
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


def test_dilated_reparam_block_trains_on_the_triton_path():
    # Kernel 7: branches (5, 1), (3, 2) and (3, 3), all built as DepthwiseConv2d.
    block = DilatedReparamBlock(4, 7)
    assert [(b.conv.kernel_size[0], b.conv.dilation[0]) for b in block.branches.values()] == [(5, 1), (3, 2), (3, 3)]
    assert all(isinstance(b.conv, DepthwiseConv2d) for b in block.branches.values())
    x = torch.randn(1, 4, 7, 7)
    grad = torch.randn(1, 4, 7, 7)
    results = {}
    for path in ("torch", "triton"):
        block.zero_grad()
        xp = x.clone().requires_grad_()
        with backend(path):
            y = block(xp)
        y.backward(grad)
        results[path] = [y, xp.grad, *(p.grad for p in block.parameters())]
    for actual, expected in zip(results["triton"], results["torch"], strict=True):
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


# ---- dispatch and the drop-in module (PyTorch path: fast) ----------------------------------------


@pytest.mark.parametrize(("kernel", "dilation", "bias"), [(13, 1, True), (3, 5, False)])
def test_drop_in_for_nn_conv2d(kernel, dilation, bias):
    padding = dilation * (kernel // 2)
    reference = nn.Conv2d(6, 6, kernel, padding=padding, dilation=dilation, groups=6, bias=bias)
    conv = DepthwiseConv2d(6, kernel, bias=bias, dilation=dilation)
    assert isinstance(conv, nn.Conv2d)
    assert (conv.padding, conv.dilation) == (reference.padding, reference.dilation)
    assert conv.state_dict().keys() == reference.state_dict().keys()
    conv.load_state_dict(reference.state_dict())
    x = torch.randn(2, 6, 12, 12).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(conv(x), reference(x))
    assert conv(x).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    ("kernel", "dilation", "dtype", "expected"),
    [
        (7, 1, torch.bfloat16, True),  # large kernel
        (5, 1, torch.bfloat16, False),  # small undilated kernel: cuDNN
        (3, 2, torch.bfloat16, True),  # dilated branch
        (1, 5, torch.bfloat16, False),  # a branch cropped to its centre tap is a 1x1 conv
        (7, 1, torch.float64, False),  # fp64 only when forced
    ],
)
def test_auto_dispatch_on_cuda(kernel, dilation, dtype, expected):
    from unireplknet.kernels.dwconv import _use_triton

    cuda_tensor = types.SimpleNamespace(dtype=dtype, is_cuda=True)
    assert _use_triton(cuda_tensor, kernel, dilation, "auto") is expected


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
    ("x_shape", "w_shape", "dilation", "message"),
    [
        ((2, 8, 8), (2, 1, 3, 3), 1, "expects x"),
        ((1, 2, 8, 8), (2, 1, 4, 4), 1, "odd kernel"),
        ((1, 2, 8, 8), (2, 1, 3, 3), 0, "dilation must be an int >= 1"),
        ((1, 2, 8, 8), (2, 1, 3, 3), 1.5, "dilation must be an int >= 1"),
    ],
)
def test_bad_arguments_are_clear_errors(x_shape, w_shape, dilation, message):
    with pytest.raises(ValueError, match=message):
        depthwise_conv2d(torch.randn(x_shape), torch.randn(w_shape), dilation=dilation)


def test_bad_module_arguments():
    with pytest.raises(ValueError, match="unknown depthwise-conv backend"):
        DepthwiseConv2d(4, 7, backend="cudnn")
    with pytest.raises(ValueError, match="dilation must be >= 1"):
        DepthwiseConv2d(4, 3, dilation=0)


def test_cpu_large_kernel_path_returns_input_memory_format():
    x = torch.randn(2, 4, 9, 9).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(4, 1, 13, 13)
    y = depthwise_conv2d(x, weight, backend="torch")
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, F.conv2d(x, weight, padding=6, groups=4))
