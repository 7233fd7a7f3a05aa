"""CutMix geometry: one axis-aligned box per sample, pasted from its partner.

A box is four int64 edges ``(top, bottom, left, right)``: rows ``top <= r < bottom`` and columns
``left <= c < right`` of the last two dimensions ``(H, W)`` of a sample. Pure tensor functions with
injectable randomness; boxes are drawn on the CPU without host synchronisation.
"""

from __future__ import annotations

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
    lam = lam.to(device="cpu", dtype=torch.float64)
    n = lam.shape[0]
    if minmax is None:
        ratio = (1 - lam).clamp_(min=0).sqrt_()
        h, w = (height * ratio).floor_().long(), (width * ratio).floor_().long()
        # Rounding must never let a box exceed its share (folded lam keeps at least half the image).
        w = torch.where(h * w > (1 - lam) * (height * width), (w - 1).clamp_(min=0), w)
        cy = torch.randint(0, height, (n,), generator=generator)
        cx = torch.randint(0, width, (n,), generator=generator)
        top, left = cy - h // 2, cx - w // 2
        bottom, right = top + h, left + w
    else:
        lo, hi = minmax
        ratios = torch.empty((2, n), dtype=torch.float64).uniform_(lo, hi, generator=generator)
        h = (height * ratios[0]).floor_().long().clamp_(0, height)
        w = (width * ratios[1]).floor_().long().clamp_(0, width)
        top = (torch.rand(n, dtype=torch.float64, generator=generator) * (height - h + 1)).floor_().long()
        left = (torch.rand(n, dtype=torch.float64, generator=generator) * (width - w + 1)).floor_().long()
        bottom, right = top + h, left + w
    edges = torch.stack((top, bottom, left, right), dim=1)
    limits = torch.tensor([height, height, width, width])
    return edges.clamp_(min=0).minimum(limits)


def kept_fraction(boxes: Tensor, height: int, width: int) -> Tensor:
    """The share of the image outside each box, float32 ``(n,)``: the ``lam`` of a CutMix sample."""
    area = (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])
    total = height * width
    return ((total - area).double() / total).float()


def box_masks(boxes: Tensor, height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """``True`` inside each box: bool ``(n, H, W)``, built on ``device`` from broadcast comparisons."""
    boxes = boxes.to(device)
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    in_rows = (rows >= boxes[:, 0:1]) & (rows < boxes[:, 1:2])
    in_cols = (cols >= boxes[:, 2:3]) & (cols < boxes[:, 3:4])
    return in_rows[:, :, None] & in_cols[:, None, :]


def paste(x: Tensor, perm: Tensor, boxes: Tensor) -> Tensor:
    """CutMix: every sample of ``x`` ``(B, ..., H, W)`` with its box copied from its partner ``x[perm[i]]``.

    Pixels are copied, never blended, so ``uint8`` stays ``uint8`` and values (NaN and Inf included)
    are exactly those of one image or the other. Returns a new tensor; ``x`` is untouched.

    Example::

        >>> x = torch.stack([torch.zeros(1, 3, 4, dtype=torch.uint8), torch.ones(1, 3, 4, dtype=torch.uint8)])
        >>> paste(x, torch.tensor([1, 0]), torch.tensor([[0, 2, 1, 3], [0, 0, 0, 0]]))[0, 0]
        tensor([[0, 1, 1, 0],
                [0, 1, 1, 0],
                [0, 0, 0, 0]], dtype=torch.uint8)
    """
    if x.ndim < 3:
        raise ValueError(
            f"CutMix needs samples with two spatial dimensions (..., H, W), got batch shape {tuple(x.shape)}"
        )
    if tuple(boxes.shape) != (x.shape[0], 4):
        raise ValueError(
            f"boxes must have shape ({x.shape[0]}, 4) for a batch of {x.shape[0]}, got {tuple(boxes.shape)}"
        )
    mask = box_masks(boxes, x.shape[-2], x.shape[-1], x.device)
    mask = mask.reshape(x.shape[0], *([1] * (x.ndim - 3)), x.shape[-2], x.shape[-1])
    return torch.where(mask, x.index_select(0, perm.to(x.device)), x)
