"""The batches: stacked on the CPU (``Stacked``), and finished on the training device as named tuples with the
partner indices and extras attached.

``MixedBatch`` is the default ``(x, y_a, y_b, lam)``; ``SoftTargetBatch`` is the ``(x, target)`` pair
that timm's and torchvision's training loops expect (``soft_targets=True``). Both carry ``.perm`` and
``.extras`` outside the tuple, so unpacking them gives exactly the training step's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["DetectionBatch", "MixedBatch", "SoftTargetBatch", "Stacked", "to_device"]


@dataclass
class Stacked:
    """A stacked, unmixed batch on the CPU.

    Attributes:
        x: ``(B, *S)`` inputs, one contiguous buffer.
        y: ``(B,)`` int64 class indices or ``(B, *K)`` float targets; with dense targets ``(B, [K,] H, W)``
            masks (any integer dtype) or float maps; with box targets a
            [`PackedTargets`][mixup_collate.detection.PackedTargets].
        extras: the samples' other fields, collated as ``default_collate`` would: keyed by name for
            dict samples, by position (2, 3, ...) for tuple samples.
        value_range: ``(min, max)`` of float inputs, when asked for (measured where the batch is stacked).
    """

    x: Tensor
    y: Any
    extras: dict[Any, Any] = field(default_factory=dict)
    value_range: tuple[float, float] | None = None


def to_device(
    value: Any, device: torch.device | str | None, non_blocking: bool = False, dtype: torch.dtype | None = None
) -> Any:
    """Tensors (also inside dicts, lists, tuples and named tuples) moved to ``device``; anything else as it is.

    ``dtype`` converts floating tensors only (class indices and other integer tensors keep theirs), as
    ``nn.Module.to(dtype)`` does; ``device=None`` leaves every tensor where it is.
    """
    if isinstance(value, Tensor):
        return value.to(device, dtype if dtype is not None and value.is_floating_point() else None, non_blocking)
    if isinstance(value, _Attached):
        return value._moved(device, non_blocking, dtype)
    if isinstance(value, dict):
        return {k: to_device(v, device, non_blocking, dtype) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple: default_collate makes them
        return type(value)(*(to_device(v, device, non_blocking, dtype) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device, non_blocking, dtype) for v in value)
    return value


def _to_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[torch.device | None, torch.dtype | None, bool]:
    """``(device, dtype, non_blocking)`` from ``Tensor.to``'s forms: ``(device)``, ``(dtype)``, ``(device, dtype)``."""
    unknown = set(kwargs) - {"device", "dtype", "non_blocking"}
    if unknown:
        raise TypeError(f"a batch's .to() takes device, dtype and non_blocking, got {', '.join(sorted(unknown))}")
    device, dtype, non_blocking = kwargs.get("device"), kwargs.get("dtype"), kwargs.get("non_blocking", False)
    rest = list(args)
    if rest and not isinstance(rest[0], torch.dtype):
        if device is not None:
            raise TypeError("a batch's .to() got the device twice (positionally and as device=)")
        device = rest.pop(0)
    if rest and isinstance(rest[0], torch.dtype):
        if dtype is not None:
            raise TypeError("a batch's .to() got the dtype twice (positionally and as dtype=)")
        dtype = rest.pop(0)
    if rest and isinstance(rest[0], bool) and "non_blocking" not in kwargs:
        non_blocking = rest.pop(0)
    if rest:
        raise TypeError(f"a batch's .to() takes (device), (dtype) or (device, dtype), got arguments {args!r}")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"a batch converts to a floating dtype only (its floating tensors), got dtype={dtype!r}")
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise TypeError(
                f"a batch's .to() needs a device (a torch.device, 'cuda:0', 'cpu', ...), got device={device!r}"
            ) from error
    return device, dtype, bool(non_blocking)


class _Attached:
    """What both batch tuples share: attributes carried beside the tuple, and moving everything at once."""

    __slots__ = ()
    attached: tuple[str, ...] = ()

    def to(self, *args: Any, **kwargs: Any) -> Any:
        """The same batch moved and/or converted: ``.to(device)``, ``.to(dtype)``, ``.to(device, dtype)``, keywords too.

        The device applies to every tensor (the tuple's, the attached ones and those in ``extras``);
        the dtype to floating tensors only, and never to ``lam``, which stays float32: class indices
        and ``perm`` keep their integer dtype, and the loss weights stay exact.
        """
        device, dtype, non_blocking = _to_arguments(args, kwargs)
        return self._moved(device, non_blocking, dtype)

    def _moved(self, device: torch.device | None, non_blocking: bool, dtype: torch.dtype | None) -> Any:
        def move(name: str, value: Any) -> Any:
            return to_device(value, device, non_blocking, None if name == "lam" else dtype)

        fields = [move(name, value) for name, value in zip(self._fields, self)]
        attached = {name: move(name, getattr(self, name)) for name in self.attached}
        return type(self)(*fields, **attached)

    def pin_memory(self) -> Any:
        """Already on its device: the DataLoader's pinning leaves it as it is."""
        return self


class _MixedFields(NamedTuple):
    x: Tensor
    y_a: Tensor
    y_b: Tensor
    lam: Tensor


class MixedBatch(_MixedFields, _Attached):
    """The named tuple ``(x, y_a, y_b, lam)``, all on the training device.

    Attributes:
        x: ``(B, *S)`` mixed inputs (``(B, 2, *S)`` pairs with ``stack_x``).
        y_a: ``(B,)`` class indices or ``(B, *K)`` float targets of the unshuffled samples.
        y_b: targets of each sample's partner, ``y_a[perm]`` (equal to ``y_a`` with ``stack_y=False``).
        lam: ``(B,)`` float32 weight of ``y_a``; ``1 - lam`` weighs ``y_b``.
        perm: ``(B,)`` int64 partner indices (not part of the tuple).
        extras: the samples' other fields, as ``default_collate`` builds them (not part of the tuple).
    """

    perm: Tensor
    extras: dict[Any, Any]
    attached = ("perm", "extras")

    def __new__(
        cls, x: Tensor, y_a: Tensor, y_b: Tensor, lam: Tensor, perm: Tensor | None = None, extras: dict | None = None
    ) -> MixedBatch:
        self = super().__new__(cls, x, y_a, y_b, lam)
        self.perm = perm
        self.extras = {} if extras is None else extras
        return self


class _WithLam(_Attached):
    """A batch that carries ``lam`` beside its tuple (not one of its fields), with ``perm`` and ``extras``."""

    __slots__ = ()
    attached = ("lam", "perm", "extras")
    lam: Tensor
    perm: Tensor
    extras: dict[Any, Any]

    def __new__(cls, *fields: Any, lam: Tensor | None = None, perm: Tensor | None = None, extras: dict | None = None):
        self = super().__new__(cls, *fields)
        self.lam = lam
        self.perm = perm
        self.extras = {} if extras is None else extras
        return self


class _SoftFields(NamedTuple):
    x: Tensor
    target: Tensor


class SoftTargetBatch(_WithLam, _SoftFields):
    """The named tuple ``(x, target)`` with dense mixed targets, all on the training device.

    Attributes:
        x: ``(B, *S)`` mixed inputs.
        target: ``(B, num_classes)`` float, ``lam * s(onehot(y_a)) + (1 - lam) * s(onehot(y_b))`` with
            label smoothing ``s``; rows sum to one for class-index targets.
        lam: ``(B,)`` float32 weight of each sample's own target (not part of the tuple).
        perm: ``(B,)`` int64 partner indices (not part of the tuple).
        extras: the samples' other fields (not part of the tuple).
    """


class _DetectionFields(NamedTuple):
    x: Tensor
    targets: list


class DetectionBatch(_WithLam, _DetectionFields):
    """The named tuple ``(x, targets)`` of a detection batch (``box_targets=True``), all on the training device.

    Attributes:
        x: ``(B, C, H, W)`` mixed images.
        targets: ``B`` dicts in torchvision's form: ``boxes`` float32 XYXY, ``labels``, ``masks`` and the other
            per-box fields of the boxes the mixed image shows, ``weights`` float32 one per box, and the sample's
            own per-image fields.
        lam: ``(B,)`` float32 weight of each sample's own image (not part of the tuple).
        perm: ``(B,)`` int64 partner indices (not part of the tuple).
        extras: the samples' other fields (not part of the tuple).
    """
