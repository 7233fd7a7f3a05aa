"""The mixup loss: exactly what the wrapped criterion computes, on a batch whose targets are mixed.

A mixed batch is ``(logits, y_a, y_b, lam)``: ``lam`` weighs the sample's own target ``y_a`` and ``1 - lam``
its partner's ``y_b``. ``lam`` is a scalar, ``(B,)`` (one weight per sample, as for classification) or
``(B, *D)`` (one weight per element of a dense target: per pixel for segmentation masks ``(B, H, W)``, as
``MixupCollate(dense_targets=True)`` returns it; CutMix gives 1 outside the pasted box and 0 inside). For
class-index targets the loss of element ``n`` (a sample, or one position of ``(B, C, *D)`` logits) is

    L_n = lam_n * l(n, y_a) + (1 - lam_n) * l(n, y_b)

with ``l`` the criterion's own per-element loss, reduced as the criterion reduces (for cross-entropy and
NLL: a weighted mean, see [`mixup_cross_entropy`][mixup_collate.mixup_cross_entropy]). Float targets (one-hot,
soft, multi-hot, regression and per-pixel maps) are mixed first, ``lam * y_a + (1 - lam) * y_b`` element by
element, and the criterion is called once. A ``(B, *D)`` lam aligns on the trailing dimensions of what it
weighs: ``(B, H, W)`` against ``(B, K, H, W)`` maps weighs every channel of a pixel by that pixel's lam. Both
helpers also take a plain ``(logits, y)`` batch, and the target as one ``(y_a, y_b, lam)`` triple for training
loops whose criterion gets exactly two arguments.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Sequence
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def check_smoothing(value: object, name: str = "label_smoothing") -> float:
    """Label smoothing as a float in ``[0, 1]``, as ``F.cross_entropy`` takes it (the collate checks with it too)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy's bool is no Real either
        raise TypeError(f"{name} must be a number in [0, 1], got {type(value).__name__} {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {name}={value!r}")
    return float(value)


__all__ = ["MixupLoss", "mixup_cross_entropy"]

Target = Union[Tensor, Sequence[Union[Tensor, float]]]
Lam = Union[Tensor, float]

_REDUCTIONS = ("mean", "sum", "none")

# Torch losses whose "mean" is the plain mean and "sum" the sum of their "none" output: exact through two
# per-sample calls (class indices) or one call on mixed targets (float targets).
_PLAIN_MEAN = (
    nn.L1Loss,
    nn.MSELoss,
    nn.SmoothL1Loss,
    nn.HuberLoss,
    nn.BCELoss,
    nn.BCEWithLogitsLoss,
    nn.SoftMarginLoss,
    nn.MultiLabelSoftMarginLoss,
    nn.MultiMarginLoss,
    nn.MultiLabelMarginLoss,
    nn.HingeEmbeddingLoss,
    nn.PoissonNLLLoss,
    nn.KLDivLoss,
)
# Weighted, ignore-aware means: computed by the formula of mixup_cross_entropy.
_BY_FORMULA = (nn.CrossEntropyLoss, nn.NLLLoss)


def _check_reduction(reduction: object, allowed: tuple[str, ...] = _REDUCTIONS) -> str:
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")
    return reduction


def _check_ignore_index(ignore_index: object) -> int:
    """``ignore_index`` as an int: any integer, numpy's included (as ``F.cross_entropy`` takes them), not a bool."""
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__} {ignore_index!r}")
    return int(ignore_index)


def _unpack_target(y_a: object, y_b: object, lam: object) -> tuple[Tensor, Tensor | None, Lam | None]:
    """``(y_a, y_b, lam)`` from three arguments or from one triple in ``y_a``; clear errors for anything else."""
    if isinstance(y_a, (tuple, list)):
        if len(y_a) != 3:
            raise TypeError(
                f"a target given as one {type(y_a).__name__} must hold 3 items (y_a, y_b, lam), got {len(y_a)}"
                + (" (a whole (x, y_a, y_b, lam) batch? pass batch[1:])" if len(y_a) == 4 else "")
            )
        if y_b is not None or lam is not None:
            raise TypeError("pass the target either as one (y_a, y_b, lam) triple or as y_a, y_b, lam, not both")
        y_a, y_b, lam = y_a
        if lam is None:
            raise TypeError("the (y_a, y_b, lam) target has lam=None; a plain batch passes y alone")
    if not isinstance(y_a, Tensor):
        raise TypeError(
            f"target must be a Tensor (class indices or float targets) or a (y_a, y_b, lam) tuple, "
            f"got {type(y_a).__name__}"
        )
    if (y_b is None) != (lam is None):
        raise ValueError("pass y_b and lam together (a mixed batch), or neither (a plain (logits, y) batch)")
    if y_b is None:
        return y_a, None, None
    if not isinstance(y_b, Tensor):
        raise TypeError(f"y_b must be a Tensor like y_a, got {type(y_b).__name__}")
    real = not lam.is_complex() if isinstance(lam, Tensor) else isinstance(lam, numbers.Real)
    if not real or isinstance(lam, bool):
        got = f"{lam.dtype} tensor" if isinstance(lam, Tensor) else type(lam).__name__
        raise TypeError(f"lam must be a real Tensor ((B,) or (B, *D)) or a number, got {got}")
    if y_b.shape != y_a.shape:
        raise ValueError(f"y_a has shape {tuple(y_a.shape)} but y_b has {tuple(y_b.shape)}; they must match")
    if y_a.is_floating_point() != y_b.is_floating_point():
        raise ValueError(
            f"y_a is {y_a.dtype} but y_b is {y_b.dtype}: both class indices or both float targets, not one of each"
        )
    return y_a, y_b, lam


def _lam_weights(
    lam: Lam,
    shape: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
    dense: Sequence[int] | None = None,
    what: str = "the targets",
) -> Tensor:
    """``lam`` in ``dtype`` on ``device``, shaped to broadcast over a ``(B, *S)`` tensor of ``shape``.

    A scalar or ``(B,)`` lam becomes ``(B, 1, ..., 1)``; a ``(B, *D)`` lam aligns on the trailing dimensions of
    ``S`` and becomes ``(B, 1, ..., *D)``. ``dense`` fixes ``D`` (the logits' ``*D`` for cross-entropy);
    without it any trailing part of ``S`` is accepted. Anything else is a ``ValueError`` naming the shapes
    (``what`` names the tensor of ``shape``).
    """
    lam = torch.as_tensor(lam, device=device)
    batch, rest = shape[0], tuple(shape[1:])
    if lam.ndim == 0:
        lam = lam.expand(batch)
    dims = tuple(lam.shape[1:])
    aligned = dims in ((), tuple(dense)) if dense is not None else rest[len(rest) - len(dims) :] == dims
    if lam.shape[0] != batch or len(dims) > len(rest) or not aligned:
        d = f"D = {tuple(dense)}" if dense is not None else f"D the trailing dimensions of {rest}"
        raise ValueError(
            f"lam has shape {tuple(lam.shape)} but {what} have shape {tuple(shape)}; expected a scalar, "
            f"({batch},) as MixupCollate returns for classification, or ({batch}, *D) per element, {d}"
        )
    return lam.to(dtype).reshape(batch, *([1] * (len(rest) - len(dims))), *dims)


def _compute_input(logits: Tensor, name: str = "logits") -> Tensor:
    """``(B, C, *D)`` floating scores, half precision widened to float32 (the loss is computed and returned in it)."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(logits).__name__}")
    if logits.ndim < 2 or not logits.is_floating_point():
        raise ValueError(
            f"{name} must be a floating (B, C) or (B, C, *D) tensor, got {logits.dtype} {tuple(logits.shape)}"
        )
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _check_weight(weight: Tensor | None, like: Tensor) -> Tensor | None:
    """Class weights ``(C,)``, moved to ``like``'s device and dtype (no copy when they already match)."""
    if weight is None:
        return None
    num_classes = like.shape[1]
    if not isinstance(weight, Tensor) or not weight.is_floating_point() or tuple(weight.shape) != (num_classes,):
        got = f"{weight.dtype} {tuple(weight.shape)}" if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a floating ({num_classes},) tensor, one weight per class, got {got}")
    return weight.to(device=like.device, dtype=like.dtype)


def _check_indices(y: Tensor, name: str, logits: Tensor) -> Tensor:
    """``y`` as int64 class indices shaped ``(B, *D)`` for ``(B, C, *D)`` logits, on the logits' device."""
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(y.shape) != expected:
        raise ValueError(
            f"class-index targets {name} have shape {tuple(y.shape)}; logits {tuple(logits.shape)} need {expected}"
        )
    if y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"{name} must hold integer class indices, got {y.dtype}")
    if y.device != logits.device:
        raise ValueError(f"{name} is on {y.device} but logits are on {logits.device}")
    return y.long()


def _check_range(safe: Tensor, targets: Tensor, names: tuple[str, ...], logits: Tensor, ignore_index: int) -> None:
    """On the CPU in eager mode, refuse class indices outside ``0..C-1`` other than ``ignore_index``, naming the first.

    ``targets`` ``(B, K, *D)`` holds one target per name along dim 1; ``safe`` is it with ``ignore_index``
    replaced by 0. Nothing is checked on an accelerator (that would cost a host sync) or under
    ``torch.compile`` (the check reads values on the host, which would break the graph).
    """
    if safe.device.type != "cpu" or safe.numel() == 0 or torch.compiler.is_compiling():
        return
    num_classes = logits.shape[1]
    lo, hi = torch.aminmax(safe)
    if lo.item() >= 0 and hi.item() < num_classes:
        return
    bad = ((safe < 0) | (safe >= num_classes)).transpose(0, 1)  # (K, B, *D): report y_a's first
    k, *where = bad.nonzero()[0].tolist()
    raise ValueError(
        f"{names[k]}{where} is class index {targets.transpose(0, 1)[(k, *where)].item()}, outside "
        f"0..{num_classes - 1} for logits {tuple(logits.shape)} and not ignore_index ({ignore_index})"
    )


def _index_loss(
    logp: Tensor,
    y_a: Tensor,
    y_b: Tensor | None,
    lam: Lam | None,
    weight: Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    reduction: str,
) -> Tensor:
    """The class-index formula on log-probabilities ``(B, C, *D)``: one gather of both targets, no host sync."""
    num_classes, dense = logp.shape[1], logp.shape[2:]
    if y_b is None:
        names: tuple[str, ...] = ("y",)
        targets = _check_indices(y_a, "y", logp).unsqueeze(1)  # (B, 1, *D)
        coef = logp.new_ones((logp.shape[0], 1, *([1] * len(dense))))
    else:
        names = ("y_a", "y_b")
        targets = torch.stack((_check_indices(y_a, "y_a", logp), _check_indices(y_b, "y_b", logp)), dim=1)  # (B, 2, *D)
        w = _lam_weights(lam, y_a.shape, logp.dtype, logp.device, dense)  # (B, 1, ..., 1) or (B, *D)
        coef = torch.stack((w, 1 - w), dim=1)  # lam_n and 1 - lam_n per target, broadcast over *D
    kept = targets != ignore_index
    live = kept & (coef != 0)  # a target of weight 0 (CutMix's other side) counts nothing, even at log p = -inf
    safe = torch.where(kept, targets, 0)  # ignored and void labels (255 >= C) point at class 0, then count 0
    _check_range(safe, targets, names, logp, ignore_index)
    class_coef = coef if weight is None else coef * weight[safe]  # lam_n * w[y]
    picked = logp.gather(1, safe)
    loss = -torch.where(live, picked * class_coef, 0).sum(1)  # (B, *D): sum_k lam_k w[y_k] (-log p[y_k])
    if label_smoothing:
        per_class = logp if weight is None else logp * weight.reshape(1, -1, *([1] * (logp.ndim - 2)))
        mass = torch.where(kept, coef, 0).sum(1)  # lam_n [y_a kept] + (1 - lam_n) [y_b kept]
        smooth = torch.where(mass != 0, -per_class.sum(1) * mass, 0)
        loss = (1 - label_smoothing) * loss + (label_smoothing / num_classes) * smooth
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / torch.where(live, class_coef, 0).sum()


def _float_target_loss(
    logits: Tensor,
    y_a: Tensor,
    y_b: Tensor | None,
    lam: Lam | None,
    weight: Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    reduction: str,
) -> Tensor:
    """``F.cross_entropy`` on the linearly mixed float targets, with its semantics for probability targets."""
    if ignore_index >= 0:
        raise ValueError(
            f"ignore_index={ignore_index} applies to class-index targets only; F.cross_entropy refuses it for "
            "float (probability) targets, and so does this loss"
        )
    if tuple(y_a.shape) != tuple(logits.shape):
        raise ValueError(f"float targets of shape {tuple(y_a.shape)} must match logits {tuple(logits.shape)}")
    if y_a.device != logits.device:
        raise ValueError(f"float targets are on {y_a.device} but logits are on {logits.device}")
    target = y_a.to(logits.dtype)
    if y_b is not None:
        w = _lam_weights(lam, y_a.shape, logits.dtype, logits.device, logits.shape[2:])  # (B, 1, ...) per class
        target = torch.lerp(y_b.to(logits.dtype), target, w)
    return F.cross_entropy(logits, target, weight=weight, label_smoothing=label_smoothing, reduction=reduction)


def mixup_cross_entropy(
    logits: Tensor,
    y_a: Target,
    y_b: Tensor | None = None,
    lam: Lam | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
) -> Tensor:
    """Cross-entropy of a mixed batch, from one ``log_softmax`` and one gather of both targets.

    Class-index targets: with ``p = softmax(logits, 1)``, ``eps = label_smoothing``, class weights ``w``
    (all 1 without ``weight``) and ``C`` classes, the loss of element ``n`` (a sample, or a pixel of
    ``(B, C, H, W)`` logits) against class ``y`` is ``F.cross_entropy(..., reduction="none")``'s::

        l(n, y) = (1 - eps) * (-w[y] log p[n, y]) + (eps / C) * (-sum_c w[c] log p[n, c]),   0 if y == ignore_index
        L_n     = lam_n * l(n, y_a) + (1 - lam_n) * l(n, y_b)

    with ``lam_n`` the sample's weight (``lam`` scalar or ``(B,)``) or the element's own (``lam`` ``(B, *D)``,
    e.g. ``(B, H, W)`` per pixel). ``reduction="none"`` returns ``L`` (``(B,)`` or ``(B, *D)``), ``"sum"`` its
    sum and ``"mean"``::

        sum_n L_n / sum_n (lam_n * w[y_a] * [y_a != ignore_index] + (1 - lam_n) * w[y_b] * [y_b != ignore_index])

    which is exactly ``F.cross_entropy``'s (weighted) mean when ``lam = 1``; and where every ``lam_n`` is 0 or 1
    (a batch cut by CutMix only) the whole loss, in every reduction, is
    ``F.cross_entropy(logits, torch.where(lam == 1, y_a, y_b), ...)`` with the same arguments (a target of
    weight 0 counts nothing, even where its log-probability is ``-inf``). Void labels such as 255 are fine
    when they are ``ignore_index``. Other indices outside ``0..C-1`` raise a ``ValueError`` when the logits
    are on the CPU in eager mode; on an accelerator or under ``torch.compile`` they are not checked (that
    needs the values on the host) and the gather fails on the device.

    Float targets (one-hot, soft, multi-label or per-pixel probabilities shaped like ``logits``): exactly
    ``F.cross_entropy(logits, lam * y_a + (1 - lam) * y_b, weight=weight, label_smoothing=label_smoothing)``,
    a ``(B, *D)`` lam weighing every class of its element alike. Their mean divides by the number of
    elements; like ``F.cross_entropy``, a non-negative ``ignore_index`` is refused with them.

    Called as ``mixup_cross_entropy(logits, y)`` it equals ``F.cross_entropy`` with the same arguments.
    ``float16``/``bfloat16`` logits are computed, and the loss returned, in float32. Under
    ``torch.compile(..., fullgraph=True)`` it is one graph with the same numbers.

    Args:
        logits: ``(B, C)`` or ``(B, C, *D)`` scores.
        y_a: ``(B,)`` / ``(B, *D)`` integer class indices or float targets shaped like ``logits``; or the whole
            target as one ``(y_a, y_b, lam)`` tuple (any tuple, list or named tuple of three).
        y_b: the partners' targets, shaped like ``y_a``. Omit ``y_b`` and ``lam`` for a plain batch.
        lam: weight of ``y_a``: a scalar, ``(B,)`` per sample or ``(B, *D)`` per element.
        label_smoothing: a number in ``[0, 1]``, applied to class-index and float targets as
            ``F.cross_entropy`` does.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        weight: ``(C,)`` class weights, moved to the logits' device and dtype on the fly.
        ignore_index: class index (any integer, numpy's too) that contributes nothing, to the loss or to the
            mean's denominator.

    Example::

        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
        >>> y_a, y_b, lam = torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([1.0, 0.75])
        >>> mixed = mixup_cross_entropy(logits, y_a, y_b, lam, reduction="none")
        >>> per_class = F.cross_entropy(logits, y_a, reduction="none"), F.cross_entropy(logits, y_b, reduction="none")
        >>> torch.allclose(mixed, lam * per_class[0] + (1 - lam) * per_class[1])
        True
        >>> masks = torch.tensor([[[0, 1], [1, 255]]]), torch.tensor([[[1, 1], [0, 0]]])
        >>> cut = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])  # per-pixel lam: one pixel pasted from the partner
        >>> seg, kept = torch.randn(1, 2, 2, 2), torch.where(cut == 1, *masks)
        >>> cutmix = mixup_cross_entropy(seg, *masks, cut, ignore_index=255)
        >>> torch.allclose(cutmix, F.cross_entropy(seg, kept, ignore_index=255))
        True
    """
    y_a, y_b, lam = _unpack_target(y_a, y_b, lam)
    _check_reduction(reduction)
    label_smoothing = check_smoothing(label_smoothing)
    ignore_index = _check_ignore_index(ignore_index)
    logits = _compute_input(logits)
    weight = _check_weight(weight, logits)
    if y_a.is_floating_point():
        return _float_target_loss(logits, y_a, y_b, lam, weight, ignore_index, label_smoothing, reduction)
    logp = F.log_softmax(logits, dim=1)
    return _index_loss(logp, y_a, y_b, lam, weight, ignore_index, label_smoothing, reduction)


def _known_base(criterion: object) -> type | None:
    """The torch loss class whose ``forward`` ``criterion`` runs, if it is one MixupLoss reproduces exactly."""
    for base in _BY_FORMULA + _PLAIN_MEAN:
        if isinstance(criterion, base) and type(criterion).forward is base.forward:
            return base
    return None


def _wide(dtype: torch.dtype) -> torch.dtype:
    """The dtype lam is applied in: float32, or ``dtype`` where that is wider (never half precision)."""
    return torch.promote_types(dtype, torch.float32) if dtype.is_floating_point else torch.float32


class MixupLoss(nn.Module):
    """Wrap a criterion into a mixup loss: ``loss_fn(logits, y_a, y_b, lam)``, ``loss_fn(logits, (y_a, y_b, lam))``
    or ``loss_fn(logits, y)``, each equal to what the criterion computes.

    - ``nn.CrossEntropyLoss`` (any ``weight``, ``ignore_index``, ``label_smoothing``) and ``nn.NLLLoss``
      (log-probability input, no smoothing): the formula of [`mixup_cross_entropy`][mixup_collate.mixup_cross_entropy],
      with its weighted, ignore-aware mean, per sample or per pixel. With ``lam = 1`` it equals
      ``criterion(logits, y_a)``.
    - Torch losses whose ``"mean"`` is the plain mean of their ``"none"`` output (``L1Loss``, ``MSELoss``,
      ``SmoothL1Loss``, ``HuberLoss``, ``BCELoss``, ``BCEWithLogitsLoss``, ``SoftMarginLoss``,
      ``MultiLabelSoftMarginLoss``, ``MultiMarginLoss``, ``MultiLabelMarginLoss``, ``HingeEmbeddingLoss``,
      ``PoissonNLLLoss``, ``KLDivLoss``): class-index targets combine two per-sample losses
      ``lam * l(y_a) + (1 - lam) * l(y_b)``; float targets are mixed, ``lam * y_a + (1 - lam) * y_b``
      (``KLDivLoss(log_target=True)``: the log of that mixture), before one call. Then sum, plain mean,
      or for ``KLDivLoss`` ``"batchmean"`` sum / B.
    - Other loss modules (any object with a ``reduction`` attribute: ``nn.CTCLoss``, ``nn.GaussianNLLLoss``,
      subclasses that override ``forward``, third-party losses) are refused at construction: their mean is
      not known to be reproducible. Pass a callable returning per-sample losses instead.
    - Any other callable must return per-sample losses ``(B, ...)``; they are combined and reduced as above.

    ``lam`` is a scalar, ``(B,)`` or ``(B, *D)``: a per-pixel ``(B, H, W)`` lam weighs each element of
    ``(B, K, H, W)`` float maps or per-element losses by its pixel's lam (aligned on the trailing dimensions).
    It is applied in float32 (or the targets' or losses' dtype where wider), never rounded to half-precision
    model outputs; per-sample losses of half precision are combined, and returned, in float32.

    The criterion is deep-copied (for loss modules the copy gets ``reduction="none"``), so ``.to()`` and
    ``.double()`` act on the copy and the caller's criterion never changes; parameters of a trainable
    criterion are this module's parameters (``loss_fn.parameters()``).

    Args:
        criterion: default ``nn.CrossEntropyLoss()``.
        reduction: ``"mean"``, ``"sum"``, ``"none"`` (``"batchmean"`` too for ``nn.KLDivLoss``); ``None``
            takes the criterion's own ``reduction``, or ``"mean"`` for a callable without one.
    """

    def __init__(
        self, criterion: Callable[[Tensor, Tensor], Tensor] | None = None, reduction: str | None = None
    ) -> None:
        super().__init__()
        criterion = nn.CrossEntropyLoss() if criterion is None else criterion
        if not callable(criterion):
            raise TypeError(f"criterion must be a loss module or a callable, got {type(criterion).__name__}")
        self._base = _known_base(criterion)
        own = getattr(criterion, "reduction", None)
        if own is not None and self._base is None:
            raise ValueError(
                f"MixupLoss cannot reproduce {type(criterion).__name__}'s reduction exactly: it computes "
                "nn.CrossEntropyLoss and nn.NLLLoss by formula and combines torch losses whose 'mean' is the plain "
                f"mean of their 'none' output ({', '.join(b.__name__ for b in _PLAIN_MEAN)}). Pass a callable that "
                "returns per-sample losses instead, e.g. lambda out, y: per_sample_loss(out, y)"
            )
        if self._base in _BY_FORMULA:
            _check_ignore_index(criterion.ignore_index)
        if self._base is nn.CrossEntropyLoss:
            check_smoothing(criterion.label_smoothing)
        allowed = (*_REDUCTIONS, "batchmean") if self._base is nn.KLDivLoss else _REDUCTIONS
        self.reduction = _check_reduction((own or "mean") if reduction is None else reduction, allowed)
        if isinstance(criterion, nn.Module):
            criterion = copy.deepcopy(criterion)
        if own is not None:
            criterion.reduction = "none"
        self.criterion = criterion

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"

    def forward(self, logits: Tensor, y_a: Target, y_b: Tensor | None = None, lam: Lam | None = None) -> Tensor:
        y_a, y_b, lam = _unpack_target(y_a, y_b, lam)
        c = self.criterion
        if self._base is nn.CrossEntropyLoss:
            return mixup_cross_entropy(
                logits, y_a, y_b, lam, c.label_smoothing, self.reduction, weight=c.weight, ignore_index=c.ignore_index
            )
        if self._base is nn.NLLLoss:
            if y_a.is_floating_point():
                raise ValueError(f"nn.NLLLoss takes class-index targets, got {y_a.dtype} {tuple(y_a.shape)}")
            logp = _compute_input(logits, "log-probabilities")
            ignore_index = _check_ignore_index(c.ignore_index)
            return _index_loss(logp, y_a, y_b, lam, _check_weight(c.weight, logp), ignore_index, 0.0, self.reduction)
        if lam is None:
            return self._reduce(self._per_sample(logits, y_a), logits)
        if y_a.is_floating_point():
            return self._reduce(self._per_sample(logits, self._mixed_target(y_a, y_b, lam)), logits)
        loss_a, loss_b = self._per_sample(logits, y_a), self._per_sample(logits, y_b)
        w = _lam_weights(lam, loss_a.shape, _wide(loss_a.dtype), loss_a.device, what="the per-sample losses")
        return self._reduce(w * loss_a + (1 - w) * loss_b, logits)

    def _mixed_target(self, y_a: Tensor, y_b: Tensor, lam: Lam) -> Tensor:
        """``lam * y_a + (1 - lam) * y_b`` per element, computed with lam unrounded, returned in ``y_a``'s dtype."""
        wide = _wide(y_a.dtype)
        w = _lam_weights(lam, y_a.shape, wide, y_a.device)
        a, b = y_a.to(wide), y_b.to(wide)
        if self._base is nn.KLDivLoss and self.criterion.log_target:
            return torch.logaddexp(a + w.log(), b + torch.log1p(-w)).to(y_a.dtype)
        return torch.lerp(b, a, w).to(y_a.dtype)

    def _per_sample(self, logits: Tensor, y: Tensor) -> Tensor:
        loss = self.criterion(logits, y)
        batch = logits.shape[0]
        if loss.ndim == 0 and batch > 1:
            raise ValueError(
                "criterion returned a scalar; MixupLoss needs per-sample losses: pass a torch loss "
                "module or a callable with reduction='none'"
            )
        if loss.ndim > 0 and loss.shape[0] != batch:
            raise ValueError(
                f"criterion returned shape {tuple(loss.shape)}; MixupLoss needs per-sample losses ({batch}, ...)"
            )
        return loss

    def _reduce(self, loss: Tensor, logits: Tensor) -> Tensor:
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        if self.reduction == "batchmean":
            return loss.sum() / logits.shape[0]
        return loss
