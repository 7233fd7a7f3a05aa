"""Float64 oracles and checkers, written independently of the library: what the tests compare its results with."""

import math

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


# Float64 oracle for box targets, written independently of mixup_collate.detection: a box minus a region as
# up to four strips, visible areas summed, the visible part a rectangle when its strips fill their bounding box.


def _area(b):
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def _intersection(b, r):
    return (max(b[0], r[0]), max(b[1], r[1]), min(b[2], r[2]), min(b[3], r[3]))


def box_minus_region(b, r):
    """The parts of box ``b`` outside region ``r`` (both XYXY floats), as rectangles of positive area."""
    i = _intersection(b, r)
    if _area(i) == 0:
        return [tuple(b)]
    strips = [
        (b[0], b[1], b[2], i[1]),  # above the region
        (b[0], i[3], b[2], b[3]),  # below
        (b[0], i[1], i[0], i[3]),  # left of it, beside the intersection
        (i[2], i[1], b[2], i[3]),  # right of it
    ]
    return [s for s in strips if _area(s) > 0]


def _clamped(b, size):
    height, width = size
    return [min(max(b[0], 0.0), width), min(max(b[1], 0.0), height), min(max(b[2], 0.0), width),
            min(max(b[3], 0.0), height)]  # fmt: skip


def detection_reference(targets, perm, lam, mode, regions, min_visibility, size=(float("inf"), float("inf"))):
    """Each sample's expected ``(boxes, labels, weights)`` (float64 XYXY), from the rules of box mixing.

    ``targets`` are ``(boxes (N, 4) XYXY, labels (N,))`` pairs, or ``(boxes, labels, weights)`` with the dataset's
    own per-box weights; ``mode`` holds 0 (unmixed), 1 (blended), 2 (cut); ``regions`` are ``(top, bottom, left,
    right)`` per sample; ``size`` the image's ``(H, W)``, which boxes are clamped to.
    """

    def parts(k):
        boxes = [_clamped(list(map(float, b)), size) for b in targets[k][0]]
        given = list(map(float, targets[k][2])) if len(targets[k]) > 2 else [1.0] * len(boxes)
        return boxes, list(targets[k][1]), given

    out = []
    for i, (j, m) in enumerate(zip(perm, mode)):
        own_boxes, own_labels, own_given = parts(i)
        if m == 0 or j == i:
            out.append((own_boxes, own_labels, own_given))
            continue
        partner_boxes, partner_labels, partner_given = parts(j)
        if m == 1:
            w = float(lam[i])
            out.append((own_boxes + partner_boxes, own_labels + partner_labels,
                        [w * g for g in own_given] + [(1 - w) * g for g in partner_given]))  # fmt: skip
            continue
        top, bottom, left, right = (float(v) for v in regions[i])
        r = (left, top, right, bottom)
        boxes, labels, weights = [], [], []
        for b, label, g in zip(own_boxes, own_labels, own_given):
            pieces = box_minus_region(b, r)
            visible = sum(_area(p) for p in pieces)
            if visible == 0 or visible < min_visibility * _area(b):  # what the image no longer shows is gone
                continue
            hull = (min(p[0] for p in pieces), min(p[1] for p in pieces), max(p[2] for p in pieces),
                    max(p[3] for p in pieces))  # fmt: skip
            one = abs(_area(hull) - visible) <= 1e-9 * max(_area(b), 1.0)
            boxes.append(list(hull) if one else b)
            labels.append(label)
            weights.append(g)
        for b, label, g in zip(partner_boxes, partner_labels, partner_given):
            inside = _intersection(b, r)
            if _area(inside) > 0 and _area(inside) >= min_visibility * _area(b):
                boxes.append(list(inside))
                labels.append(label)
                weights.append(g)
        out.append((boxes, labels, weights))
    return out


# Float64 oracle for CutMix regions over k sample dimensions, written independently of mixup_collate.boxes: the
# formulas of the contract, one sample at a time in Python floats.


def region_reference(lam, sizes, centres):
    """The region ``[start_1, stop_1, ..., start_k, stop_k]`` for weight ``lam`` around ``centres``, and its ``lam``.

    Side ``d`` is ``floor(s_d * (1 - lam) ** (1 / k))``, the last one shortened by one if the volume would exceed
    the share ``1 - lam``; the region starts ``side // 2`` before its centre and is clipped at the borders.
    """
    k, total, share = len(sizes), math.prod(sizes), 1 - float(lam)
    sides = [math.floor(s * share ** (1 / k)) for s in sizes]
    if math.prod(sides) > share * total:
        sides[-1] = max(sides[-1] - 1, 0)
    edges = []
    for size, side, centre in zip(sizes, sides, centres):
        start = centre - side // 2
        edges += [min(max(start, 0), size), min(max(start + side, 0), size)]
    volume = math.prod(stop - start for start, stop in zip(edges[0::2], edges[1::2]))
    return edges, 1 - volume / total


def paste_reference(x, perm, regions, dims):
    """Each row of ``x`` ``(B, *S)`` with its region (over the sample dims ``dims``) copied from its partner."""
    x = x.double()
    out = x.clone()
    for i, (j, edges) in enumerate(zip(perm, regions)):
        index = [i] + [slice(None)] * (x.ndim - 1)
        for d, start, stop in zip(dims, edges[0::2], edges[1::2]):
            index[d] = slice(start, stop)
        out[tuple(index)] = x[(j, *index[1:])]
    return out
