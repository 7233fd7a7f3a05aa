"""Every knob of [`MixupCollate`][mixup_collate.MixupCollate], validated where it is set.

Each knob has one validator: it runs at construction and at every assignment
(``collate.prob = 2`` raises right there, naming ``prob``) and normalises the value (numpy numbers
become Python numbers, ``"float16"`` becomes ``torch.float16``). Knobs that only make sense together
(``alpha=0`` needs CutMix, ``label_smoothing`` needs ``soft_targets``, ...) are checked together by
``Settings.check``, at construction, by ``Settings.update``, and before the next batch after
single assignments (so ``collate.cutmix_alpha = 1.0; collate.alpha = 0`` works in either order).
Checks against the data itself (targets, shapes) happen at the draw: ``Settings.check_batch``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Hashable
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .boxes import are_sample_dims
from .loss import check_smoothing
from .sampling import check_concentration

__all__ = ["KNOBS", "STRUCTURAL", "Knob", "Settings", "check_device", "unknown_setting"]

# The floating dtypes the mix computes in (float8 types cannot hold a mixed batch: torch refuses to promote them).
OUTPUT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {name}={value!r}")
    return bool(value)


def _probability(value: object, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {name}={value!r}")
    return float(value)


def _concentration_or_off(value: object, name: str) -> float:
    """0 (off) or a valid Beta concentration."""
    if isinstance(value, Real) and not isinstance(value, (bool, np.bool_)) and value == 0:
        return 0.0
    return check_concentration(value, name)


def _minmax(value: object, name: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, (Tensor, np.ndarray)):
        value = value.tolist()
    items = tuple(value) if isinstance(value, (tuple, list)) else None
    if (
        items is None
        or len(items) != 2
        or not all(isinstance(v, Real) and not isinstance(v, (bool, np.bool_)) for v in items)
        or not 0 < items[0] <= items[1] <= 1
    ):
        raise ValueError(
            f"{name} must be (lo, hi) with 0 < lo <= hi <= 1 (a pair of box side ratios), or None, got {name}={value!r}"
        )
    return float(items[0]), float(items[1])


def _count_or_none(value: object, name: str, *, least: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value < least:
        what = "a positive int" if least == 1 else "a non-negative int"
        raise ValueError(f"{name} must be {what} or None, got {name}={value!r}")
    return int(value)


def _dtype(value: object, name: str) -> torch.dtype | None:
    if value is None:
        return None
    dtype = getattr(torch, value.removeprefix("torch."), value) if isinstance(value, str) else value
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(
            f"{name} must be a floating dtype the mix computes in (torch.float32, torch.bfloat16, torch.float16, "
            f"torch.float64, or a name such as 'float16'), or None, got {name}={value!r}"
        )
    return dtype


def _channel_values(value: object, name: str) -> tuple[float, ...] | None:
    """``mean``/``std``: ``None``, one number for every channel, or one per channel; all finite."""
    if value is None:
        return None
    items = value.flatten().tolist() if isinstance(value, (Tensor, np.ndarray)) else value
    items = [items] if isinstance(items, Real) else items
    try:
        items = list(items)
    except TypeError:
        items = []
    if not items or any(
        isinstance(v, (bool, np.bool_)) or not isinstance(v, Real) or not math.isfinite(v) for v in items
    ):
        raise ValueError(f"{name} must be a finite number or a sequence of finite numbers, got {name}={value!r}")
    return tuple(float(v) for v in items)


def _std(value: object, name: str) -> tuple[float, ...] | None:
    values = _channel_values(value, name)
    if values is not None and any(v <= 0 for v in values):
        raise ValueError(f"{name} values must be > 0 (they divide), got {name}={value!r}")
    return values


def _extras(value: object, name: str) -> bool | tuple[Hashable, ...]:
    """``True`` (keep every other field), ``False`` (none) or the names (or tuple positions) of those to keep."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, Hashable) for v in value):
        return tuple(value)
    raise ValueError(f"{name} must be True, False or a list of the fields to keep, got {name}={value!r}")


def _names(value: object, name: str) -> tuple[str, ...]:
    """Key names, sorted: their order means nothing, so keys in another order are the same setting."""
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return tuple(sorted(set(value)))
    raise ValueError(f"{name} must be a list of a detection target's keys, got {name}={value!r}")


def _target_keys(value: object, name: str) -> tuple[str, ...] | None:
    """``None`` (every key) or the detection-target keys to keep, which must include ``boxes`` and ``labels``."""
    if value is None:
        return None
    keys = _names(value, name)
    missing = [k for k in ("boxes", "labels") if k not in keys]
    if missing:
        raise ValueError(f"{name} must include 'boxes' and 'labels', got {name}={value!r} (no {missing[0]!r})")
    return keys


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _sample_dims(value: object, name: str) -> tuple[int, ...]:
    """Sample dimensions as increasing negative indices, counted from the end of a sample's shape."""
    items = tuple(value) if isinstance(value, (tuple, list)) else ()
    if are_sample_dims(items):
        return tuple(int(d) for d in items)
    raise ValueError(
        f"{name} must be a tuple of one or more negative sample dimensions, counted from the end and increasing "
        f"(e.g. (-2, -1) for (H, W), (-4, -2, -1) for a (T, C, H, W) clip's frames and pixels, (-1,) for time), "
        f"got {name}={value!r}"
    )


def _channel_dim(value: object, name: str) -> int | None:
    if value is None or (_is_int(value) and value < 0):
        return None if value is None else int(value)
    raise ValueError(
        f"{name} must be None (a sample's first dimension) or a negative dimension counted from the end of a "
        f"sample's shape (e.g. -3 for the C of a (T, C, H, W) clip), got {name}={value!r}"
    )


def _key(value: object, name: str) -> Hashable:
    if value is None or not isinstance(value, Hashable):
        raise ValueError(f"{name} must be a dict key (a str, usually), got {name}={value!r}")
    return value


# name -> (default, validator), in MixupCollate's signature order.
_SPEC: dict[str, tuple[Any, Callable[[object, str], Any]]] = {
    "alpha": (0.4, _concentration_or_off),
    "cutmix_alpha": (0.0, _concentration_or_off),
    "cutmix_minmax": (None, _minmax),
    "cutmix_dims": ((-2, -1), _sample_dims),
    "switch_prob": (0.5, _probability),
    "prob": (1.0, _probability),
    "soft_targets": (False, _flag),
    "dense_targets": (False, _flag),
    "box_targets": (False, _flag),
    "box_min_visibility": (0.1, _probability),
    "box_target_keys": (None, _target_keys),
    "box_fields": ((), _names),
    "num_classes": (None, lambda v, n: _count_or_none(v, n, least=1)),
    "label_smoothing": (0.0, check_smoothing),
    "off_epoch": (None, lambda v, n: _count_or_none(v, n, least=0)),
    "enabled": (True, _flag),
    "per_sample": (True, _flag),
    "fold": (True, _flag),
    "cycle": (False, _flag),
    "correct_lam": (True, _flag),
    "stack_x": (False, _flag),
    "stack_y": (True, _flag),
    "dtype": (None, _dtype),
    "mean": (None, _channel_values),
    "std": (None, _std),
    "channel_dim": (None, _channel_dim),
    "channels_last": (False, _flag),
    "input_key": ("image", _key),
    "target_key": ("label", _key),
    "extras": (True, _extras),
    "extras_to_device": (False, _flag),
}
KNOBS = tuple(_SPEC)
# What a batch's structure and its stacking depend on: fixed once the collate has made its first batch, since
# a pending batch's len() comes from them and DataLoader workers (persistent ones too) keep their own copy.
STRUCTURAL = (
    "cutmix_dims",
    "soft_targets",
    "dense_targets",
    "box_targets",
    "box_target_keys",
    "box_fields",
    "input_key",
    "target_key",
    "extras",
)


# Names other libraries give these settings (timm's Mixup), pointed to ours.
ALIASES = {"mixup_alpha": "alpha", "cutmix_prob": "prob", "mix_prob": "prob", "mode": "per_sample"}


def unknown_setting(name: str, known: tuple[str, ...] = KNOBS) -> str:
    """The message for a name that is not a setting: the closest of ``known``, and all of them."""
    close = ALIASES.get(name) or next(iter(difflib.get_close_matches(name, known, n=1)), None)
    hint = f"; did you mean {close!r}?" if close else ""
    return f"unknown setting {name!r}{hint} (the settings are {', '.join(known)})"


def check_device(device: object) -> torch.device | None:
    """``device`` as a ``torch.device`` (``None`` resolves later), refusing one this process cannot use, by name."""
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device must be a torch.device or a name such as 'cuda:0' or 'cpu', got device={device!r}"
        ) from error
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            raise ValueError(
                f"device={str(device)!r}, but this process sees {count} CUDA device(s) "
                "(torch.cuda.is_available() is False or the index is too high); pass device='cpu' or an existing GPU"
            )
    return device


class Settings:
    """The validated knobs of one collate (see [`MixupCollate`][mixup_collate.MixupCollate] for their meaning)."""

    __slots__ = (*KNOBS, "_consistent", "_structure_fixed")

    def __init__(self, **values: Any) -> None:
        for name in values:
            if name not in _SPEC:
                raise TypeError(unknown_setting(name))
        object.__setattr__(self, "_structure_fixed", False)
        for name, (default, _) in _SPEC.items():
            setattr(self, name, values.get(name, default))
        self.check()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SPEC:
            value = _SPEC[name][1](value, name)
            if self._structure_fixed and name in STRUCTURAL and value != getattr(self, name):
                raise ValueError(
                    f"{name} cannot change after the collate's first batch: it decides the batches' structure "
                    "and how DataLoader workers (which keep their own copy) stack them; make a new MixupCollate"
                )
            object.__setattr__(self, "_consistent", False)
        object.__setattr__(self, name, value)

    @property
    def structure_fixed(self) -> bool:
        """Whether a batch has been made: the ``STRUCTURAL`` settings then stay as they are."""
        return self._structure_fixed

    def fix_structure(self) -> None:
        """From the first batch on, the ``STRUCTURAL`` settings stay as they are."""
        object.__setattr__(self, "_structure_fixed", True)

    def items(self) -> dict[str, Any]:
        """The knobs by name, in signature order."""
        return {name: getattr(self, name) for name in KNOBS}

    def update(self, **changes: Any) -> None:
        """Change several knobs at once, all or nothing: each is validated, then their combination."""
        for name in changes:
            if name not in _SPEC:
                raise TypeError(unknown_setting(name))
        trial = Settings(**{**self.items(), **changes})  # each knob validated, then the combination
        if self._structure_fixed:
            for name in STRUCTURAL:
                setattr(self, name, getattr(trial, name))  # refuses a change, by name
        for name in KNOBS:
            object.__setattr__(self, name, getattr(trial, name))
        object.__setattr__(self, "_consistent", True)

    @property
    def cutmix_on(self) -> bool:
        """Whether CutMix is configured (``cutmix_alpha > 0`` or ``cutmix_minmax``)."""
        return self.cutmix_alpha > 0 or self.cutmix_minmax is not None

    def check(self) -> None:
        """Refuse a combination of knobs that cannot work, naming the arguments."""
        minmax = self.cutmix_minmax
        k = len(self.cutmix_dims)
        if minmax is not None and self.fold and minmax[1] ** k > 0.5 + 1e-12:  # hi = 0.5 ** (1 / k), rounded, fits
            raise ValueError(
                f"cutmix_minmax={minmax!r} allows boxes covering up to {minmax[1] ** k:.2f} of an image, but "
                f"fold=True keeps at least half of every image; pass fold=False or hi <= {0.5 ** (1 / k):.3f}"
            )
        if self.alpha == 0 and not self.cutmix_on and self.enabled:  # an evaluation collate needs no mixing
            raise ValueError(
                "alpha=0 turns Mixup off and CutMix is off too (cutmix_alpha=0, no cutmix_minmax); to turn mixing "
                "off, keep alpha and pass enabled=False (or set collate.enabled = False); to switch to CutMix only, "
                "collate.update(alpha=0, cutmix_alpha=1.0)"
            )
        if self.soft_targets and self.dense_targets:
            raise ValueError(
                "soft_targets=True builds (B, num_classes) targets for classification; with dense_targets=True the "
                "batch is (x, y_a, y_b, lam) with per-pixel lam: use mixup_cross_entropy(logits, y_a, y_b, lam, "
                "ignore_index=...) (or MixupLoss) and leave soft_targets off"
            )
        if self.box_targets:
            clash = [n for n in ("soft_targets", "dense_targets", "stack_x") if getattr(self, n)]
            clash += [] if self.stack_y else ["stack_y=False"]
            clash += [] if self.cutmix_dims == (-2, -1) else [f"cutmix_dims={self.cutmix_dims}"]
            if clash:
                raise ValueError(
                    f"box_targets=True mixes detection targets (lists of boxes per image) and cannot be combined with "
                    f"{clash[0]}{'' if '=' in clash[0] else '=True'}: drop one of the two"
                )
        for name in ("box_target_keys", "box_fields"):
            if getattr(self, name) not in (None, ()) and not self.box_targets:
                raise ValueError(f"{name} names keys of detection targets: it needs box_targets=True")
        if self.soft_targets and self.num_classes is None:
            raise ValueError("soft_targets=True needs num_classes, a positive int, got num_classes=None")
        if self.label_smoothing and not self.soft_targets:
            raise ValueError(
                "label_smoothing here smooths soft targets (soft_targets=True); with the (x, y_a, y_b, lam) batches "
                "pass it to the loss instead: mixup_cross_entropy(..., label_smoothing=...) or "
                "MixupLoss(nn.CrossEntropyLoss(label_smoothing=...))"
            )
        if not self.correct_lam and (self.cutmix_minmax is not None or self.dense_targets):
            raise ValueError(
                "correct_lam=False keeps CutMix's drawn lam instead of the share a sample keeps; "
                + (
                    "with cutmix_minmax no lam is drawn (timm corrects it there too)"
                    if self.cutmix_minmax is not None
                    else "with dense_targets=True lam is per pixel, defined by the box itself"
                )
            )
        self._check_normalisation()
        if self.stack_x and self.channels_last:
            raise ValueError("channels_last applies to (B, C, H, W) batches; stack_x returns (B, 2, C, H, W) pairs")
        if self.stack_x and self.cutmix_on:
            raise ValueError("stack_x returns unmixed pairs for models that mix inside; it cannot carry CutMix boxes")
        object.__setattr__(self, "_consistent", True)

    def _check_normalisation(self) -> None:
        mean, std = self.mean, self.std
        if (mean is None) != (std is None):
            raise ValueError("pass mean and std together (per-channel normalization), or neither")
        if mean is not None and len(mean) != len(std) and 1 not in (len(mean), len(std)):
            raise ValueError(f"mean has {len(mean)} values but std has {len(std)}; give one per channel")

    def check_batch(self, x: Tensor, y: Any, mixing: bool) -> None:
        """Refuse a stacked batch these settings cannot mix (before any draw); checks the combination first."""
        if not self._consistent:
            self.check()
        # Box targets (packed, not a tensor) meet none of the target checks: check() refuses them with
        # soft_targets and stack_y=False, so only the shape check at the end applies to them.
        if mixing and not self.stack_y and not y.is_floating_point() and self.dense_targets:
            raise TypeError(
                f"stack_y=False mixes float maps linearly, but the dense targets are {y.dtype} class-index masks, "
                "which are never blended; keep stack_y=True and use mixup_cross_entropy(..., ignore_index=...)"
            )
        if mixing and not self.stack_y and not y.is_floating_point():
            raise TypeError(
                "stack_y=False mixes targets linearly and needs float targets (one-hot, multi-hot, "
                f"regression), but the targets are {y.dtype} class indices; one-hot them in the "
                "dataset or keep stack_y=True and use mixup_cross_entropy"
            )
        if self.soft_targets and y.is_floating_point() and tuple(y.shape[1:]) != (self.num_classes,):
            raise ValueError(
                f"soft_targets=True needs class indices or float targets (num_classes,) = ({self.num_classes},) "
                f"per sample, got float targets of shape {tuple(y.shape[1:])}"
            )
        if self.soft_targets and not y.is_floating_point():
            bad = ((y < 0) | (y >= self.num_classes)).nonzero()
            if len(bad):
                i = int(bad[0])
                raise ValueError(
                    f"sample {i}'s target {int(y[i])} is not a class index in [0, num_classes={self.num_classes})"
                )
        rank, dims = x.ndim - 1, self.cutmix_dims
        if mixing and self.cutmix_on and (-dims[0] > rank or 0 in [x.shape[d] for d in dims]):
            shape = tuple(x.shape[1:])
            if dims == (-2, -1):
                raise ValueError(
                    "CutMix needs samples with two spatial dimensions (..., H, W), both non-empty (or other "
                    f"dimensions named by cutmix_dims), got samples of shape {shape}"
                )
            if -dims[0] > rank:
                raise ValueError(
                    f"cutmix_dims={dims} reaches dimension {dims[0]}, but the samples have shape {shape} "
                    f"({rank} dimensions); name dimensions within the samples' rank"
                )
            raise ValueError(f"CutMix cuts the dimensions cutmix_dims={dims}, which must be non-empty, got {shape}")
        if self.channel_dim is not None and -self.channel_dim > rank:
            raise ValueError(
                f"channel_dim={self.channel_dim} is outside the samples' shape {tuple(x.shape[1:])} ({rank} dimensions)"
            )

    def draw_args(self) -> dict[str, Any]:
        """The keyword arguments of [`draw_params`][mixup_collate.params.draw_params] these settings give."""
        names = ("alpha", "cutmix_alpha", "cutmix_minmax", "switch_prob", "prob", "fold", "per_sample", "cycle")
        return {name: getattr(self, name) for name in (*names, "correct_lam", "cutmix_dims")}

    def __getstate__(self) -> dict[str, Any]:
        return self.items()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.items() == other.items()

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self.items().items())})"


class Knob:
    """An attribute of the collate that reads and writes its ``Settings`` (validated on assignment)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.__doc__ = f"The ``{name}`` setting (validated when assigned)."

    def __get__(self, collate: Any, owner: type | None = None) -> Any:
        return self if collate is None else getattr(collate.settings, self.name)

    def __set__(self, collate: Any, value: Any) -> None:
        setattr(collate.settings, self.name, value)
