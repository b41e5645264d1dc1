"""Tensor-core Triton kernels for the bf16/fp16 depthwise convolution: banded Toeplitz matrix products.

Per channel, a stride-1 'same' k x k convolution is a sum over its k kernel rows ``i`` of one matrix
product along W: output row ``h`` gets ``x[h + (i - k//2) * d, :] @ T_i`` where ``T_i[u, w]`` holds the
kernel row's tap ``j`` at ``u - w = (j - k//2) * d`` and zero elsewhere (a band). A program owns
``TILE_M`` output rows (flattened over N*H, so 7x7 and 14x14 maps waste no rows), ``TILE_W`` output
columns and ``BLOCK_C`` channels, and runs ``k`` batched (over channels) ``tl.dot`` calls of
``(TILE_M x TILE_U) @ (TILE_U x TILE_W)`` on the tensor cores with fp32 accumulation. ``TILE_U`` input
columns cover the tile's columns plus the kernel's reach (or the whole map when one tile spans it, so
padding columns are never multiplied). The bands are built once per call on the host from the weight
(``toeplitz``), a few MB at most. Products of two bf16/fp16 values are exact in fp32: the result equals a
CUDA-core fp32-accumulating kernel's up to summation order.

Weight gradient: for kernel row ``i``, ``Z = X_i^T @ G`` (``TILE_U x TILE_W`` per channel, summed over a
split of the N*H rows on the tensor cores) and ``dW[i, j] = sum of Z's diagonal u - w = (j - k//2) * d``.
Each (split, column tile) writes its own fp32 partial sums, added in a fixed order afterwards: the weight
gradient is deterministic, bit for bit.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import triton_dwconv

__all__ = ["MMA_DTYPES", "ColumnPlan", "column_plan", "mma_forward", "mma_weight_grad", "toeplitz"]

MMA_DTYPES = (torch.bfloat16, torch.float16)
TILE_M = 16  # the tensor cores' smallest row block
BLOCK_C = 16


class ColumnPlan(tuple):
    """``(tile_w, tile_u, shift)``: output columns per tile, input columns per tile, and the offset of the
    first input column left of the first output column."""

    @property
    def tile_w(self) -> int:
        return self[0]

    @property
    def tile_u(self) -> int:
        return self[1]

    @property
    def shift(self) -> int:
        return self[2]


def column_plan(width: int, kernel_size: int, dilation: int, prefer_wide: bool) -> ColumnPlan:
    """The column tiling with the fewest tensor-core FMAs per output row.

    A tile as wide as the map reads only the map's own columns; a narrower one reads its columns plus
    the kernel's reach on both sides. Ties go to wider tiles with ``prefer_wide`` (the forward: fewer
    programs and index computations) and to narrower ones without (the weight gradient, whose per-program
    ``TILE_U x TILE_W`` sums would otherwise spill registers)."""
    reach = dilation * (kernel_size // 2)
    best = None
    for tile_w in (16, 32, 64):
        if tile_w >= width:
            plan = ColumnPlan((tile_w, max(16, triton.next_power_of_2(width)), 0))
        else:
            plan = ColumnPlan((tile_w, triton.next_power_of_2(tile_w + 2 * reach), reach))
        cost = triton.cdiv(width, tile_w) * plan.tile_u * tile_w
        if best is None or cost < best[0] or (prefer_wide and cost == best[0]):
            best = (cost, plan)
        if tile_w >= width:
            break
    return best[1]


def toeplitz(weight: torch.Tensor, plan: ColumnPlan, dilation: int, channels_padded: int) -> torch.Tensor:
    """The banded matrices ``T[i, c, u, w] = weight[c, 0, i, j]`` where ``u - w - shift = (j - k//2) * d``.

    Returns ``(k, channels_padded, tile_u, tile_w)`` in the weight's dtype (zero past the real channels)."""
    c, _, k, _ = weight.shape
    diff = (
        torch.arange(plan.tile_u, device=weight.device)[:, None]
        - torch.arange(plan.tile_w, device=weight.device)[None, :]
        - plan.shift
    )
    tap = torch.div(diff, dilation, rounding_mode="floor") + k // 2
    valid = (diff % dilation == 0) & (tap >= 0) & (tap < k)
    rows = weight.reshape(c, k, k).permute(1, 0, 2)  # (k, C, k): kernel row, channel, column
    bands = rows[:, :, tap.clamp(0, k - 1)] * valid.to(weight.dtype)  # (k, C, U, W)
    out = weight.new_zeros(k, channels_padded, plan.tile_u, plan.tile_w)
    out[:, :c] = bands
    return out


# Row counts follow the batch size: not specialised, so one compile serves every batch.
@triton.jit(do_not_specialize=["rows_total"])
def _mma_forward_kernel(
    x_ptr,
    t_ptr,  # (K, C_PAD, TILE_U, TILE_W) bands
    b_ptr,
    y_ptr,
    C,
    H,
    W,
    rows_total,  # N * H
    dilation,
    shift,
    sxn,
    sxc,
    sxh,
    sxw,
    syn,
    syc,
    syh,
    syw,
    K: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_C: tl.constexpr,
    TILE_M: tl.constexpr,
    TILE_W: tl.constexpr,
    TILE_U: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_w = tl.program_id(1)
    pid_c = tl.program_id(2)
    PAD: tl.constexpr = K // 2

    rows = pid_m * TILE_M + tl.arange(0, TILE_M)
    img = (rows // H).to(tl.int64)
    h = rows % H
    row_ok = rows < rows_total
    w0 = pid_w * TILE_W
    us = w0 - shift + tl.arange(0, TILE_U)
    u_ok = (us >= 0) & (us < W)
    cs = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = cs < C

    x_c = x_ptr + cs[:, None, None] * sxc + us[None, None, :] * sxw  # (BLOCK_C, 1, TILE_U)
    x_cu_ok = c_ok[:, None, None] & u_ok[None, None, :]
    band = (
        t_ptr
        + (cs[:, None, None] * TILE_U + tl.arange(0, TILE_U)[None, :, None]) * TILE_W
        + tl.arange(0, TILE_W)[None, None, :]
    )  # (BLOCK_C, TILE_U, TILE_W) for kernel row 0
    band_step = tl.num_programs(2) * BLOCK_C * TILE_U * TILE_W

    acc = tl.zeros((BLOCK_C, TILE_M, TILE_W), dtype=tl.float32)
    for i in range(K):
        in_row = h + (i - PAD) * dilation
        m_ok = row_ok & (in_row >= 0) & (in_row < H)
        a = tl.load(x_c + (img * sxn + in_row * sxh)[None, :, None], mask=x_cu_ok & m_ok[None, :, None], other=0.0)
        b = tl.load(band + i * band_step)
        if DOT_FP32:
            a, b = a.to(tl.float32), b.to(tl.float32)
        acc = tl.dot(a, b, acc)

    if HAS_BIAS:
        acc += tl.load(b_ptr + cs, mask=c_ok, other=0.0).to(tl.float32)[:, None, None]
    ws = w0 + tl.arange(0, TILE_W)
    y_off = cs[:, None, None] * syc + (img * syn + h * syh)[None, :, None] + ws[None, None, :] * syw
    y_ok = c_ok[:, None, None] & row_ok[None, :, None] & (ws < W)[None, None, :]
    tl.store(y_ptr + y_off, acc.to(y_ptr.dtype.element_ty), mask=y_ok)


@triton.jit(do_not_specialize=["rows_total", "rows_per_split"])
def _mma_weight_grad_kernel(
    x_ptr,
    g_ptr,
    partial_ptr,  # (SPLITS, COL_TILES, K, K, C) fp32
    C,
    H,
    W,
    rows_total,
    rows_per_split,
    dilation,
    shift,
    sxn,
    sxc,
    sxh,
    sxw,
    sgn,
    sgc,
    sgh,
    sgw,
    K: tl.constexpr,
    BLOCK_C: tl.constexpr,
    TILE_M: tl.constexpr,
    TILE_W: tl.constexpr,
    TILE_U: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    i = tl.program_id(0)
    pid_c = tl.program_id(1)
    pid_s = tl.program_id(2)
    col_tiles = tl.cdiv(W, TILE_W)
    split = pid_s // col_tiles
    tile = pid_s % col_tiles
    PAD: tl.constexpr = K // 2

    w0 = tile * TILE_W
    us = w0 - shift + tl.arange(0, TILE_U)
    ws = w0 + tl.arange(0, TILE_W)
    cs = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = cs < C
    x_cu = x_ptr + cs[:, None, None] * sxc + us[None, :, None] * sxw  # (BLOCK_C, TILE_U, 1)
    x_cu_ok = c_ok[:, None, None] & ((us >= 0) & (us < W))[None, :, None]
    g_cw = g_ptr + cs[:, None, None] * sgc + ws[None, None, :] * sgw  # (BLOCK_C, 1, TILE_W)
    g_cw_ok = c_ok[:, None, None] & (ws < W)[None, None, :]

    row_start = split * rows_per_split
    row_end = tl.minimum(row_start + rows_per_split, rows_total)
    z = tl.zeros((BLOCK_C, TILE_U, TILE_W), dtype=tl.float32)
    for r0 in range(row_start, row_end, TILE_M):
        rows = r0 + tl.arange(0, TILE_M)
        img = (rows // H).to(tl.int64)
        h = rows % H
        row_ok = rows < row_end
        in_row = h + (i - PAD) * dilation
        x_ok = row_ok & (in_row >= 0) & (in_row < H)
        xt = tl.load(x_cu + (img * sxn + in_row * sxh)[None, None, :], mask=x_cu_ok & x_ok[None, None, :], other=0.0)
        g = tl.load(g_cw + (img * sgn + h * sgh)[None, :, None], mask=g_cw_ok & row_ok[None, :, None], other=0.0)
        if DOT_FP32:
            xt, g = xt.to(tl.float32), g.to(tl.float32)
        z = tl.dot(xt, g, z)

    diff = tl.arange(0, TILE_U)[:, None] - tl.arange(0, TILE_W)[None, :] - shift  # (TILE_U, TILE_W)
    out = partial_ptr + (((split * col_tiles + tile) * K + i) * K) * C + cs
    for j in tl.static_range(K):
        on_diagonal = diff == (j - PAD) * dilation
        dw = tl.sum(tl.sum(tl.where(on_diagonal[None, :, :], z, 0.0), axis=2), axis=1)
        tl.store(out + j * C, dw, mask=c_ok)


def _meta(plan: ColumnPlan, k: int, dtype: torch.dtype) -> dict[str, int]:
    # Triton's interpreter multiplies bf16 matrices wrongly (3.8): it runs the (exact) products in fp32.
    dot_fp32 = triton_dwconv.INTERPRETED and dtype == torch.bfloat16
    return {"K": k, "BLOCK_C": BLOCK_C, "TILE_M": TILE_M, "TILE_W": plan.tile_w, "TILE_U": plan.tile_u,
            "DOT_FP32": dot_fp32}  # fmt: skip


def mma_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int = 1) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding=dilation * (k // 2), dilation=dilation, groups=C)`` on the tensor cores.

    Args:
        x: ``(N, C, H, W)`` bf16 or fp16, any strides (channels_last and contiguous are the fast ones).
        weight: ``(C, 1, k, k)`` in ``x``'s dtype, odd ``k``.
        bias: ``(C,)`` or None.
        dilation: spacing of the kernel taps, >= 1.

    Returns:
        ``(N, C, H, W)`` in ``x``'s dtype and memory format.
    """
    n, c, h, w = x.shape
    k = weight.shape[-1]
    plan = column_plan(w, k, dilation, prefer_wide=True)
    c_pad = triton.cdiv(c, BLOCK_C) * BLOCK_C
    bands = toeplitz(weight, plan, dilation, c_pad)
    y = torch.empty_like(x)
    if y.numel() == 0:
        return y
    rows = n * h
    grid = (triton.cdiv(rows, TILE_M), triton.cdiv(w, plan.tile_w), c_pad // BLOCK_C)
    triton_dwconv.launch(
        _mma_forward_kernel,
        lambda meta: grid,
        x,
        bands,
        bias if bias is not None else bands,
        y,
        c,
        h,
        w,
        rows,
        dilation,
        plan.shift,
        *x.stride(),
        *y.stride(),
        HAS_BIAS=bias is not None,
        num_warps=4,
        num_stages=1,
        **_meta(plan, k, x.dtype),
    )
    return y


def _num_splits(rows: int, programs_per_split: int, device: torch.device) -> int:
    # Enough programs to fill the GPU a few times over; a pure function of the shape and the device,
    # so the summation order (hence the result) never changes between runs.
    programs = 4 * triton_dwconv.multiprocessors(device)
    return max(1, min(triton.cdiv(rows, TILE_M), triton.cdiv(programs, programs_per_split), 256))


def mma_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Deterministic gradient w.r.t. the ``(C, 1, k, k)`` weight, on the tensor cores.

    Args:
        x: the forward input ``(N, C, H, W)``, bf16 or fp16.
        grad_out: the output gradient, same shape and dtype.
        kernel_size: ``k``.
        dilation: the forward's dilation.

    Returns:
        ``(C, 1, k, k)`` in ``x``'s dtype.
    """
    n, c, h, w = x.shape
    k = kernel_size
    plan = column_plan(w, k, dilation, prefer_wide=False)
    rows = n * h
    col_tiles = triton.cdiv(w, plan.tile_w)
    c_blocks = triton.cdiv(c, BLOCK_C)
    splits = _num_splits(rows, k * c_blocks * col_tiles, x.device)
    rows_per_split = triton.cdiv(triton.cdiv(rows, splits), TILE_M) * TILE_M
    splits = triton.cdiv(rows, rows_per_split)
    partial = torch.zeros(splits, col_tiles, k, k, c, device=x.device, dtype=torch.float32)
    grid = (k, c_blocks, splits * col_tiles)
    triton_dwconv.launch(
        _mma_weight_grad_kernel,
        lambda meta: grid,
        x,
        grad_out,
        partial,
        c,
        h,
        w,
        rows,
        rows_per_split,
        dilation,
        plan.shift,
        *x.stride(),
        *grad_out.stride(),
        num_warps=4,
        num_stages=1,
        **_meta(plan, k, x.dtype),
    )
    return partial.sum((0, 1)).permute(2, 0, 1).unsqueeze(1).to(x.dtype)
