"""Box targets: detection samples packed for the trip from the workers, and mixed per sample with their images.

A detection target is a dict in torchvision's form: ``"boxes"`` ``(N, 4)`` (XYXY pixels, or a
``tv_tensors.BoundingBoxes`` in any axis-aligned format), ``"labels"`` ``(N,)``, optional ``"masks"``
``(N, H, W)``, other per-box fields, by name ([`PER_BOX_KEYS`][mixup_collate.detection.PER_BOX_KEYS] and the names a
collate's ``box_fields`` adds), and per-image fields: every other key (``"image_id"``, DETR's ``"size"`` and
``"orig_size"``), whatever its length.
[`pack_targets`][mixup_collate.detection.pack_targets] packs a batch of them into one tensor per field plus the
per-sample counts; [`mix_box_targets`][mixup_collate.detection.mix_box_targets] gives each sample the boxes its mixed
image shows (see its docstring). The box arithmetic runs on the host, where the counts are known, so nothing waits for
the device; masks are cut on the device by [`paste`][mixup_collate.boxes.paste], the region primitive the images use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .batch import to_device
from .boxes import paste
from .params import BLENDED, CUT

__all__ = ["PER_BOX_KEYS", "PackedTargets", "mix_box_targets", "pack_targets"]

PER_BOX_KEYS = ("labels", "masks", "area", "iscrowd", "keypoints", "weights")
"""The per-box keys of torchvision's and DETR's targets, and per-box weights: one row per box, so one of another
length is an error. Any other key is the image's own, whatever its length (``box_fields`` names more)."""
_SIZE_HINT = "box mixing needs one image size per batch (a fixed-size resize or crop in the dataset's transform)"


@dataclass
class PackedTargets:
    """A batch's detection targets, one tensor per per-box field for the whole batch.

    Attributes:
        counts: boxes per sample (host ints).
        boxes: ``(sum N, 4)`` float32 XYXY pixels.
        fields: per-box fields by name, ``(sum N, ...)``, in sample 0's order (``labels`` among them).
        size: the images' ``(H, W)``.
        per_image: each sample's per-image fields, as the dataset gave them.
        bounding_boxes: the samples' boxes were ``tv_tensors.BoundingBoxes`` (returned as such, XYXY).
    """

    counts: list[int]
    boxes: Tensor
    fields: dict[str, Tensor]
    size: tuple[int, int]
    per_image: list[dict[str, Any]] = field(default_factory=list)
    bounding_boxes: bool = False


def _as_tensor(value: Any, index: int, name: str) -> Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, Tensor):
        got = type(value).__name__
        raise ValueError(f"sample {index}'s target {name!r} must be a tensor or numpy array, got {got}")
    return value.as_subclass(Tensor).detach()


def _xyxy(boxes: Any, index: int, size: tuple[int, int]) -> Tensor:
    """Boxes as float32 XYXY clamped to the ``(H, W)`` image: plain tensors and arrays are XYXY already."""
    kind = getattr(getattr(boxes, "format", None), "name", "XYXY")
    b = _as_tensor(boxes, index, "boxes")
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"sample {index}'s target 'boxes' must have shape (N, 4), got {tuple(b.shape)}")
    if b.dtype == torch.bool or b.is_complex():
        raise ValueError(f"sample {index}'s target 'boxes' must hold real coordinates, got {b.dtype}")
    b = b.to(torch.float32)
    bad = (~torch.isfinite(b).all(dim=1)).nonzero()
    if len(bad):
        raise ValueError(
            f"sample {index}'s target 'boxes' has a NaN or infinite coordinate in box {int(bad[0])}: "
            f"{b[int(bad[0])].tolist()}"
        )
    if kind == "XYWH":
        b = torch.cat((b[:, :2], b[:, :2] + b[:, 2:]), dim=1)
    elif kind == "CXCYWH":
        b = torch.cat((b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2), dim=1)
    elif kind != "XYXY":
        raise ValueError(f"sample {index}'s boxes are in format {kind}; box mixing takes axis-aligned boxes only")
    given = b
    height, width = size
    b = b.clamp(min=torch.zeros(4), max=torch.tensor([width, height, width, height], dtype=torch.float32))
    bad = ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])).nonzero()
    if len(bad):
        raise ValueError(
            f"sample {index}'s target 'boxes' has box {int(bad[0])} = {given[int(bad[0])].tolist()} (XYXY), with no "
            f"area inside the {height}x{width} image: a box needs a positive width and height there (torchvision's "
            "detection models refuse empty boxes; v2.SanitizeBoundingBoxes drops them in the dataset's transform)"
        )
    return b


def _stale(index: int, name: str, shape: Sequence[int], n: int) -> str:
    return (
        f"sample {index}'s target {name!r} has shape {tuple(shape)}, but it has {n} boxes: a per-box field needs "
        f"({n}, ...) (a transform that drops boxes must drop their {name!r} too, or leave it out with box_target_keys)"
    )


def _per_box(value: Any, index: int, name: str, n: int) -> Tensor:
    """One sample's per-box field as a tensor of ``n`` rows; per-box weights as float32 ``(n,)``."""
    tensor = _as_tensor(value, index, name)
    if tensor.ndim == 0 or tensor.shape[0] != n:
        raise ValueError(_stale(index, name, tensor.shape, n))
    if name == "labels" and (tensor.ndim != 1 or tensor.is_floating_point() or tensor.dtype == torch.bool):
        raise ValueError(
            f"sample {index}'s target 'labels' must be ({n},) integers, "
            f"got {tensor.dtype} of shape {tuple(tensor.shape)}"
        )
    if name == "weights":
        if tensor.ndim != 1 or tensor.dtype == torch.bool or tensor.is_complex():
            raise ValueError(
                f"sample {index}'s target 'weights' must be ({n},) real numbers, one per box (multiplied by the "
                f"mixing weights), got {tensor.dtype} of shape {tuple(tensor.shape)}"
            )
        tensor = tensor.to(torch.float32)
    return tensor


def _split_target(
    target: Any, index: int, size: tuple[int, int], keys: Sequence[str] | None, per_box_keys: Sequence[str]
) -> tuple[Tensor, dict[str, Tensor], dict[str, Any], bool]:
    if not isinstance(target, Mapping):
        raise ValueError(f"sample {index}'s target is a {type(target).__name__}; box_targets=True needs a dict")
    if keys is not None:
        target = {k: v for k, v in target.items() if k in keys}
    missing = [k for k in ("boxes", "labels") if k not in target]
    if missing:
        raise ValueError(f"sample {index}'s target has no {missing[0]!r} (its keys: {sorted(map(str, target))})")
    boxes = _xyxy(target["boxes"], index, size)
    n = boxes.shape[0]
    per_box, per_image = {}, {}
    for name, value in target.items():
        if name == "boxes":
            continue
        if name in PER_BOX_KEYS or name in per_box_keys:
            per_box[name] = _per_box(value, index, name, n)
        else:
            per_image[name] = value
    return boxes, per_box, per_image, type(target["boxes"]).__name__ == "BoundingBoxes"


def pack_targets(
    targets: Sequence[Any],
    size: tuple[int, int],
    keys: Sequence[str] | None = None,
    per_box_keys: Sequence[str] = (),
) -> PackedTargets:
    """Pack ``B`` detection targets (one image size ``(H, W)``), checking each, naming the sample and the field.

    Boxes are clamped to the image; a box with no area inside it, or with a NaN or infinite coordinate, is
    refused. ``keys``: keep only these keys of each target (``None``: all). ``per_box_keys``: per-box fields
    beyond [`PER_BOX_KEYS`][mixup_collate.detection.PER_BOX_KEYS]; every other key is a per-image field, whatever its
    length.
    """
    split = [_split_target(t, i, size, keys, per_box_keys) for i, t in enumerate(targets)]
    first = split[0][1]  # sample 0's per-box fields: every sample's must match them
    for i, (_, per_box, _, _) in enumerate(split):
        masks = per_box.get("masks")
        if masks is not None and tuple(masks.shape[1:]) != size:
            raise ValueError(f"sample {i}'s target 'masks' has shape {tuple(masks.shape)}; the image is {size}")
        if per_box.keys() != first.keys():
            raise ValueError(
                f"sample {i}'s per-box fields are {sorted(per_box)} but sample 0's are {sorted(first)}; "
                "every target needs the same per-box fields"
            )
        for name, like in first.items():
            value = per_box[name]
            if value.dtype != like.dtype or value.shape[1:] != like.shape[1:]:
                raise ValueError(
                    f"sample {i}'s per-box field {name!r} is {value.dtype} of shape {tuple(value.shape)}, but sample "
                    f"0's is {like.dtype} of shape {tuple(like.shape)}: a per-box field needs one dtype and one shape "
                    "per box in every target"
                )
    return PackedTargets(
        counts=[s[0].shape[0] for s in split],
        boxes=torch.cat([s[0] for s in split]),
        fields={name: torch.cat([s[1][name] for s in split]) for name in first},
        size=size,
        per_image=[s[2] for s in split],
        bounding_boxes=split[0][3],
    )


def check_sizes(images: Sequence[Tensor]) -> None:
    """One image size for the batch, else an error naming the sample and both sizes."""
    first = tuple(images[0].shape[-2:])
    for i, image in enumerate(images):
        if tuple(image.shape[-2:]) != first:
            raise ValueError(f"sample {i}'s image is {tuple(image.shape[-2:])} but sample 0's is {first}: {_SIZE_HINT}")


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, counts)])``, without a loop."""
    total = int(counts.sum())
    first = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return first + np.arange(total)


def _candidates(counts: np.ndarray, perm: np.ndarray, mixed: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every box that may appear in the output: (source index, output sample, own box?), in output order.

    A sample's own boxes come first, then, where it is ``mixed`` with another sample, its partner's.
    """
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rows = np.flatnonzero(mixed)
    own_src = np.arange(int(counts.sum()))
    partner_src = _ranges(offsets[perm[rows]], counts[perm[rows]])
    src = np.concatenate((own_src, partner_src))
    dst = np.concatenate((np.repeat(np.arange(len(counts)), counts), np.repeat(rows, counts[perm[rows]])))
    own = np.concatenate((np.ones(len(own_src), dtype=bool), np.zeros(len(partner_src), dtype=bool)))
    order = np.argsort(dst, kind="stable")  # by sample, own boxes before the partner's
    return src[order], dst[order], own[order]


def _cut(boxes: np.ndarray, region: np.ndarray, own: np.ndarray, least: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of CutMix rows (float64 XYXY, their rows' regions XYXY): the kept ones and their new coordinates."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    lo, hi = np.maximum(boxes[:, :2], region[:, :2]), np.minimum(boxes[:, 2:], region[:, 2:])
    inside = np.clip(hi - lo, 0, None).prod(axis=1)
    visible = np.where(own, area - inside, inside)
    keep = (visible >= least * area) & (visible > 0)  # a box the mixed image does not show is gone at any least
    out = np.where(own[:, None], boxes, np.concatenate((lo, hi), axis=1))  # a partner's box: clipped to the region
    # An own box whose visible part is one rectangle: the region spans it along one axis and covers one side.
    for axis in (0, 1):
        other = 1 - axis
        spans = (region[:, other] <= boxes[:, other]) & (region[:, other + 2] >= boxes[:, other + 2])
        starts = region[:, axis] <= boxes[:, axis]
        ends = region[:, axis + 2] >= boxes[:, axis + 2]
        overlaps = (region[:, axis] < boxes[:, axis + 2]) & (region[:, axis + 2] > boxes[:, axis])
        clip_low = own & spans & overlaps & starts & ~ends  # covered from the low side: the visible part starts later
        clip_high = own & spans & overlaps & ends & ~starts
        out[:, axis] = np.where(clip_low, region[:, axis + 2], out[:, axis])
        out[:, axis + 2] = np.where(clip_high, region[:, axis], out[:, axis + 2])
    keep &= (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return keep, out


def mix_box_targets(
    packed: PackedTargets,
    perm: Tensor,
    lam: Tensor,
    mode: Tensor,
    regions: Tensor | None,
    device: torch.device,
    min_visibility: float = 0.1,
) -> list[dict[str, Any]]:
    """Each sample's target for its mixed image, on ``device``: boxes, labels, masks, per-box fields, ``weights``.

    For sample ``i`` with partner ``j = perm[i]``: a blended sample keeps its boxes (weight ``lam[i]``) and
    gains its partner's (weight ``1 - lam[i]``). A cut sample (region ``regions[i]``, ``(top, bottom, left,
    right)``, pasted from ``j``) keeps an own box if at least ``min_visibility`` of its area (and some of it)
    stays visible, clipped to the visible part when that is one rectangle; it gains each partner box clipped
    to the region if at least ``min_visibility`` of it (and some of it) lies inside; own masks are zeroed
    inside the region, the partner's outside it; weights are 1. An unmixed sample, or one paired with
    itself, keeps its own target once with weights 1. Targets that carry per-box ``"weights"`` get them
    multiplied by these. No box without area is returned; boxes lie inside the image (packed clamped).
    """
    partners, kinds = perm.numpy(), mode.numpy()
    paired = partners != np.arange(len(partners))  # a sample paired with itself keeps its own target
    cut, blend = (kinds == CUT) & paired, (kinds == BLENDED) & paired
    src, dst, own = _candidates(np.asarray(packed.counts, dtype=np.int64), partners, cut | blend)
    boxes = packed.boxes.double().numpy()[src]
    cut_rows = cut[dst]
    keep = np.ones(len(src), dtype=bool)
    cuts = regions is not None and bool(cut_rows.any())
    if cuts:
        r = regions.numpy()[dst][:, [2, 0, 3, 1]].astype(np.float64)  # (top, bottom, left, right) -> XYXY
        kept, clipped = _cut(boxes[cut_rows], r[cut_rows], own[cut_rows], min_visibility)
        keep[cut_rows] = kept
        boxes[cut_rows] = clipped
    lam64 = lam.double().numpy()[dst]
    weights = np.where(blend[dst], np.where(own, lam64, 1 - lam64), 1.0)
    given = packed.fields.get("weights")
    if given is not None:  # the dataset's own per-box weights, scaled by the mix
        weights = weights * given.double().numpy()[src]
    src, dst, own, boxes, weights = src[keep], dst[keep], own[keep], boxes[keep], weights[keep]
    counts = np.bincount(dst, minlength=len(partners)).tolist()
    index = torch.from_numpy(src)
    out = {name: value.index_select(0, index) for name, value in packed.fields.items() if name != "weights"}
    out.update(boxes=torch.from_numpy(boxes).float(), weights=torch.from_numpy(weights).float())
    out = {name: value.to(device, non_blocking=True) for name, value in out.items()}
    if "masks" in out and cuts:
        out["masks"] = _cut_masks(out["masks"], dst, own, cut_rows[keep], regions)
    return _per_sample(out, counts, packed, device)


def _cut_masks(masks: Tensor, dst: np.ndarray, own: np.ndarray, cut: np.ndarray, regions: Tensor) -> Tensor:
    """Own masks of cut rows zeroed inside the region, partner masks outside it (the region as the image's).

    ``masks`` are the batch's own gathered copy, changed in place.
    """
    boxes = regions.index_select(0, torch.from_numpy(dst)) * torch.from_numpy(cut)[:, None]
    inside = torch.where(torch.from_numpy(own & cut)[:, None], boxes, 0).to(masks.device)
    paste(masks, 0, inside)
    partner = torch.from_numpy(~own & cut)
    if bool(partner.any()):
        rows = partner.nonzero().flatten()
        theirs = masks.index_select(0, rows.to(masks.device))
        kept = torch.zeros_like(theirs)
        paste(kept, theirs, boxes.index_select(0, rows).to(masks.device))
        masks.index_copy_(0, rows.to(masks.device), kept)
    return masks


def _per_sample(
    out: dict[str, Tensor], counts: list[int], packed: PackedTargets, device: torch.device
) -> list[dict[str, Any]]:
    pieces = {name: value.split(counts) for name, value in out.items()}
    if packed.bounding_boxes:
        from torchvision import tv_tensors  # the samples' own boxes were tv_tensors: torchvision is here
    targets = []
    for i in range(len(counts)):
        target = {name: pieces[name][i] for name in ("boxes", "labels")}
        target.update({name: pieces[name][i] for name in pieces if name not in target})
        if packed.bounding_boxes:
            target["boxes"] = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=packed.size)
        target.update(to_device(packed.per_image[i], device, non_blocking=True))
        targets.append(target)
    return targets
