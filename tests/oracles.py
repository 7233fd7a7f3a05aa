"""Float64 oracles and checkers, written independently of the library: what the tests compare its results with."""

import torch

# Float64 oracles for the loss tests, written independently of mixup_collate.loss: one-hot targets built by
# comparison (no gather, no index masking) and the soft-target cross-entropy sum over classes.


def soft_target_cross_entropy(logits, target, weight=None, log_probs=False):
    """``-sum_c w_c target_c log p_c`` per element in float64: ``(B, C, *D)`` in, ``(B, *D)`` out.

    ``log_probs=True`` takes ``logits`` as log-probabilities already (``nn.NLLLoss``'s input).
    """
    logp = logits.double() if log_probs else torch.log_softmax(logits.double(), dim=1)
    w = torch.ones(logits.shape[1], dtype=torch.float64) if weight is None else weight.double()
    return -(target.double() * w.reshape(1, -1, *([1] * (logits.ndim - 2))) * logp).sum(1)


def smoothed_one_hot(y, num_classes, ignore_index=-100, smoothing=0.0):
    """``(1 - eps) * onehot(y) + eps / C`` along dim 1 in float64, all zeros where ``y == ignore_index``."""
    classes = torch.arange(num_classes).reshape(1, -1, *([1] * (y.ndim - 1)))
    hit = (y.unsqueeze(1) == classes).double()
    kept = (y != ignore_index).unsqueeze(1).double()
    return ((1 - smoothing) * hit + smoothing / num_classes) * kept


def lam_over(lam, shape):
    """``lam`` (a scalar, ``(B,)`` or ``(B, *D)``) in float64, with 1s inserted after ``B`` so that its ``*D``
    lines up with the last dimensions of a ``(B, ...)`` tensor of ``shape``: the weight of every element."""
    lam = torch.as_tensor(lam, dtype=torch.float64)
    if lam.ndim == 0:
        lam = lam.repeat(shape[0])
    while lam.ndim < len(shape):
        lam = lam.unsqueeze(1)
    return lam


def mix_reference(y_a, y_b, lam):
    """``lam * y_a + (1 - lam) * y_b`` element by element in float64, ``lam`` aligned as :func:`lam_over` does."""
    w = lam_over(lam, y_a.shape)
    return w * y_a.double() + (1 - w) * y_b.double()


def mixed_cross_entropy_reference(
    logits, y_a, y_b, lam, *, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean", log_probs=False
):
    """Cross-entropy against ``lam * t(y_a) + (1 - lam) * t(y_b)``, ``t`` the smoothed one-hot, in float64.

    ``lam`` is a scalar, ``(B,)`` or per element ``(B, *D)`` for ``(B, C, *D)`` logits. ``"mean"`` divides the
    sum by the class weight the mixed unsmoothed one-hot targets carry,
    ``sum_n lam_n w[y_a] [y_a kept] + (1 - lam_n) w[y_b] [y_b kept]`` (PyTorch's weighted mean when lam = 1).
    """
    num_classes = logits.shape[1]
    lam = lam_over(lam, y_a.shape).unsqueeze(1)  # (B, 1, *D): the same weight for every class
    target = lam * smoothed_one_hot(y_a, num_classes, ignore_index, label_smoothing)
    target = target + (1 - lam) * smoothed_one_hot(y_b, num_classes, ignore_index, label_smoothing)
    per_element = soft_target_cross_entropy(logits, target, weight, log_probs)
    if reduction == "none":
        return per_element
    if reduction == "sum":
        return per_element.sum()
    hits = lam * smoothed_one_hot(y_a, num_classes, ignore_index) + (1 - lam) * smoothed_one_hot(
        y_b, num_classes, ignore_index
    )
    w = torch.ones(num_classes, dtype=torch.float64) if weight is None else weight.double()
    return per_element.sum() / (hits * w.reshape(1, -1, *([1] * (y_a.ndim - 1)))).sum()


# Float64 oracles for the collate, mix and CutMix tests, written independently of mixup_collate.mix.


def mixup_reference(x, perm, lam, scale=1.0, shift=0.0):
    """``(lam * x + (1 - lam) * x[perm]) * scale + shift`` per row, in float64."""
    x = x.double()
    w = torch.as_tensor(lam).double().reshape(-1, *([1] * (x.ndim - 1)))
    return (w * x + (1 - w) * x[torch.as_tensor(perm)]) * scale + shift


def cut_regions(out, own, partner):
    """Per sample, the bool ``(H, W)`` map of pixels taken from the partner, checking every pixel is one or the other.

    ``out``, ``own`` and ``partner`` are ``(B, ..., H, W)``; a pixel (all leading channels together) must
    equal the sample's own or its partner's exactly, and samples must differ from their partners everywhere.
    """
    flat = lambda t: t.double().flatten(1, -3) if t.ndim > 3 else t.double().unsqueeze(1)  # noqa: E731
    out, own, partner = flat(out), flat(own), flat(partner)
    is_own = (out == own).all(1)
    is_partner = (out == partner).all(1)
    assert bool((is_own | is_partner).all()), "every pixel is copied from the sample or its partner, never blended"
    return is_partner & ~is_own


def is_one_rectangle(region):
    """Whether the ``True`` pixels of a bool ``(H, W)`` map form exactly one axis-aligned rectangle (or none)."""
    if not bool(region.any()):
        return True
    rows, cols = region.any(1).nonzero().flatten(), region.any(0).nonzero().flatten()
    box = torch.zeros_like(region)
    box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
    return torch.equal(box, region)


def dense_mix_reference(x, perm, lam):
    """``lam * x + (1 - lam) * x[perm]`` per pixel in float64: ``x`` ``(B, ..., H, W)``, ``lam`` ``(B, H, W)``."""
    x = x.double()
    w = torch.as_tensor(lam).double()
    w = w.reshape(w.shape[0], *([1] * (x.ndim - w.ndim)), *w.shape[1:])
    return w * x + (1 - w) * x[torch.as_tensor(perm)]
