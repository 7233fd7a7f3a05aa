"""CutMix geometry: one axis-aligned box per sample over ``k`` of its dimensions, pasted from its partner.

A box is ``2k`` int64 edges ``(start_1, stop_1, ..., start_k, stop_k)``, one ``start <= index < stop`` range
per dimension it spans: over a sample's last two dimensions ``(H, W)`` (the default) that is
``(top, bottom, left, right)``; over a clip's ``(T, H, W)`` a block of frames and pixels; over a
spectrogram's time axis a segment. It covers every index of the dimensions it does not span. Pure tensor
functions with injectable randomness; boxes are drawn on the CPU without host synchronisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import numpy as np
import torch
from torch import Tensor

__all__ = ["are_sample_dims", "box_masks", "kept_fraction", "paste", "sample_boxes"]


def are_sample_dims(dims: Sequence[object], rank: int | None = None) -> bool:
    """Whether ``dims`` are one or more increasing negative sample dimensions (all within ``rank``, when given)."""
    return (
        len(dims) > 0
        and all(isinstance(d, Integral) and not isinstance(d, bool) and d < 0 for d in dims)
        and all(a < b for a, b in zip(dims, dims[1:]))
        and (rank is None or -dims[0] <= rank)
    )


def sample_boxes(
    lam: Tensor,
    *sizes: int,
    minmax: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One box per sample over dimensions of ``sizes`` ``(s_1, ..., s_k)``: int64 ``(n, 2k)`` edges, inside them.

    Without ``minmax``, sample ``i``'s box covers the share ``1 - lam[i]`` of the sample: side ``d`` is
    ``floor(s_d * (1 - lam) ** (1 / k))`` (the last side one shorter where rounding would exceed the
    share), centred on a uniformly random index in each dimension and clipped at the borders, so the
    box may come out smaller. With ``minmax=(lo, hi)`` the side ratios are drawn uniformly from
    ``[lo, hi]`` instead (``lam`` is then unused) and the box is placed uniformly inside the sample.
    Either way [`kept_fraction`][mixup_collate.boxes.kept_fraction] gives the exact share a sample keeps.
    ``sample_boxes(lam, H, W)`` gives ``(top, bottom, left, right)`` boxes.
    """
    if not sizes or min(sizes) < 1:
        raise ValueError(f"a box needs one or more non-empty dimensions, got sizes {sizes}")
    lam = (lam if lam.device.type == "cpu" else lam.cpu()).numpy().astype(np.float64)
    n, k = lam.shape[0], len(sizes)
    # The random numbers come from torch's generator; the arithmetic on them is numpy's (the same IEEE float64
    # operations, without a tensor's per-operation cost on a handful of numbers).
    if minmax is None:
        share = np.maximum(1 - lam, 0)
        # share ** (1 / k), with the square root's own formula for the 2-D box (bit for bit as it always was)
        ratio = np.sqrt(share) if k == 2 else share if k == 1 else np.power(share, 1.0 / k)
        sides = [np.floor(size * ratio).astype(np.int64) for size in sizes]
        volume = sides[0]
        for side in sides[1:]:
            volume = volume * side
        # Rounding must never let a box exceed its share (folded lam keeps at least half the sample).
        sides[-1] = np.where(volume > share * math.prod(sizes), np.maximum(sides[-1] - 1, 0), sides[-1])
        starts = [
            torch.randint(0, size, (n,), generator=generator).numpy() - side // 2 for size, side in zip(sizes, sides)
        ]
    else:
        lo, hi = minmax
        ratios = torch.empty((k, n), dtype=torch.float64).uniform_(lo, hi, generator=generator).numpy()
        sides = [np.clip(np.floor(size * r).astype(np.int64), 0, size) for size, r in zip(sizes, ratios)]
        starts = [
            np.floor(torch.rand(n, dtype=torch.float64, generator=generator).numpy() * (size - side + 1)).astype(
                np.int64
            )
            for size, side in zip(sizes, sides)
        ]
    edges = np.empty((n, 2 * k), dtype=np.int64)
    for d, (start, side) in enumerate(zip(starts, sides)):
        edges[:, 2 * d], edges[:, 2 * d + 1] = start, start + side
    np.maximum(edges, 0, out=edges)
    np.minimum(edges, [size for size in sizes for _ in (0, 1)], out=edges)
    return torch.from_numpy(edges)


def kept_fraction(boxes: Tensor, *sizes: int) -> Tensor:
    """The share of the sample outside each box over dimensions of ``sizes``, float32 ``(n,)``: a CutMix ``lam``."""
    edges = boxes.numpy()
    volume = edges[:, 1] - edges[:, 0]
    for d in range(1, len(sizes)):
        volume = volume * (edges[:, 2 * d + 1] - edges[:, 2 * d])
    total = math.prod(sizes)
    return torch.from_numpy(((total - volume).astype(np.float64) / total).astype(np.float32))


def box_masks(boxes: Tensor, *sizes: int, device: torch.device | str | None = None) -> Tensor:
    """``True`` inside each box: bool ``(n, *sizes)``, built on ``device`` from broadcast comparisons."""
    target = boxes.device if device is None else torch.device(device)
    n, k, mask = boxes.shape[0], len(sizes), None
    if boxes.device.type == "cpu" and target.type == "cpu":  # numpy's comparisons: no tensor op's fixed cost
        edges = boxes.numpy()
        for d, size in enumerate(sizes):
            index = np.arange(size)
            inside = (index >= edges[:, 2 * d, None]) & (index < edges[:, 2 * d + 1, None])
            inside = inside.reshape(n, *([1] * d), size, *([1] * (k - d - 1)))
            mask = inside if mask is None else mask & inside
        return torch.from_numpy(mask)
    boxes = boxes.to(target)
    for d, size in enumerate(sizes):
        index = torch.arange(size, device=boxes.device)
        inside = (index >= boxes[:, 2 * d : 2 * d + 1]) & (index < boxes[:, 2 * d + 1 : 2 * d + 2])  # (n, size)
        inside = inside.view(n, *([1] * d), size, *([1] * (k - d - 1)))
        mask = inside if mask is None else mask & inside
    return mask


# A CPU sample at least this large gets its box copied as one slice (the Python cost per box is then small
# against the pixels); smaller ones, and every sample on an accelerator, are pasted through one batch-wide mask.
SLICE_MIN_BYTES = 16 * 1024


def paste(
    out: Tensor, source: Tensor | float, boxes: Tensor, perm: Tensor | None = None, dims: Sequence[int] | None = None
) -> Tensor:
    """CutMix's one region primitive: the box of every row of ``out`` ``(B, *S)`` replaced, in place.

    Row ``i``'s box ``boxes[i]`` (``(start, stop)`` pairs over the sample dimensions ``dims``, negative
    indices into ``S``; by default the last ``k`` for ``2k`` edges: ``(top, bottom, left, right)`` over
    ``(H, W)``; empty to leave the row alone) gets the same box of ``source[perm[i]]`` (``source[i]``
    without ``perm``), converted to ``out``'s dtype, or the number ``source``. The box covers every index
    of the other dimensions; edges beyond a dimension are clipped to it (a negative start is 0, never an
    index from the end), the same on both paths below. Boxes must hold integers. Values are copied, never
    blended: NaN and Inf included, they are exactly
    one row's or the other's. ``source`` must not be ``out`` itself with a ``perm`` (a row could then
    read a box already pasted). On the CPU large rows are copied box by box, as slices; small rows and
    accelerators go through one mask for the batch. Returns ``out``.

    Example::

        >>> x = torch.stack([torch.zeros(1, 3, 4, dtype=torch.uint8), torch.ones(1, 3, 4, dtype=torch.uint8)])
        >>> paste(x.clone(), x, torch.tensor([[0, 2, 1, 3], [0, 0, 0, 0]]), torch.tensor([1, 0]))[0, 0]
        tensor([[0, 1, 1, 0],
                [0, 1, 1, 0],
                [0, 0, 0, 0]], dtype=torch.uint8)
    """
    if not isinstance(boxes, Tensor) or boxes.dtype == torch.bool or boxes.is_floating_point() or boxes.is_complex():
        got = boxes.dtype if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"paste's boxes must be an integer tensor (B, 2k) of edges, got {got}")
    try:
        dims = tuple(range(-(boxes.shape[-1] // 2), 0)) if dims is None else tuple(dims)
        if boxes.ndim != 2 or boxes.shape[1] != 2 * len(dims) or not are_sample_dims(dims, out.ndim - 1):
            raise ValueError("shapes")
        if out.device.type == "cpu" and out.numel() // (out.shape[0] or 1) * out.element_size() >= SLICE_MIN_BYTES:
            _paste_slices(out, source, boxes, perm, dims)
            return out
        mask = box_masks(boxes, *(out.shape[d] for d in dims), device=out.device)
        view = [out.shape[0]] + [1] * (out.ndim - 1)
        for d in dims:
            view[d] = out.shape[d]
        mask = mask.reshape(view)
        if not isinstance(source, Tensor):
            return out.masked_fill_(mask, source)
        partner = source if perm is None else source.index_select(0, perm.to(source.device))
        return torch.where(mask, partner.to(out.dtype), out, out=out)
    except (IndexError, RuntimeError, ValueError) as error:
        raise ValueError(
            f"paste needs out (B, *S), boxes (B, 2k) over k dims of S and source rows (perm) for every row of out; "
            f"got out {tuple(out.shape)}, boxes {tuple(boxes.shape)}"
            + (f", dims {dims}" if dims is not None else "")
            + (f", source {tuple(source.shape)}" if isinstance(source, Tensor) else "")
            + (f", perm {perm.tolist()}" if perm is not None else "")
        ) from error


def _paste_slices(
    out: Tensor, source: Tensor | float, boxes: Tensor, perm: Tensor | None, dims: tuple[int, ...]
) -> None:
    if tuple(boxes.shape) != (out.shape[0], 2 * len(dims)):
        raise ValueError("shapes")
    order = range(out.shape[0]) if perm is None else perm.tolist()
    if perm is not None and min(order) < 0:
        raise IndexError("a negative partner")
    index: list = [slice(None)] * out.ndim
    sizes = [out.shape[d] for d in dims]
    for i, (j, edges) in enumerate(zip(order, boxes.tolist())):
        # Clipped to each dimension, as the mask's comparisons clip (a slice would read a negative edge from the end).
        starts = [min(max(start, 0), size) for start, size in zip(edges[0::2], sizes)]
        stops = [min(max(stop, 0), size) for stop, size in zip(edges[1::2], sizes)]
        if all(stop > start for start, stop in zip(starts, stops)):
            for d, start, stop in zip(dims, starts, stops):
                index[d] = slice(start, stop)
            index[0] = i
            region = out[tuple(index)]
            if isinstance(source, Tensor):
                index[0] = j
                region.copy_(source[tuple(index)])
            else:
                region.fill_(source)
