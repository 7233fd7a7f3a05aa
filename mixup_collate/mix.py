"""The mix itself: pure tensor functions on a ready batch, on whatever device the batch lives.

For a batch ``x`` of shape ``(B, *S)``, [`mix`][mixup_collate.mix.mix] computes

    out[i] = (lam[i] * x[i] + (1 - lam[i]) * x[perm[i]]) * scale + shift

for every blended sample, in floating point (``uint8`` input is widened, never rounded back), where the
optional per-channel affine map (``scale``, ``shift``, broadcastable to ``S``) folds the ``uint8 -> [0, 1]``
scaling and mean/std normalization into the same pass. A per-sample ``mode`` (see
[`MixParams`][mixup_collate.params.MixParams]) leaves some samples unmixed and cuts others: their box is
copied from the partner by [`paste`][mixup_collate.boxes.paste], the one region primitive.

Memory traffic is the cost that matters on the CPU. The mix works in place in a private buffer:
``x`` itself when the caller owns it (``overwrite_input``), else one converted copy, from which the
partners are read where they are needed. A gathered copy of the partners goes into a reusable
``scratch`` buffer, so mixing batch after batch faults in no fresh pages. A large Mixup batch is instead
mixed one row at a time, following the permutation's cycles with one saved row per cycle: each row
and its partner are read once and the result written once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .boxes import are_sample_dims, paste
from .params import BLENDED, CUT

__all__ = [
    "Scratch",
    "mix",
    "mix_targets",
    "InputPlan",
    "affine_constants",
    "mix_inputs",
    "mix_maps",
    "output_dtype",
    "pair",
    "per_row",
    "pixel_lam",
    "plan_inputs",
    "soft_targets",
    "transform",
]

# CPU rows at least this large are mixed one at a time (the per-row Python overhead is then small
# against the row's memory traffic) unless the whole batch fits in cache.
ROW_LOOP_MIN_BYTES = 32 * 1024
CACHE_BYTES = 4 * 1024 * 1024


def per_row(w: Tensor, ndim: int) -> Tensor:
    """Per-row values ``(B,)`` (or ``(B, K)``) viewed as ``(B, 1, ..., 1)`` to broadcast over an ``ndim``-D batch."""
    return w.reshape(*w.shape, *([1] * (ndim - w.ndim)))


def output_dtype(x: Tensor, dtype: torch.dtype | None) -> torch.dtype:
    """The dtype ``mix`` returns for ``x``: ``dtype``, else ``x``'s own float dtype, float32 for ``uint8``."""
    if not (x.is_floating_point() or x.dtype == torch.uint8):
        raise TypeError(
            f"cannot mix inputs of dtype {x.dtype}: mixing needs floating point or uint8 (image) inputs; "
            "for categorical inputs use stack_x=True and mix inside the model"
        )
    if dtype is None:
        return x.dtype if x.is_floating_point() else torch.float32
    if not dtype.is_floating_point:
        raise TypeError(f"output dtype must be floating point (mixing is exact in float), got {dtype}")
    return dtype


def _check_batch(x: Tensor) -> None:
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"expected a batch of shape (B, ...) with B >= 1, got shape {tuple(x.shape)}")


def _check_arguments(x: Tensor, perm: Tensor, dims: tuple[int, ...] = (-2, -1), **given: Tensor | None) -> None:
    """The arguments of a public function, checked where they enter: shapes, index dtype, partners in range."""
    _check_batch(x)
    b = x.shape[0]
    for name, t in {"perm": perm, **given}.items():
        expected = (b, 2 * len(dims)) if name == "boxes" else (b,)
        if t is not None and tuple(t.shape) != expected:
            raise ValueError(f"{name} must have shape {expected} for a batch of {b}, got {tuple(t.shape)}")
    if perm.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"perm must hold int64 indices, got {perm.dtype}")
    boxes = given.get("boxes")
    if boxes is not None and (boxes.dtype == torch.bool or boxes.is_floating_point() or boxes.is_complex()):
        raise ValueError(f"boxes must hold integer edges (int64), got {boxes.dtype}")
    if bool((perm < 0).any()) or bool((perm >= b).any()):
        raise ValueError(f"perm must hold indices in [0, {b}) for a batch of {b}, got values {perm.tolist()}")


def _gather(x: Tensor, perm: Tensor, scratch: Scratch | None = None) -> Tensor:
    """``x[perm]``, into the ``scratch`` buffer when there is one (the caller gives it back)."""
    return torch.index_select(x, 0, perm, out=scratch.take(x) if scratch is not None else torch.empty_like(x))


def _memory_format(x: Tensor, channels_last: bool) -> torch.memory_format:
    if not channels_last:
        return torch.contiguous_format
    if x.ndim != 4:
        raise ValueError(f"channels_last needs 4-D (B, C, H, W) inputs, got shape {tuple(x.shape)}")
    return torch.channels_last


def _empty_like(x: Tensor, dtype: torch.dtype, memory_format: torch.memory_format) -> Tensor:
    return torch.empty(x.shape, dtype=dtype, device=x.device).contiguous(memory_format=memory_format)


def _overwrites(x: Tensor, out_dtype: torch.dtype, fmt: torch.memory_format) -> bool:
    return x.dtype == out_dtype and out_dtype in (torch.float32, torch.float64) and x.is_contiguous(memory_format=fmt)


def _private(x: Tensor, out_dtype: torch.dtype, fmt: torch.memory_format, overwrite_input: bool) -> Tensor:
    """``x`` in the computation's dtype and layout, in memory the mix may overwrite: ``x`` itself when allowed."""
    if overwrite_input and _overwrites(x, out_dtype, fmt):
        return x
    compute = torch.promote_types(out_dtype, torch.float32)
    return _empty_like(x, compute, fmt).copy_(x)


class Scratch:
    """A reusable buffer for the partners, for a caller that mixes batch after batch.

    A fresh buffer per batch means faulting in fresh pages per batch (about a copy's worth on the
    CPU). The buffer never leaves [`mix`][mixup_collate.mix.mix] and is fully overwritten before it is read, so reusing
    it cannot alias a batch the caller holds; a mix running while another holds it gets its own.
    """

    def __init__(self) -> None:
        self._buffer: Tensor | None = None
        self._lock = threading.Lock()  # two threads mixing at once never get the same buffer

    def take(self, like: Tensor) -> Tensor:
        """A buffer shaped, typed and laid out like ``like`` (the kept one if it fits, else a new one)."""
        with self._lock:
            buffer, self._buffer = self._buffer, None
        if buffer is None or (buffer.shape, buffer.dtype, buffer.device, buffer.stride()) != (
            like.shape,
            like.dtype,
            like.device,
            like.stride(),
        ):
            buffer = torch.empty_like(like)
        return buffer

    def give_back(self, buffer: Tensor) -> None:
        self._buffer = buffer


def _row_loop(x: Tensor) -> bool:
    """Whether a row-by-row pass beats one vectorised pass over the batch (see module docstring)."""
    batch_bytes = x.numel() * x.element_size()
    return x.device.type == "cpu" and batch_bytes >= ROW_LOOP_MIN_BYTES * x.shape[0] and batch_bytes > CACHE_BYTES


def _cycles(order: list[int]) -> list[list[int]] | None:
    """The cycles of a permutation (each as ``i, perm[i], perm[perm[i]], ...``), or ``None`` if it is not one."""
    n = len(order)
    if sorted(order) != list(range(n)):
        return None
    seen = [False] * n
    cycles = []
    for start in range(n):
        if not seen[start]:
            cycle, i = [], start
            while not seen[i]:
                seen[i] = True
                cycle.append(i)
                i = order[i]
            cycles.append(cycle)
    return cycles


def _mix_rows_in_place(
    x: Tensor, cycles: list[list[int]], order: list[int], w_own: Tensor, w_partner: Tensor, shift: Tensor | None
) -> None:
    """Row-by-row mix written back into ``x``.

    Within a cycle ``i0 -> i1 -> ... -> ik`` row ``i_j`` needs the original ``i_{j+1}``, which is
    still untouched when rows are visited in cycle order; only ``i0`` is needed after it is
    overwritten (by ``ik``), so one row per cycle is saved, all before the first write: the writes
    themselves allocate nothing.
    """
    saved = [x[cycle[0]].clone() for cycle in cycles]
    for first, cycle in zip(saved, cycles):
        for j, i in enumerate(cycle):
            partner = first if j == len(cycle) - 1 else x[order[i]]
            x[i].mul_(w_own[i]).addcmul_(partner, w_partner[i])
            if shift is not None:
                x[i].add_(shift)


def _affine_(out: Tensor, scale: Tensor | float, shift: Tensor | None) -> Tensor:
    """``out * scale + shift`` in place, in one elementwise op (so an interruption cannot apply half of it)."""
    if shift is not None:
        if not isinstance(scale, Tensor):
            scale = torch.tensor(scale, dtype=out.dtype, device=out.device)
        return torch.addcmul(shift, out, scale, out=out)
    if isinstance(scale, float) and scale == 1.0:
        return out
    return out.mul_(scale)


def mix(
    x: Tensor,
    perm: Tensor,
    lam: Tensor,
    *,
    mode: Tensor | None = None,
    boxes: Tensor | None = None,
    dims: Sequence[int] = (-2, -1),
    dtype: torch.dtype | None = None,
    scale: Tensor | float = 1.0,
    shift: Tensor | None = None,
    channels_last: bool = False,
    overwrite_input: bool = False,
    scratch: Scratch | None = None,
) -> Tensor:
    """Mix every row with its partner: ``out[i] = (lam[i]*x[i] + (1-lam[i])*x[perm[i]]) * scale + shift``.

    Args:
        x: ``(B, *S)`` floating point or ``uint8`` batch.
        perm: ``(B,)`` int64 partner indices (any indices in ``[0, B)``, not only permutations).
        lam: ``(B,)`` weights of the unshuffled rows.
        mode: ``(B,)`` per row [`UNMIXED`][mixup_collate.params.UNMIXED] (kept exactly), ``BLENDED`` (the
            formula) or ``CUT`` (its box copied from its partner); ``None`` blends every row (Mixup).
        boxes: ``(B, 2k)`` int64 boxes, one ``(start, stop)`` pair per dimension of ``dims`` (by default
            ``(top, bottom, left, right)`` over ``(H, W)``), used for the ``CUT`` rows only (an empty box
            leaves the row as it is; edges beyond a dimension are clipped to it, as by
            [`paste`][mixup_collate.boxes.paste]).
        dims: the ``k`` sample dimensions the boxes span: negative indices into ``S``, increasing.
        dtype: output dtype (floating); ``None`` keeps float inputs' dtype, ``uint8`` becomes float32.
        scale: per-channel factor of the affine map ``x * scale + shift``, broadcastable to ``S`` (e.g.
            ``(C, 1, 1)``), applied to every row.
        shift: per-channel offset of the affine map, broadcastable to ``S``; ``None`` for none.
        channels_last: return a ``channels_last`` tensor (4-D inputs only).
        overwrite_input: let the result reuse ``x``'s memory when its dtype and layout allow (``x`` is
            then the result); saves an allocation for callers that own ``x``.
        scratch: a [`Scratch`][mixup_collate.mix.Scratch] to gather the partners into, kept by a caller that mixes batch
            after batch (else a fresh buffer per call).

    Returns:
        ``(B, *S)`` tensor of ``dtype``. NaN and Inf propagate as the formula says (no cleaning);
        pasted pixels are copies. The arithmetic runs in at least float32 and is rounded once to a
        half-precision ``dtype``.

    Example::

        >>> mix(torch.tensor([[0.0], [4.0]]), torch.tensor([1, 0]), torch.tensor([0.75, 0.5]))
        tensor([[1.],
                [2.]])
    """
    dims = tuple(dims)
    _check_arguments(x, perm, dims, lam=lam, mode=mode, boxes=boxes)
    cut = None if mode is None else mode == CUT
    if cut is not None and bool(cut.any()):
        if not are_sample_dims(dims, x.ndim - 1):
            raise ValueError(
                f"dims must be increasing negative indices into a sample's shape {tuple(x.shape[1:])}, got dims={dims}"
            )
        if boxes is None:
            raise ValueError(f"CUT rows need boxes (B, {2 * len(dims)}) over dims {dims}")
        boxes = torch.where(cut[:, None].to(boxes.device), boxes, 0)  # a box counts for a CUT row only
    else:
        boxes = None
    if mode is not None and bool((mode == BLENDED).all()):
        mode = None  # every row blended: the Mixup kernel
    out_dtype = output_dtype(x, dtype)
    out = _private(x, out_dtype, _memory_format(x, channels_last), overwrite_input)
    source = None if out is x else x
    return _mix_into(out, out_dtype, source, perm, lam, mode, boxes, dims, scale, shift, scratch)


def _mix_into(
    out: Tensor,
    out_dtype: torch.dtype,
    source: Tensor | None,
    perm: Tensor,
    lam: Tensor,
    mode: Tensor | None,
    boxes: Tensor | None,
    dims: tuple[int, ...],
    scale: Tensor | float,
    shift: Tensor | None,
    scratch: Scratch | None,
) -> Tensor:
    """``mix`` on ``out``, the private buffer in the computation's dtype and layout, overwritten with the result.

    ``mode`` ``None`` blends every row. ``source`` is the untouched input ``out`` was converted from, when it
    is another tensor: the rows that are cut or blended then read their partners from it, instead of from a
    gather of the whole batch.
    """
    compute = out.dtype
    if perm.device != out.device:
        perm = perm.to(out.device)
    if lam.device != out.device or lam.dtype != compute:
        lam = lam.to(device=out.device, dtype=compute)
    if mode is None:
        return _blend_all(out, out_dtype, perm, lam, scale, shift, scratch)
    on_cpu = mode.device.type == "cpu"  # the collate's own: read on the host, without a tensor op
    rows = torch.from_numpy(np.flatnonzero(mode.numpy() == BLENDED)) if on_cpu else (mode == BLENDED).nonzero()
    rows = rows.flatten().to(out.device)
    gathered = source is None
    if gathered:  # partners read from a copy: pasting into a row must not change what another reads
        source = _gather(out, perm, scratch)
    blended = None
    if len(rows):
        w = per_row(lam.index_select(0, rows), out.ndim)
        partner = source.index_select(0, rows if gathered else perm.index_select(0, rows)).to(compute)
        blended = out.index_select(0, rows).mul_(w).addcmul_(partner, 1 - w)
    if boxes is not None:
        paste(out, source, boxes, None if gathered else perm, dims)
    if blended is not None:
        out.index_copy_(0, rows, blended)
    if gathered and scratch is not None:
        scratch.give_back(source)
    _affine_(out, scale, shift)
    return out if out_dtype == compute else out.to(out_dtype)


def _blend_all(
    out: Tensor,
    out_dtype: torch.dtype,
    perm: Tensor,
    lam: Tensor,
    scale: Tensor | float,
    shift: Tensor | None,
    scratch: Scratch | None,
) -> Tensor:
    """Mixup of every row of ``out`` in place, the affine map folded into the weights."""
    w_own, w_partner = per_row(lam, out.ndim), per_row(torch.rsub(lam, 1), out.ndim)
    if not (isinstance(scale, float) and scale == 1.0):
        w_own, w_partner = w_own * scale, w_partner * scale
    if _row_loop(out):
        order = perm.tolist()
        cycles = _cycles(order)  # the in-place order is defined for permutations only
        if cycles is not None:
            _mix_rows_in_place(out, cycles, order, w_own, w_partner, shift)
            return out if out_dtype == out.dtype else out.to(out_dtype)
    partner = _gather(out, perm, scratch)
    out.mul_(w_own).addcmul_(partner, w_partner)
    if shift is not None:
        out.add_(shift)
    if scratch is not None:
        scratch.give_back(partner)
    return out if out_dtype == out.dtype else out.to(out_dtype)


def transform(
    x: Tensor,
    *,
    dtype: torch.dtype | None = None,
    scale: Tensor | float = 1.0,
    shift: Tensor | None = None,
    channels_last: bool = False,
    overwrite_input: bool = False,
) -> Tensor:
    """The conversion [`mix`][mixup_collate.mix.mix] applies, without mixing: ``x * scale + shift`` (evaluation)."""
    _check_batch(x)
    out_dtype = output_dtype(x, dtype)
    out = _private(x, out_dtype, _memory_format(x, channels_last), overwrite_input)
    out = _affine_(out, scale, shift)
    return out if out.dtype == out_dtype else out.to(out_dtype)


def pair(
    x: Tensor,
    perm: Tensor,
    *,
    dtype: torch.dtype | None = None,
    scale: Tensor | float = 1.0,
    shift: Tensor | None = None,
) -> Tensor:
    """Stack every row with its partner, unmixed: ``out[:, 0] = x``, ``out[:, 1] = x[perm]``, shape ``(B, 2, *S)``.

    For models that mix inside (embeddings of categorical inputs, manifold mixup): floating and
    ``uint8`` inputs get the conversion of [`transform`][mixup_collate.mix.transform]; integer inputs are
    returned as they are.
    """
    _check_arguments(x, perm)
    return _pair(x, perm, dtype, scale, shift)


def _pair(x: Tensor, perm: Tensor, dtype: torch.dtype | None, scale: Tensor | float, shift: Tensor | None) -> Tensor:
    if x.is_floating_point() or x.dtype == torch.uint8:
        x = transform(x, dtype=dtype, scale=scale, shift=shift)
    return torch.stack((x, _gather(x, perm.to(x.device))), dim=1)


# The kernel entry of the collate: one decision per batch, then one pass.


def affine_constants(
    x: Tensor,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    out_dtype: torch.dtype,
    channel_dim: int | None = None,
) -> tuple[Tensor | float, Tensor | None]:
    """Per-channel ``(scale, shift)`` of the input conversion ``x * scale + shift``, on ``x``'s device.

    Folds ``uint8 -> [0, 1]`` (``1 / 255``) and ``(x - mean) / std`` into one map, computed in float64
    and rounded once to the computation's dtype (at least float32). Channels are the sample dimension
    ``channel_dim`` (negative, from the end of a sample's shape; ``None``: the first, dim 1 of ``x``
    ``(B, C, ...)``); ``mean``/``std`` give one value per channel or one for all.
    """
    unit = 1.0 / 255.0 if x.dtype == torch.uint8 else 1.0
    if mean is None:
        return unit, None
    after = x.ndim - 2 if channel_dim is None else -channel_dim - 1  # the sample dimensions after the channels
    channels = x.shape[-after - 1] if 0 <= after <= x.ndim - 2 else None
    count = max(len(mean), len(std))
    if count != 1 and channels != count:
        raise ValueError(
            f"mean/std have {count} values but the inputs have shape {tuple(x.shape)} "
            f"({channels} channels in dim {x.ndim - after - 1}); give one value per channel"
            + ("" if channel_dim is not None else " (or name the channel dimension with channel_dim)")
        )
    view = (count,) + (1,) * max(after, 0)
    compute = torch.promote_types(out_dtype, torch.float32)
    mean_t = torch.tensor(mean, dtype=torch.float64).expand(count).reshape(view)
    std_t = torch.tensor(std, dtype=torch.float64).expand(count).reshape(view)
    scale, shift = (unit / std_t).to(compute), (-mean_t / std_t).to(compute)
    return scale.to(x.device, non_blocking=True), shift.to(x.device, non_blocking=True)


class InputPlan(NamedTuple):
    """What ``mix_inputs`` does to one batch's inputs, decided once by ``plan_inputs``.

    Attributes:
        kind: ``"mix"`` (blend and paste), ``"transform"`` (convert only: an unmixed batch) or ``"pair"``.
        dtype: the output dtype.
        memory_format: the output layout.
        scale, shift: the per-channel conversion (``affine_constants``).
        in_place: the result is written into the input tensor itself (its dtype and layout already fit).
    """

    kind: str
    dtype: torch.dtype
    memory_format: torch.memory_format
    scale: Tensor | float
    shift: Tensor | None
    in_place: bool


def plan_inputs(
    x: Tensor,
    *,
    mixed: bool,
    stack_x: bool = False,
    dtype: torch.dtype | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    channels_last: bool = False,
    overwrite_input: bool = False,
    constants: dict | None = None,
    channel_dim: int | None = None,
) -> InputPlan:
    """Decide how a batch ``x`` ``(B, *S)`` becomes the model's input: pair, mix or transform, dtype, layout, in place.

    ``constants`` is a dict a caller keeps to build the affine constants once per dtype, device and
    normalisation instead of once per batch.
    """
    _check_batch(x)
    kind = "pair" if stack_x else "mix" if mixed else "transform"
    if kind == "pair" and not (x.is_floating_point() or x.dtype == torch.uint8):
        if mean is not None:
            raise TypeError(f"mean/std normalise floating or uint8 inputs, but stack_x got {x.dtype} inputs")
        return InputPlan(kind, x.dtype, torch.contiguous_format, 1.0, None, False)
    out_dtype = output_dtype(x, dtype)
    fmt = _memory_format(x, channels_last)
    axis = 1 if channel_dim is None else x.ndim + channel_dim
    channels = x.shape[axis] if 1 <= axis < x.ndim else None
    key = (x.dtype == torch.uint8, x.ndim, channels, out_dtype, x.device, mean, std, channel_dim)
    constants = {} if constants is None else constants
    if key not in constants:
        constants[key] = affine_constants(x, mean, std, out_dtype, channel_dim)
    scale, shift = constants[key]
    in_place = kind != "pair" and overwrite_input and _overwrites(x, out_dtype, fmt)
    return InputPlan(kind, out_dtype, fmt, scale, shift, in_place)


def mix_inputs(
    x: Tensor,
    plan: InputPlan,
    perm: Tensor,
    lam: Tensor,
    mode: Tensor | None,
    boxes: Tensor | None,
    dims: tuple[int, ...] = (-2, -1),
    scratch: Scratch | None = None,
) -> Tensor:
    """Carry out ``plan`` on ``x`` with the batch's draws (the collate's own, so not checked again).

    ``mode``, ``boxes`` and ``dims`` are [`MixParams`][mixup_collate.params.MixParams]'s (``mode`` ``None`` when
    every sample is blended).
    """
    if plan.kind == "pair":
        return _pair(x, perm, plan.dtype, plan.scale, plan.shift)
    out = x if plan.in_place else _private(x, plan.dtype, plan.memory_format, False)
    if plan.kind == "transform":
        out = _affine_(out, plan.scale, plan.shift)
        return out if out.dtype == plan.dtype else out.to(plan.dtype)
    source = None if plan.in_place else x
    return _mix_into(out, plan.dtype, source, perm, lam, mode, boxes, dims, plan.scale, plan.shift, scratch)


def mix_targets(y: Tensor, perm: Tensor, lam: Tensor) -> Tensor:
    """Linear combination of float targets: ``lam[i] * y[i] + (1 - lam[i]) * y[perm[i]]``, shape of ``y``.

    For one-hot, multi-hot or regression targets ``(B, *K)``; two rows of one class keep weight 1 on it.
    """
    w = per_row(lam.to(device=y.device, dtype=y.dtype), y.ndim)
    return y * w + _gather(y, perm.to(y.device)) * (1 - w)


def pixel_lam(lam: Tensor, mode: Tensor, boxes: Tensor | None, *sizes: int) -> Tensor:
    """The weight of ``y_a`` at every element of the cut dimensions, float32 ``(B, *sizes)``, for dense targets.

    ``sizes`` are the sizes of the dimensions the boxes span (``(H, W)`` for images). A blended sample
    weighs ``lam[i]`` everywhere; any other weighs 1 outside its box and 0 inside it (the elements
    pasted from the partner, pasted by the same [`paste`][mixup_collate.boxes.paste] as the inputs), so
    ``pixel_lam(...)[i].mean()`` is ``lam[i]``, the share the sample keeps.
    """
    own = torch.where(mode.to(lam.device) == BLENDED, lam.to(torch.float32), 1.0)
    out = own.reshape(-1, *([1] * len(sizes))).expand(own.shape[0], *sizes).contiguous()
    return out if boxes is None else paste(out, 0.0, boxes)


def mix_maps(y: Tensor, perm: Tensor, lam: Tensor) -> Tensor:
    """Per-element linear mix of float maps ``(B, [K,] *D)``: ``lam * y + (1 - lam) * y[perm]``, ``lam`` ``(B, *D)``.

    Where ``lam`` is 0 or 1 (a pasted box, an unmixed row) the result is the partner's or the sample's
    own value exactly.
    """
    w = lam.to(device=y.device, dtype=torch.promote_types(y.dtype, torch.float32))
    w = w.reshape(w.shape[0], *([1] * (y.ndim - w.ndim)), *w.shape[1:])
    partner = _gather(y, perm.to(y.device))
    return torch.where(w == 1, y, torch.where(w == 0, partner, w * y + (1 - w) * partner)).to(y.dtype)


def soft_targets(y: Tensor, perm: Tensor, lam: Tensor, num_classes: int, smoothing: float = 0.0) -> Tensor:
    """Dense mixed targets ``(B, num_classes)``: ``lam * s(t) + (1 - lam) * s(t[perm])``, float32 (or ``y``'s float).

    ``t`` is ``one_hot(y)`` for ``(B,)`` class indices, or ``y`` itself for float targets ``(B, num_classes)``,
    and ``s(t) = (1 - smoothing) * t + smoothing / num_classes`` is label smoothing. Rows of one-hot
    targets sum to one.
    """
    if y.is_floating_point():
        return mix_targets(y, perm, lam) * (1 - smoothing) + smoothing / num_classes
    lam = lam.to(device=y.device, dtype=torch.float32)
    out = torch.full((y.shape[0], num_classes), smoothing / num_classes, device=y.device)
    out.scatter_add_(1, y[:, None], ((1 - smoothing) * lam)[:, None])
    out.scatter_add_(1, y.index_select(0, perm.to(y.device))[:, None], ((1 - smoothing) * (1 - lam))[:, None])
    return out
