"""The mixup loss: ``lam * loss(out, y_a) + (1 - lam) * loss(out, y_b)`` per sample, then reduced.

Class-index targets combine two per-sample losses; float targets (one-hot, multi-hot, regression)
take the linear-combination path, ``loss(out, lam * y_a + (1 - lam) * y_b)``. Both helpers also
accept a plain ``(logits, y)`` so one loop serves training and evaluation.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MixupLoss", "mixup_cross_entropy"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _lam_rows(lam: Tensor | float, batch: int, like: Tensor) -> Tensor:
    """``lam`` as a ``(B,)`` tensor on ``like``'s device, or a clear error naming the shapes."""
    lam = torch.as_tensor(lam, device=like.device)
    if lam.ndim == 0:
        lam = lam.expand(batch)
    if tuple(lam.shape) != (batch,):
        raise ValueError(
            f"lam has shape {tuple(lam.shape)} but the batch has {batch} samples; expected shape "
            f"({batch},) as MixupCollate returns (or a scalar)"
        )
    return lam.to(like.dtype if like.is_floating_point() else torch.float32)


def _broadcast(w: Tensor, ndim: int) -> Tensor:
    return w.reshape(w.shape[0], *([1] * (ndim - 1)))


def _pair(y_a: Tensor, y_b: Tensor | None, lam: Tensor | float | None) -> tuple[Tensor | None, Tensor | float | None]:
    if (y_b is None) != (lam is None):
        raise ValueError("pass y_b and lam together (a mixed batch), or neither (a plain (logits, y) batch)")
    if y_b is not None and y_b.shape != y_a.shape:
        raise ValueError(f"y_a has shape {tuple(y_a.shape)} but y_b has {tuple(y_b.shape)}; they must match")
    return y_b, lam


def mixup_cross_entropy(
    logits: Tensor,
    y_a: Tensor,
    y_b: Tensor | None = None,
    lam: Tensor | float | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Cross-entropy of a mixed batch, from one ``log_softmax``.

    Equals soft-target cross-entropy on ``lam * onehot(y_a) + (1 - lam) * onehot(y_b)`` (label
    smoothing applied to that target as ``torch.nn.functional.cross_entropy`` does).

    Args:
        logits: ``(B, C)`` or ``(B, C, *D)`` scores.
        y_a, y_b: ``(B,)`` / ``(B, *D)`` class indices, or float targets shaped like ``logits``.
        lam: ``(B,)`` weights of ``y_a`` (or a scalar). Omit ``y_b`` and ``lam`` for a plain batch.
        label_smoothing: in ``[0, 1]``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-sample losses ``(B,)`` / ``(B, *D)``).
    """
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    y_b, lam = _pair(y_a, y_b, lam)
    if logits.ndim < 2:
        raise ValueError(f"logits must be (B, C) or (B, C, *D), got shape {tuple(logits.shape)}")
    logp = F.log_softmax(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits, dim=1)
    num_classes = logits.shape[1]
    batch = logits.shape[0]
    w = None if lam is None else _lam_rows(lam, batch, logp)

    if y_a.is_floating_point():
        target = y_a if w is None else torch.lerp(y_b.to(logp.dtype), y_a.to(logp.dtype), _broadcast(w, y_a.ndim))
        if target.shape != logp.shape:
            raise ValueError(f"float targets of shape {tuple(target.shape)} must match logits {tuple(logp.shape)}")
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / num_classes
        return _reduce(-(target * logp).sum(1), reduction)

    expected = (batch, *logits.shape[2:])
    if tuple(y_a.shape) != expected:
        raise ValueError(
            f"class-index targets have shape {tuple(y_a.shape)}; logits {tuple(logits.shape)} need {expected}"
        )
    if w is None:
        nll = -logp.gather(1, y_a.unsqueeze(1)).squeeze(1)
    else:
        picked = logp.gather(1, torch.stack((y_a, y_b), dim=1))  # (B, 2, *D): both targets, one gather
        weights = torch.stack((w, 1 - w), dim=1).reshape(batch, 2, *([1] * (picked.ndim - 2)))
        nll = -(picked * weights).sum(1)
    if label_smoothing:
        nll = (1 - label_smoothing) * nll - label_smoothing * logp.mean(1)
    return _reduce(nll, reduction)


class MixupLoss(nn.Module):
    """Wrap any criterion into a mixup loss: ``loss_fn(logits, y_a, y_b, lam)`` or ``loss_fn(logits, y)``.

    ``criterion`` is a torch loss module (its per-sample form is taken from a copy with
    ``reduction="none"``; the original is not mutated) or any callable returning per-sample losses.
    ``nn.CrossEntropyLoss`` without class weights takes :func:`mixup_cross_entropy`'s one-pass path.
    Class-index targets combine two losses; float targets are mixed linearly before one call.
    """

    def __init__(self, criterion: Callable[[Tensor, Tensor], Tensor] | None = None, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        criterion = nn.CrossEntropyLoss() if criterion is None else criterion
        self.reduction = reduction
        self.label_smoothing: float | None = None
        if isinstance(criterion, nn.CrossEntropyLoss) and criterion.weight is None:
            self.label_smoothing = criterion.label_smoothing
        if hasattr(criterion, "reduction"):
            criterion = copy.copy(criterion)
            criterion.reduction = "none"
        self.criterion = criterion

    def _per_sample(self, logits: Tensor, y: Tensor) -> Tensor:
        loss = self.criterion(logits, y)
        if loss.ndim == 0 and logits.shape[0] > 1:
            raise ValueError(
                "criterion returned a scalar; MixupLoss needs per-sample losses: pass a torch loss "
                "module or a callable with reduction='none'"
            )
        return loss

    def forward(
        self, logits: Tensor, y_a: Tensor, y_b: Tensor | None = None, lam: Tensor | float | None = None
    ) -> Tensor:
        y_b, lam = _pair(y_a, y_b, lam)
        if self.label_smoothing is not None:
            return mixup_cross_entropy(logits, y_a, y_b, lam, self.label_smoothing, self.reduction)
        if lam is None:
            return _reduce(self._per_sample(logits, y_a), self.reduction)
        w = _lam_rows(lam, logits.shape[0], logits)
        if y_a.is_floating_point():
            target = torch.lerp(y_b, y_a, _broadcast(w.to(y_a.dtype), y_a.ndim))
            return _reduce(self._per_sample(logits, target), self.reduction)
        loss_a, loss_b = self._per_sample(logits, y_a), self._per_sample(logits, y_b)
        w = _broadcast(w, loss_a.ndim)
        return _reduce(w * loss_a + (1 - w) * loss_b, self.reduction)
