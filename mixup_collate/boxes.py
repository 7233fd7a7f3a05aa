"""CutMix geometry: one axis-aligned box per sample, pasted from its partner.

A box is four int64 edges ``(top, bottom, left, right)``: rows ``top <= r < bottom`` and columns
``left <= c < right`` of the last two dimensions ``(H, W)`` of a sample. Pure tensor functions with
injectable randomness; boxes are drawn on the CPU without host synchronisation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["box_masks", "kept_fraction", "paste", "sample_boxes"]


def sample_boxes(
    lam: Tensor,
    height: int,
    width: int,
    *,
    minmax: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One box per sample, int64 ``(n, 4)`` as ``(top, bottom, left, right)``, inside the ``height x width`` image.

    Without ``minmax``, sample ``i``'s box covers the fraction ``1 - lam[i]`` of the image: sides
    ``floor(H * sqrt(1 - lam))`` and ``floor(W * sqrt(1 - lam))`` (never more than that fraction),
    centred on a uniformly random pixel and clipped at the image border, so the box may come out smaller.
    With ``minmax=(lo, hi)`` the side ratios are drawn uniformly from ``[lo, hi]`` instead (``lam`` is
    then unused) and the box is placed uniformly inside the image. Either way :func:`kept_fraction`
    gives the exact share of the image a sample keeps.
    """
    lam = lam.to(device="cpu", dtype=torch.float64).numpy()
    n = lam.shape[0]
    # The random numbers come from torch's generator; the arithmetic on them is numpy's (the same IEEE float64
    # operations, without a tensor's per-operation cost on a handful of numbers).
    if minmax is None:
        ratio = np.sqrt(np.maximum(1 - lam, 0))
        h, w = np.floor(height * ratio).astype(np.int64), np.floor(width * ratio).astype(np.int64)
        # Rounding must never let a box exceed its share (folded lam keeps at least half the image).
        w = np.where(h * w > (1 - lam) * (height * width), np.maximum(w - 1, 0), w)
        cy = torch.randint(0, height, (n,), generator=generator).numpy()
        cx = torch.randint(0, width, (n,), generator=generator).numpy()
        top, left = cy - h // 2, cx - w // 2
    else:
        lo, hi = minmax
        ratios = torch.empty((2, n), dtype=torch.float64).uniform_(lo, hi, generator=generator).numpy()
        h = np.clip(np.floor(height * ratios[0]).astype(np.int64), 0, height)
        w = np.clip(np.floor(width * ratios[1]).astype(np.int64), 0, width)
        top = np.floor(torch.rand(n, dtype=torch.float64, generator=generator).numpy() * (height - h + 1))
        left = np.floor(torch.rand(n, dtype=torch.float64, generator=generator).numpy() * (width - w + 1))
        top, left = top.astype(np.int64), left.astype(np.int64)
    edges = np.stack((top, top + h, left, left + w), axis=1)
    return torch.from_numpy(np.minimum(np.maximum(edges, 0), [height, height, width, width]))


def kept_fraction(boxes: Tensor, height: int, width: int) -> Tensor:
    """The share of the image outside each box, float32 ``(n,)``: the ``lam`` of a CutMix sample."""
    edges = boxes.numpy()
    area = (edges[:, 1] - edges[:, 0]) * (edges[:, 3] - edges[:, 2])
    total = height * width
    return torch.from_numpy(((total - area).astype(np.float64) / total).astype(np.float32))


def box_masks(boxes: Tensor, height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """``True`` inside each box: bool ``(n, H, W)``, built on ``device`` from broadcast comparisons."""
    boxes = boxes.to(device)
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    in_rows = (rows >= boxes[:, 0:1]) & (rows < boxes[:, 1:2])
    in_cols = (cols >= boxes[:, 2:3]) & (cols < boxes[:, 3:4])
    return in_rows[:, :, None] & in_cols[:, None, :]


# A CPU sample at least this large gets its box copied as one slice (the Python cost per box is then small
# against the pixels); smaller ones, and every sample on an accelerator, are pasted through one batch-wide mask.
SLICE_MIN_BYTES = 16 * 1024


def paste(out: Tensor, source: Tensor | float, boxes: Tensor, perm: Tensor | None = None) -> Tensor:
    """CutMix's one region primitive: the box of every row of ``out`` ``(B, ..., H, W)`` replaced, in place.

    Row ``i``'s box ``boxes[i]`` (``(top, bottom, left, right)`` over the last two dimensions, empty to
    leave the row alone) gets the same box of ``source[perm[i]]`` (``source[i]`` without ``perm``),
    converted to ``out``'s dtype, or the number ``source``. Values are copied, never blended: NaN
    and Inf included, they are exactly one row's or the other's. ``source`` must not be ``out``
    itself with a ``perm`` (a row could then read a box already pasted). On the CPU large rows are
    copied box by box, as slices; small rows and accelerators go through one mask for the batch.
    Returns ``out``.

    Example::

        >>> x = torch.stack([torch.zeros(1, 3, 4, dtype=torch.uint8), torch.ones(1, 3, 4, dtype=torch.uint8)])
        >>> paste(x.clone(), x, torch.tensor([[0, 2, 1, 3], [0, 0, 0, 0]]), torch.tensor([1, 0]))[0, 0]
        tensor([[0, 1, 1, 0],
                [0, 1, 1, 0],
                [0, 0, 0, 0]], dtype=torch.uint8)
    """
    try:
        if out.device.type == "cpu" and out.numel() // max(len(out), 1) * out.element_size() >= SLICE_MIN_BYTES:
            _paste_slices(out, source, boxes, perm)
            return out
        mask = box_masks(boxes, out.shape[-2], out.shape[-1], out.device)
        mask = mask.reshape(out.shape[0], *([1] * (out.ndim - 3)), *mask.shape[1:])
        if not isinstance(source, Tensor):
            return out.masked_fill_(mask, source)
        partner = source if perm is None else source.index_select(0, perm.to(source.device))
        return torch.where(mask, partner.to(out.dtype), out, out=out)
    except (IndexError, RuntimeError, ValueError) as error:
        raise ValueError(
            f"paste needs out (B, ..., H, W), boxes (B, 4) and source rows (perm) for every row of out; got out "
            f"{tuple(out.shape)}, boxes {tuple(boxes.shape)}"
            + (f", source {tuple(source.shape)}" if isinstance(source, Tensor) else "")
            + (f", perm {perm.tolist()}" if perm is not None else "")
        ) from error


def _paste_slices(out: Tensor, source: Tensor | float, boxes: Tensor, perm: Tensor | None) -> None:
    if out.ndim < 3 or tuple(boxes.shape) != (out.shape[0], 4):
        raise ValueError("shapes")
    order = range(out.shape[0]) if perm is None else perm.tolist()
    if perm is not None and min(order) < 0:
        raise IndexError("a negative partner")
    for i, (j, (top, bottom, left, right)) in enumerate(zip(order, boxes.tolist())):
        if bottom > top and right > left:
            region = out[i, ..., top:bottom, left:right]
            if isinstance(source, Tensor):
                region.copy_(source[j, ..., top:bottom, left:right])
            else:
                region.fill_(source)
