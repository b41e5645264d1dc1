"""Triton kernels for a stride-1, 'same'-padded depthwise convolution with an odd k x k kernel, any dilation.

Imported lazily (only when the Triton path is first used), because Triton reads ``TRITON_INTERPRET``
when a kernel is defined: set it before the first Triton call to run these kernels on the CPU.

Design, for large kernels (the anchors show a per-tap kernel that reloads the input for every tap
stays near 2x cuDNN):

* Forward: a program owns an output tile ``TILE_H x TILE_W`` of one image for ``BLOCK_C`` channels
  and accumulates it in fp32 registers as a 3-D ``(TILE_H, TILE_W, BLOCK_C)`` block. It walks the
  ``TILE_H + k - 1`` input rows of the tile once; each input row segment (one load per kernel column)
  updates *every* output row of the tile at once with that row's kernel taps, so each loaded input
  value feeds up to ``TILE_H`` FMAs from registers instead of one. Channels are the vectorised axis
  for channels_last tensors; for contiguous (NCHW) tensors Triton sees the unit stride of W instead
  and coalesces along it (strides equal to 1 are specialised at compile time).
* Dilation ``d``: a tile's output rows are ``d`` apart (``h0, h0 + d, ...``), so they all read the
  same input rows ``h0 + d * i`` and the row walk above is unchanged, with input row stride ``d``.
  Kernel columns are ``d`` apart in the input; ``d = 1`` is the plain kernel.
* Input gradient: the same kernel on the output gradient with the kernel rotated by 180 degrees
  (for stride 1 and 'same' padding the transposed convolution is a 'same' convolution, same dilation).
* Weight gradient: a program owns one kernel row ``kh`` for ``BLOCK_C`` channels and a slice of the
  ``N * H`` output rows; it loads each output-gradient row segment once and reuses it for all ``k``
  kernel columns. Each slice writes its own fp32 partial sum, and the partials are added in a fixed
  order afterwards: the weight gradient is deterministic (no atomics), bit for bit, run to run.

Tile sizes are autotuned per (channels, height, width, kernel, dilation, dtype, memory format) on the GPU
(``UNIREPLKNET_DWCONV_AUTOTUNE=0`` uses fixed default tiles instead).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

__all__ = ["INTERPRETED", "autotune_enabled", "dwconv_forward", "dwconv_weight_grad"]

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


def launch(kernel, grid, *args, **meta) -> None:
    """Launch ``kernel[grid](*args, **meta)``: the one place kernels start (the static model records here)."""
    kernel[grid](*args, **meta)


def multiprocessors(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (1 off the GPU: the interpreter needs no more programs)."""
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1


def _config(meta: dict[str, int], num_warps: int) -> triton.Config:
    return triton.Config(meta, num_warps=num_warps, num_stages=1)


# Candidates for autotuning: (TILE_H, TILE_W, BLOCK_C, num_warps) and (TILE_W, BLOCK_C, num_warps).
# Padding of the forward kernel's tap table, so no tile reads a tap without a bound check.
MAX_TILE_H, MAX_BLOCK_C = 8, 128
TAPS_PAD = MAX_TILE_H - 1
# (2, 16, 64, 2) forward and (8, 64, 4) weight-gradient tiles are gone: in fp32 NCHW they spill registers
# on the H100 (the spill guard, tests/test_kernels_sm90.py, compiles every config for sm_90).
FORWARD_TILES = [(4, 8, 32, 1), (4, 8, 64, 2), (8, 8, 32, 2), (8, 8, 64, 4), (4, 16, 32, 2)]
WEIGHT_GRAD_TILES = [(8, 32, 2), (16, 32, 4)]


def _default_forward_meta(channels: int, channels_last: bool) -> tuple[dict[str, int], int]:
    """The untuned tile: channels are the vector axis for channels_last, W for contiguous tensors."""
    if INTERPRETED:  # small tiles, so tiny test inputs still span several tiles
        return {"TILE_H": 4, "TILE_W": 8, "BLOCK_C": 8}, 1
    if channels_last:
        return {"TILE_H": 4, "TILE_W": 8, "BLOCK_C": min(64, triton.next_power_of_2(channels))}, 2
    return {"TILE_H": 4, "TILE_W": 16, "BLOCK_C": 8}, 2


def _default_weight_grad_meta(channels: int, channels_last: bool) -> tuple[dict[str, int], int]:
    if INTERPRETED:
        return {"TILE_W": 8, "BLOCK_C": 8}, 1
    if channels_last:
        return {"TILE_W": 8, "BLOCK_C": min(64, triton.next_power_of_2(channels))}, 4
    return {"TILE_W": 16, "BLOCK_C": 8}, 4


def autotune_enabled() -> bool:
    """Autotune tiles per shape on the GPU unless ``UNIREPLKNET_DWCONV_AUTOTUNE=0`` (then: default tiles).

    Tuning costs a few seconds per new (channels, size, kernel, dtype, layout) the first time it is seen.
    """
    return not INTERPRETED and os.environ.get("UNIREPLKNET_DWCONV_AUTOTUNE", "1") != "0"


def _prune_forward(configs, named_args, **constants):
    # Tiles much larger than the map only burn masked lanes; a tile spans every dilation-th row.
    height, width = triton.cdiv(named_args["H"], named_args["dilation"]), named_args["W"]
    kept = [
        c
        for c in configs
        if c.kwargs["TILE_H"] <= max(2, triton.next_power_of_2(height))
        and c.kwargs["TILE_W"] <= max(4, triton.next_power_of_2(width))
    ]
    return kept or configs[:1]


@triton.jit
def _dwconv_forward_kernel(
    x_ptr,
    w_ptr,  # (TAPS_PAD + K + TAPS_PAD, K, taps_c) fp32/fp64, zero outside the kernel and past C
    b_ptr,
    y_ptr,
    C,
    H,
    W,
    dilation,  # a run-time value: one compiled variant serves every dilation > 1 (1 is specialised)
    sxn,
    sxc,
    sxh,
    sxw,  # 1 (contiguous) is specialised to a constant by Triton, so W becomes the vector axis
    syn,
    syc,
    syh,
    syw,
    taps_c,
    K: tl.constexpr,
    TAPS_PAD: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,  # only part of the autotune key
    ACC_DTYPE: tl.constexpr,
    TILE_H: tl.constexpr,
    TILE_W: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid_hw = tl.program_id(0)
    pid_c = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)
    tiles_w = tl.cdiv(W, TILE_W)
    # Row tiles come in groups of `dilation` interleaved tiles covering dilation * TILE_H rows.
    tile_h = pid_hw // tiles_w
    h0 = (tile_h // dilation) * (TILE_H * dilation) + tile_h % dilation
    w0 = (pid_hw % tiles_w) * TILE_W
    PAD: tl.constexpr = K // 2

    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = offs_c < C
    tile_rows = tl.arange(0, TILE_H)
    out_cols = w0 + tl.arange(0, TILE_W)
    x_chan = x_ptr + n * sxn + offs_c[None, :] * sxc  # (1, BLOCK_C)

    acc = tl.zeros((TILE_H, TILE_W, BLOCK_C), dtype=ACC_DTYPE)
    for r in range(TILE_H + K - 1):
        in_row = h0 + (r - PAD) * dilation
        # Output row j of the tile reads this input row through kernel row r - j.
        # Out-of-kernel rows of the padded taps are zero: no mask needed.
        kh = r - tile_rows + TAPS_PAD
        w_row_ptr = w_ptr + (kh[:, None] * K) * taps_c + offs_c[None, :]
        x_row_ok = c_ok[None, :] & (in_row >= 0) & (in_row < H)
        x_row_ptr = x_chan + in_row * sxh
        for kw in tl.static_range(K):
            in_cols = out_cols + (kw - PAD) * dilation
            cols_ok = (in_cols >= 0) & (in_cols < W)
            xv = tl.load(x_row_ptr + in_cols[:, None] * sxw, mask=cols_ok[:, None] & x_row_ok, other=0.0)
            wv = tl.load(w_row_ptr + kw * taps_c)
            acc += xv.to(ACC_DTYPE)[None, :, :] * wv.to(ACC_DTYPE)[:, None, :]

    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_c, mask=c_ok, other=0.0).to(ACC_DTYPE)[None, None, :]
    out_rows = h0 + tile_rows * dilation
    y_off = n * syn + out_rows[:, None, None] * syh + out_cols[None, :, None] * syw + offs_c[None, None, :] * syc
    y_ok = (out_rows < H)[:, None, None] & (out_cols < W)[None, :, None] & c_ok[None, None, :]
    tl.store(y_ptr + y_off, acc.to(y_ptr.dtype.element_ty), mask=y_ok)


# Row counts follow the batch size: not specialised, so one compile serves every batch.
@triton.jit(do_not_specialize=["rows_total", "rows_per_split"])
def _dwconv_weight_grad_kernel(
    x_ptr,
    g_ptr,
    partial_ptr,  # (SPLITS, K, K, C) accumulator dtype
    C,
    H,
    W,
    dilation,
    rows_total,  # N * H output rows
    rows_per_split,
    sxn,
    sxc,
    sxh,
    sxw,
    sgn,
    sgc,
    sgh,
    sgw,
    K: tl.constexpr,
    K_POW2: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    ACC_DTYPE: tl.constexpr,
    TILE_W: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    kh = tl.program_id(0)
    pid_c = tl.program_id(1)
    split = tl.program_id(2)
    PAD: tl.constexpr = K // 2

    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = offs_c < C
    kws = tl.arange(0, K_POW2)
    kw_ok = kws < K
    acc = tl.zeros((K_POW2, TILE_W, BLOCK_C), dtype=ACC_DTYPE)

    row_start = split * rows_per_split
    row_end = tl.minimum(row_start + rows_per_split, rows_total)
    for row in range(row_start, row_end):
        n = (row // H).to(tl.int64)
        out_row = row % H
        in_row = out_row + (kh - PAD) * dilation
        row_ok = (in_row >= 0) & (in_row < H)
        g_row_ptr = g_ptr + n * sgn + out_row * sgh + offs_c[None, :] * sgc
        x_row_ptr = x_ptr + n * sxn + in_row * sxh + offs_c[None, None, :] * sxc
        for w0 in range(0, W, TILE_W):
            out_cols = w0 + tl.arange(0, TILE_W)
            g_ok = (out_cols < W)[:, None] & c_ok[None, :] & row_ok
            gv = tl.load(g_row_ptr + out_cols[:, None] * sgw, mask=g_ok, other=0.0).to(ACC_DTYPE)
            in_cols = out_cols[None, :] + (kws[:, None] - PAD) * dilation  # (K_POW2, TILE_W)
            x_ok = ((in_cols >= 0) & (in_cols < W) & kw_ok[:, None])[:, :, None] & g_ok[None, :, :]
            xv = tl.load(x_row_ptr + in_cols[:, :, None] * sxw, mask=x_ok, other=0.0).to(ACC_DTYPE)
            acc += xv * gv[None, :, :]

    dw = tl.sum(acc, axis=1)  # (K_POW2, BLOCK_C)
    out_ptr = partial_ptr + ((split * K + kh) * K + kws[:, None]) * C + offs_c[None, :]
    tl.store(out_ptr, dw, mask=kw_ok[:, None] & c_ok[None, :])


_TUNE_KEY = ["C", "H", "W", "K", "dilation", "CHANNELS_LAST"]  # plus the tensors' dtypes, which Triton always adds
_dwconv_forward_tuned = triton.autotune(
    configs=[_config({"TILE_H": th, "TILE_W": tw, "BLOCK_C": bc}, nw) for th, tw, bc, nw in FORWARD_TILES],
    key=_TUNE_KEY,
    prune_configs_by={"early_config_prune": _prune_forward},
)(_dwconv_forward_kernel)
_dwconv_weight_grad_tuned = triton.autotune(
    configs=[_config({"TILE_W": tw, "BLOCK_C": bc}, nw) for tw, bc, nw in WEIGHT_GRAD_TILES], key=_TUNE_KEY
)(_dwconv_weight_grad_kernel)


def _acc_dtype(dtype: torch.dtype) -> tuple[torch.dtype, tl.dtype]:
    return (torch.float64, tl.float64) if dtype == torch.float64 else (torch.float32, tl.float32)


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.stride(1) == 1 and x.shape[1] > 1


def _kernel_and_meta(tuned, plain, default_meta) -> tuple[object, dict[str, int]]:
    """The autotuned kernel, or the plain one with ``default_meta()``'s fixed tiles."""
    if autotune_enabled():
        return tuned, {}
    tiles, num_warps = default_meta()
    return plain, {**tiles, "num_warps": num_warps, "num_stages": 1}


def dwconv_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int = 1) -> torch.Tensor:
    """``y = conv2d(x, weight, bias, padding=dilation * (k // 2), dilation=dilation, groups=C)`` in Triton.

    Args:
        x: ``(N, C, H, W)``, any strides (channels_last and contiguous are the fast ones).
        weight: ``(C, 1, k, k)``, odd ``k``.
        bias: ``(C,)`` or None.
        dilation: spacing of the kernel taps, >= 1.

    Returns:
        ``(N, C, H, W)`` in ``x``'s dtype and memory format.
    """
    n, c, h, w = x.shape
    k = weight.shape[-1]
    torch_acc, tl_acc = _acc_dtype(x.dtype)
    taps_c = triton.cdiv(c, MAX_BLOCK_C) * MAX_BLOCK_C
    taps = x.new_zeros(k + 2 * TAPS_PAD, k, taps_c, dtype=torch_acc)
    taps[TAPS_PAD : TAPS_PAD + k, :, :c] = weight.reshape(c, k, k).permute(1, 2, 0)
    y = torch.empty_like(x)
    if y.numel() == 0:
        return y

    def grid(meta):
        row_tiles = triton.cdiv(h, meta["TILE_H"] * dilation) * dilation
        return (row_tiles * triton.cdiv(w, meta["TILE_W"]), triton.cdiv(c, meta["BLOCK_C"]), n)

    channels_last = _is_channels_last(x)
    kernel, meta = _kernel_and_meta(
        _dwconv_forward_tuned, _dwconv_forward_kernel, lambda: _default_forward_meta(c, channels_last)
    )
    launch(
        kernel,
        grid,
        x,
        taps,
        bias if bias is not None else taps,
        y,
        c,
        h,
        w,
        dilation,
        *x.stride(),
        *y.stride(),
        taps_c,
        K=k,
        TAPS_PAD=TAPS_PAD,
        HAS_BIAS=bias is not None,
        CHANNELS_LAST=channels_last,
        ACC_DTYPE=tl_acc,
        **meta,
    )
    return y


def _num_splits(rows: int, k: int, channels: int, device: torch.device) -> int:
    # Enough programs to fill the GPU a few times over; a pure function of the shape and the device,
    # so the summation order (hence the result) never changes between runs.
    programs = 4 * multiprocessors(device)
    per_split_programs = k * triton.cdiv(channels, 64)
    return max(1, min(rows, triton.cdiv(programs, per_split_programs), 256))


def dwconv_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Deterministic gradient of the depthwise convolution w.r.t. its ``(C, 1, k, k)`` weight.

    Args:
        x: the forward input ``(N, C, H, W)``.
        grad_out: the output gradient, same shape.
        kernel_size: ``k``.
        dilation: the forward's dilation.

    Returns:
        ``(C, 1, k, k)`` in ``x``'s dtype.
    """
    n, c, h, w = x.shape
    k = kernel_size
    torch_acc, tl_acc = _acc_dtype(x.dtype)
    rows = n * h
    splits = _num_splits(rows, k, c, x.device)
    rows_per_split = triton.cdiv(rows, splits)
    splits = triton.cdiv(rows, rows_per_split)
    partial = torch.empty(splits, k, k, c, device=x.device, dtype=torch_acc)

    def grid(meta):
        return (k, triton.cdiv(c, meta["BLOCK_C"]), splits)

    channels_last = _is_channels_last(x)
    kernel, meta = _kernel_and_meta(
        _dwconv_weight_grad_tuned, _dwconv_weight_grad_kernel, lambda: _default_weight_grad_meta(c, channels_last)
    )
    launch(
        kernel,
        grid,
        x,
        grad_out,
        partial,
        c,
        h,
        w,
        dilation,
        rows,
        rows_per_split,
        *x.stride(),
        *grad_out.stride(),
        K=k,
        K_POW2=triton.next_power_of_2(k),
        CHANNELS_LAST=channels_last,
        ACC_DTYPE=tl_acc,
        **meta,
    )
    return partial.sum(0).permute(2, 0, 1).unsqueeze(1).to(x.dtype)
