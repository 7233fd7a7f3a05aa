"""The mix itself: pure tensor functions on a ready batch, on whatever device the batch lives.

For a batch ``x`` of shape ``(B, *S)``, :func:`mix` computes

    out[i] = (lam[i] * x[i] + (1 - lam[i]) * x[perm[i]]) * scale + shift

in floating point (``uint8`` input is widened, never rounded back), where the optional per-channel
affine map (``scale``, ``shift``, broadcastable to ``S``) folds the ``uint8 -> [0, 1]`` scaling and
mean/std normalization into the same pass.

Memory traffic is the cost that matters on the CPU. The mix is computed in place, in a private copy
of ``x`` (made while widening ``uint8`` or changing layout) or, given permission
(``overwrite_input``), in ``x`` itself, so a caller that owns its batch allocates nothing (fresh
pages cost about twice a copy to fault in). A large batch is mixed one row at a time, following the
permutation's cycles with one saved row per cycle: each row and its partner are read once from
memory and the result written once (1.5x a plain copy) instead of the five or more passes of
``lam * x + (1 - lam) * x[perm]``. Small batches that fit in cache, and batches on accelerators,
take one vectorised pass instead.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["mix", "mix_targets", "pair", "transform"]

# CPU rows at least this large are mixed one at a time (the per-row Python overhead is then small
# against the row's memory traffic) unless the whole batch fits in cache.
ROW_LOOP_MIN_BYTES = 32 * 1024
CACHE_BYTES = 4 * 1024 * 1024


def _check_batch(x: Tensor) -> None:
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"expected a batch of shape (B, ...) with B >= 1, got shape {tuple(x.shape)}")


def _check_rows(x: Tensor, **rows: Tensor) -> None:
    b = x.shape[0]
    for name, t in rows.items():
        if tuple(t.shape) != (b,):
            raise ValueError(f"{name} must have shape ({b},) for a batch of {b}, got {tuple(t.shape)}")


def _out_dtype(x: Tensor, dtype: torch.dtype | None) -> torch.dtype:
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


def _rows_view(w: Tensor, ndim: int) -> Tensor:
    """Reshape per-row weights ``(B,)`` to ``(B, 1, ..., 1)`` so they broadcast over a row."""
    return w.reshape(w.shape[0], *([1] * (ndim - 1)))


def _memory_format(x: Tensor, channels_last: bool) -> torch.memory_format:
    if not channels_last:
        return torch.contiguous_format
    if x.ndim != 4:
        raise ValueError(f"channels_last needs 4-D (B, C, H, W) inputs, got shape {tuple(x.shape)}")
    return torch.channels_last


def _private_copy(x: Tensor, dtype: torch.dtype, channels_last: bool, overwrite_input: bool) -> Tensor:
    """``x`` in ``dtype`` and layout, in memory the caller may overwrite (``x`` itself when allowed)."""
    memory_format = _memory_format(x, channels_last)
    if overwrite_input and x.dtype == dtype and x.is_contiguous(memory_format=memory_format):
        return x
    return x.to(dtype=dtype, memory_format=memory_format, copy=True)


def _row_loop(x: Tensor) -> bool:
    """Whether a row-by-row pass beats one vectorised pass over the batch (see module docstring)."""
    row_bytes = x[0].numel() * x.element_size()
    return x.device.type == "cpu" and row_bytes >= ROW_LOOP_MIN_BYTES and x.numel() * x.element_size() > CACHE_BYTES


def _combine(target: Tensor, partner: Tensor, w_own: Tensor, w_partner: Tensor, shift: Tensor | None) -> None:
    """``target = target * w_own + partner * w_partner (+ shift)``, in place."""
    target.mul_(w_own).addcmul_(partner, w_partner)
    if shift is not None:
        target.add_(shift)


def _cycles(perm: list[int]) -> list[list[int]]:
    """The cycles of a permutation, each listed as ``i, perm[i], perm[perm[i]], ...``."""
    seen = [False] * len(perm)
    cycles = []
    for start in range(len(perm)):
        if not seen[start]:
            cycle, i = [], start
            while not seen[i]:
                seen[i] = True
                cycle.append(i)
                i = perm[i]
            cycles.append(cycle)
    return cycles


def _mix_rows_in_place(x: Tensor, perm: Tensor, w_own: Tensor, w_partner: Tensor, shift: Tensor | None) -> None:
    """Row-by-row mix written back into ``x``.

    Within a cycle ``i0 -> i1 -> ... -> ik`` row ``i_j`` needs the original ``i_{j+1}``, which is
    still untouched when rows are visited in cycle order; only ``i0`` is needed after it is
    overwritten (by ``ik``), so one row per cycle is saved first.
    """
    order = perm.tolist()
    for cycle in _cycles(order):
        first = x[cycle[0]].clone()
        for j, i in enumerate(cycle):
            partner = first if j == len(cycle) - 1 else x[order[i]]
            _combine(x[i], partner, w_own[i], w_partner[i], shift)


def mix(
    x: Tensor,
    perm: Tensor,
    lam: Tensor,
    *,
    dtype: torch.dtype | None = None,
    scale: Tensor | float = 1.0,
    shift: Tensor | None = None,
    channels_last: bool = False,
    overwrite_input: bool = False,
) -> Tensor:
    """Mix every row with its partner: ``out[i] = (lam[i]*x[i] + (1-lam[i])*x[perm[i]]) * scale + shift``.

    Args:
        x: ``(B, *S)`` floating point or ``uint8`` batch.
        perm: ``(B,)`` int64 partner indices.
        lam: ``(B,)`` weights of the unshuffled rows.
        dtype: output dtype (floating); ``None`` keeps float inputs' dtype, ``uint8`` becomes float32.
        scale, shift: per-channel affine map broadcastable to ``S`` (e.g. ``(C, 1, 1)``).
        channels_last: return a ``channels_last`` tensor (4-D inputs only).
        overwrite_input: let the result reuse ``x``'s memory when dtype and layout allow it (``x`` is
            then the result); saves an allocation for callers that own ``x``.

    Returns:
        ``(B, *S)`` tensor of ``dtype``. NaN and Inf propagate as the formula says (no cleaning).
        The arithmetic runs in at least float32 and is rounded once to a half-precision ``dtype``.
    """
    _check_batch(x)
    _check_rows(x, perm=perm, lam=lam)
    out_dtype = _out_dtype(x, dtype)
    compute = torch.promote_types(out_dtype, torch.float32)
    out = _private_copy(x, compute, channels_last, overwrite_input)
    perm = perm.to(x.device)
    lam = lam.to(device=x.device, dtype=compute)
    w_own, w_partner = _rows_view(lam, x.ndim), _rows_view(1 - lam, x.ndim)
    if not (isinstance(scale, float) and scale == 1.0):
        w_own, w_partner = w_own * scale, w_partner * scale
    if _row_loop(out):
        _mix_rows_in_place(out, perm, w_own, w_partner, shift)
    else:
        _combine(out, out.index_select(0, perm), w_own, w_partner, shift)
    return out.to(out_dtype)


def transform(
    x: Tensor,
    *,
    dtype: torch.dtype | None = None,
    scale: Tensor | float = 1.0,
    shift: Tensor | None = None,
    channels_last: bool = False,
    overwrite_input: bool = False,
) -> Tensor:
    """The conversion :func:`mix` applies, without mixing: ``out = x * scale + shift`` (for evaluation)."""
    _check_batch(x)
    out_dtype = _out_dtype(x, dtype)
    out = _private_copy(x, torch.promote_types(out_dtype, torch.float32), channels_last, overwrite_input)
    if not (isinstance(scale, float) and scale == 1.0):
        out.mul_(scale)
    if shift is not None:
        out.add_(shift)
    return out.to(out_dtype)


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
    ``uint8`` inputs get the conversion of :func:`transform`; integer inputs are returned as they are.
    """
    _check_batch(x)
    _check_rows(x, perm=perm)
    if x.is_floating_point() or x.dtype == torch.uint8:
        x = transform(x, dtype=dtype, scale=scale, shift=shift)
    return torch.stack((x, x.index_select(0, perm.to(x.device))), dim=1)


def mix_targets(y: Tensor, perm: Tensor, lam: Tensor) -> Tensor:
    """Linear combination of float targets: ``lam[i] * y[i] + (1 - lam[i]) * y[perm[i]]``, shape of ``y``.

    For one-hot, multi-hot or regression targets ``(B, *K)``; two rows of one class keep weight 1 on it.
    """
    if not y.is_floating_point():
        raise TypeError(
            f"only float targets can be mixed linearly, got {y.dtype}; class indices stay unmixed "
            "and go to the loss as (y_a, y_b, lam)"
        )
    _check_rows(y, perm=perm, lam=lam)
    w = _rows_view(lam.to(device=y.device, dtype=y.dtype), y.ndim)
    partner = y.index_select(0, perm.to(y.device))
    return y * w + partner * (1 - w)
