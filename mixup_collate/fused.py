"""One Triton kernel that finishes a batch's inputs on a CUDA device: mix, cut, convert and normalise in one pass.

For every element of every sample it reads the sample's own value, and its partner's only where the sample
is blended or the element lies in the sample's CutMix region (tested per element from the region's edges:
no mask is built, no partner copy made), applies the per-channel map ``v * scale + shift`` (``uint8 -> [0,
1]`` and ``mean``/``std`` folded into it) and writes the output dtype in the output layout. The draws travel
as one small buffer (``move_draws``), copied to the device once per batch without waiting.

Triton ships with PyTorch's CUDA builds for Linux. Where it cannot run (the CPU, other devices, a build
without it, float64) the torch operations of [`mix`][mixup_collate.mix.mix] do the same work. ``usable``
decides; ``MIXUP_COLLATE_KERNEL=torch`` forces the torch operations on CUDA too, and ``=triton`` forces the
kernel, which then runs on CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1``, for tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

try:  # a guarded import: the torch path serves builds and devices without Triton
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None

__all__ = ["KERNEL_ENV", "DeviceDraws", "finish_dense", "finish_inputs", "move_draws", "usable"]

KERNEL_ENV = "MIXUP_COLLATE_KERNEL"
_IN_DTYPES = (torch.uint8, torch.float16, torch.bfloat16, torch.float32)
_OUT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_BLOCK = 1024
_MAX_DIMS = 3


def usable(device: torch.device, in_dtype: torch.dtype, out_dtype: torch.dtype, dims: Sequence[int]) -> bool:
    """Whether the kernel finishes inputs of ``in_dtype`` on ``device``: Triton present, CUDA (or forced), dtypes
    and region it serves."""
    choice = os.environ.get(KERNEL_ENV, "auto")
    if choice not in ("auto", "torch", "triton"):
        raise ValueError(f"{KERNEL_ENV} must be 'auto', 'torch' or 'triton', got {KERNEL_ENV}={choice!r}")
    if triton is None or choice == "torch":
        return False
    on_device = device.type == "cuda" or choice == "triton"
    return on_device and in_dtype in _IN_DTYPES and out_dtype in _OUT_DTYPES and len(dims) <= _MAX_DIMS


class DeviceDraws(NamedTuple):
    """A batch's draws on the device, views of one buffer that crossed in one copy.

    Attributes:
        perm: ``(B,)`` int64 partners.
        lam: ``(B,)`` float32 weights.
        mode: ``(B,)`` int64 ``UNMIXED`` / ``BLENDED`` / ``CUT``.
        boxes: ``(B, 2k)`` int64 region edges, or ``None`` when no sample is cut.
        targets: ``(y, y[perm])`` class indices, when they were packed with the draws, else ``None``.
    """

    perm: Tensor
    lam: Tensor
    mode: Tensor
    boxes: Tensor | None
    targets: tuple[Tensor, Tensor] | None


def move_draws(
    perm: Tensor, lam: Tensor, mode: Tensor, boxes: Tensor | None, y: Tensor | None, move: Callable[[Tensor], Tensor]
) -> DeviceDraws:
    """The CPU draws (and class indices ``y``, with their partners' ``y[perm]``) packed in numpy into one int64
    buffer, moved by ``move`` in one copy, and viewed there field by field."""
    n = perm.shape[0]
    k2 = 0 if boxes is None else boxes.shape[1]
    ints = (2 + k2 + (0 if y is None else 2)) * n
    packed = np.empty(ints + (n + 1) // 2, dtype=np.int64)
    order = perm.numpy()
    packed[:n], packed[n : 2 * n] = order, mode.numpy()
    if boxes is not None:
        packed[2 * n : (2 + k2) * n] = boxes.numpy().ravel()
    if y is not None:
        labels = y.numpy()
        packed[(2 + k2) * n : (3 + k2) * n], packed[(3 + k2) * n : ints] = labels, labels[order]
    packed[ints:].view(np.float32)[:n] = lam.numpy()
    moved = move(torch.from_numpy(packed))
    return DeviceDraws(
        perm=moved[:n],
        lam=moved[ints:].view(torch.float32)[:n],
        mode=moved[n : 2 * n],
        boxes=None if boxes is None else moved[2 * n : (2 + k2) * n].view(n, k2),
        targets=None if y is None else (moved[(2 + k2) * n : (3 + k2) * n], moved[(3 + k2) * n : ints]),
    )


def _region_args(draws: DeviceDraws, shape: Sequence[int], dims: Sequence[int]) -> tuple[int, Tensor, list[int]]:
    """A kernel's region arguments: ``k``, the edges (any int64 pointer when no sample is cut), and the
    ``(stride, size)`` of each region dimension of a contiguous ``shape``, padded to three with ``(1, 1)``."""
    if draws.boxes is None:
        return 0, draws.perm, [1, 1] * _MAX_DIMS
    k = draws.boxes.shape[1] // 2
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    geometry: list[int] = []
    for d in tuple(dims)[:k]:
        geometry += [strides[d], shape[d]]
    return k, draws.boxes, geometry + [1, 1] * (_MAX_DIMS - k)


def finish_inputs(
    x: Tensor,
    draws: DeviceDraws,
    dims: Sequence[int],
    out_dtype: torch.dtype,
    scale: Tensor | float,
    shift: Tensor | None,
    channel_dim: int | None,
    channels_last: bool,
) -> Tensor:
    """The batch ``x`` ``(B, *S)`` mixed as ``draws`` (on ``x``'s device) say, in one launch.

    ``scale``/``shift`` are the per-channel map of [`affine_constants`][mixup_collate.mix.affine_constants]
    along ``channel_dim`` (``None``: a sample's first dimension). Returns ``(B, *S)`` of ``out_dtype``, in
    ``channels_last`` layout when asked (4-D inputs).
    """
    x = x.contiguous()
    n, shape = x.shape[0], tuple(x.shape[1:])
    size = int(np.prod(shape)) if shape else 1
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(x.shape, dtype=out_dtype, device=x.device).contiguous(memory_format=fmt)
    if n == 0 or size == 0:
        return out
    axis = 0 if channel_dim is None else len(shape) + channel_dim
    channels = shape[axis] if shape else 1
    channel_stride = int(np.prod(shape[axis + 1 :])) if shape else 1
    # A number (uint8 -> [0, 1] alone) is an argument; per-channel constants are read from the device.
    per_channel = isinstance(scale, Tensor)
    scale_t = scale.reshape(-1).to(torch.float32) if per_channel else draws.lam  # any float pointer when unused
    shift_t = scale_t if shift is None else shift.reshape(-1).to(torch.float32)
    if not per_channel or scale_t.numel() == 1:
        channel_stride, channels = 1, 1  # one value for every channel
    k, edges, geometry = _region_args(draws, shape, dims)
    _finish_kernel[(n, triton.cdiv(size, _BLOCK))](
        x, out, draws.perm, draws.mode, draws.lam, edges, scale_t, shift_t, 1.0 if per_channel else float(scale),
        size, *geometry, channel_stride, channels,
        shape[0] if channels_last else 1, size // shape[0] if channels_last else 1,
        K=k, PER_CHANNEL=per_channel, HAS_SHIFT=shift is not None, CHANNELS_LAST=channels_last, BLOCK=_BLOCK,
    )  # fmt: skip
    return out


_DENSE_DTYPES = (
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
)


def finish_dense(
    y: Tensor, draws: DeviceDraws, sizes: Sequence[int], mixed_maps: bool
) -> tuple[Tensor, Tensor, Tensor] | None:
    """Dense targets ``y`` ``(B, [K,] *sizes)`` on the device, finished in one launch: ``(y_a, y_b, lam)``.

    ``lam`` is the weight of ``y_a`` per element of the cut dimensions, float32 ``(B, *sizes)``: ``lam[i]``
    where sample ``i`` is blended, 0 inside its region where it is cut, 1 elsewhere. Integer masks come back
    as int64 ``y`` and ``y[perm]``; float maps as ``y`` and ``y[perm]``, or with ``mixed_maps`` both as the
    mixed map (the sample's or the partner's value exactly where ``lam`` is 1 or 0). ``None`` for a dtype
    the kernel does not serve.
    """
    if y.dtype not in _DENSE_DTYPES:
        return None
    y = y.contiguous()
    n, pixels = y.shape[0], int(np.prod(sizes))
    per_sample = int(np.prod(y.shape[1:]))
    floating = y.is_floating_point()
    lam = torch.empty((n, *sizes), dtype=torch.float32, device=y.device)
    y_a = (
        y
        if floating and not mixed_maps
        else torch.empty(y.shape, dtype=y.dtype if floating else torch.int64, device=y.device)
    )
    y_b = y_a if mixed_maps else torch.empty(y.shape, dtype=y.dtype if floating else torch.int64, device=y.device)
    if n == 0 or per_sample == 0:
        return y_a, y_b, lam
    k, edges, geometry = _region_args(draws, tuple(sizes), range(-len(sizes), 0))
    _dense_kernel[(n, triton.cdiv(per_sample, _BLOCK))](
        y, y_a, y_b, lam, draws.perm, draws.mode, draws.lam, edges, per_sample, pixels, *geometry,
        K=k, MIXED=mixed_maps, WRITES_Y_A=y_a is not y, BLOCK=_BLOCK,
    )  # fmt: skip
    return y_a, y_b, lam


if triton is not None:

    @triton.jit
    def _kinds(
        mode,
        row,
        index,
        r0_stride,
        r0_size,
        r1_stride,
        r1_size,
        r2_stride,
        r2_size,
        K: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        """Per element: the sample is blended; the element lies in the region of a cut sample (edges at ``row``).

        ``index`` is the element's place in a contiguous layout whose region dimensions have the given strides
        and sizes. Scalars are broadcast to blocks before they meet block masks (the interpreter refuses
        ``bool block | bool scalar``).
        """
        zeros = tl.zeros([BLOCK], dtype=tl.int64)
        blended = (zeros + mode) == 1
        inside = (zeros + mode) == 2
        if K >= 1:
            c0 = (index // r0_stride) % r0_size
            inside = inside & (c0 >= tl.load(row)) & (c0 < tl.load(row + 1))
        if K >= 2:
            c1 = (index // r1_stride) % r1_size
            inside = inside & (c1 >= tl.load(row + 2)) & (c1 < tl.load(row + 3))
        if K >= 3:
            c2 = (index // r2_stride) % r2_size
            inside = inside & (c2 >= tl.load(row + 4)) & (c2 < tl.load(row + 5))
        if K == 0:
            inside = inside & False
        return blended, inside

    @triton.jit
    def _finish_kernel(
        x_ptr,
        out_ptr,
        perm_ptr,
        mode_ptr,
        lam_ptr,
        edges_ptr,
        scale_ptr,
        shift_ptr,
        scale_value,
        size,
        r0_stride,
        r0_size,
        r1_stride,
        r1_size,
        r2_stride,
        r2_size,
        channel_stride,
        channels,
        cl_channels,
        cl_pixels,
        K: tl.constexpr,
        PER_CHANNEL: tl.constexpr,
        HAS_SHIFT: tl.constexpr,
        CHANNELS_LAST: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        i = tl.program_id(0).to(tl.int64)
        offs = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        valid = offs < size
        partner = tl.load(perm_ptr + i)
        mode = tl.load(mode_ptr + i)
        lam = tl.load(lam_ptr + i)
        own = tl.load(x_ptr + i * size + offs, mask=valid, other=0).to(tl.float32)
        blended, inside = _kinds(mode, edges_ptr + i * (2 * K), offs, r0_stride, r0_size, r1_stride, r1_size,
                                 r2_stride, r2_size, K, BLOCK)  # fmt: skip
        wanted = valid & (blended | inside)
        theirs = tl.load(x_ptr + partner * size + offs, mask=wanted, other=0).to(tl.float32)
        value = tl.where(inside, theirs, own)
        value = tl.where(blended, own * lam + theirs * (1.0 - lam), value)
        channel = (offs // channel_stride) % channels
        scale = tl.load(scale_ptr + channel, mask=valid, other=1.0) if PER_CHANNEL else scale_value
        value = value * scale + tl.load(shift_ptr + channel, mask=valid, other=0.0) if HAS_SHIFT else value * scale
        target = offs % cl_pixels * cl_channels + offs // cl_pixels if CHANNELS_LAST else offs
        tl.store(out_ptr + i * size + target, value.to(out_ptr.dtype.element_ty), mask=valid)

    @triton.jit
    def _dense_kernel(
        y_ptr,
        ya_ptr,
        yb_ptr,
        lam_out_ptr,
        perm_ptr,
        mode_ptr,
        lam_ptr,
        edges_ptr,
        size,
        pixels,
        r0_stride,
        r0_size,
        r1_stride,
        r1_size,
        r2_stride,
        r2_size,
        K: tl.constexpr,
        MIXED: tl.constexpr,
        WRITES_Y_A: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        i = tl.program_id(0).to(tl.int64)
        offs = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        valid = offs < size
        partner = tl.load(perm_ptr + i)
        mode = tl.load(mode_ptr + i)
        lam = tl.load(lam_ptr + i)
        pixel = offs % pixels  # the element's place among the cut dimensions (every channel of a map shares it)
        blended, inside = _kinds(mode, edges_ptr + i * (2 * K), pixel, r0_stride, r0_size, r1_stride, r1_size,
                                 r2_stride, r2_size, K, BLOCK)  # fmt: skip
        weight = tl.where(blended, lam, tl.where(inside, 0.0, 1.0))
        tl.store(lam_out_ptr + i * pixels + offs, weight, mask=valid & (offs < pixels))
        own = tl.load(y_ptr + i * size + offs, mask=valid, other=0)
        theirs = tl.load(y_ptr + partner * size + offs, mask=valid, other=0)
        if MIXED:
            w = weight.to(tl.float32)
            a, b = own.to(tl.float32), theirs.to(tl.float32)
            mixed = tl.where(w == 1.0, a, tl.where(w == 0.0, b, w * a + (1.0 - w) * b))
            tl.store(ya_ptr + i * size + offs, mixed.to(ya_ptr.dtype.element_ty), mask=valid)
        else:
            if WRITES_Y_A:
                tl.store(ya_ptr + i * size + offs, own.to(ya_ptr.dtype.element_ty), mask=valid)
            tl.store(yb_ptr + i * size + offs, theirs.to(yb_ptr.dtype.element_ty), mask=valid)
