"""The finished batches: named tuples on the training device, with the partner indices and extras attached.

``MixedBatch`` is the default ``(x, y_a, y_b, lam)``; ``SoftTargetBatch`` is the ``(x, target)`` pair
that timm's and torchvision's training loops expect (``soft_targets=True``). Both carry ``.perm`` and
``.extras`` outside the tuple, so unpacking them gives exactly the training step's inputs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["MixedBatch", "SoftTargetBatch", "to_device"]


def to_device(value: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """Tensors (also inside dicts, lists and tuples) moved to ``device``; anything else as it is."""
    if isinstance(value, Tensor):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, dict):
        return {k: to_device(v, device, non_blocking) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(to_device(v, device, non_blocking) for v in value)
    return value


class _Attached:
    """What both batch tuples share: attributes carried beside the tuple, and moving everything at once."""

    __slots__ = ()
    attached: tuple[str, ...] = ()

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Any:
        """The same batch on ``device``: the tuple's tensors, the attached ones and the tensors in ``extras``."""
        fields = [to_device(t, device, non_blocking) for t in self]
        attached = {name: to_device(getattr(self, name), device, non_blocking) for name in self.attached}
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


class _SoftFields(NamedTuple):
    x: Tensor
    target: Tensor


class SoftTargetBatch(_SoftFields, _Attached):
    """The named tuple ``(x, target)`` with dense mixed targets, all on the training device.

    Attributes:
        x: ``(B, *S)`` mixed inputs.
        target: ``(B, num_classes)`` float, ``lam * s(onehot(y_a)) + (1 - lam) * s(onehot(y_b))`` with
            label smoothing ``s``; rows sum to one for class-index targets.
        lam: ``(B,)`` float32 weight of each sample's own target (not part of the tuple).
        perm: ``(B,)`` int64 partner indices (not part of the tuple).
        extras: the samples' other fields (not part of the tuple).
    """

    lam: Tensor
    perm: Tensor
    extras: dict[Any, Any]
    attached = ("lam", "perm", "extras")

    def __new__(
        cls,
        x: Tensor,
        target: Tensor,
        lam: Tensor | None = None,
        perm: Tensor | None = None,
        extras: dict | None = None,
    ) -> SoftTargetBatch:
        self = super().__new__(cls, x, target)
        self.lam = lam
        self.perm = perm
        self.extras = {} if extras is None else extras
        return self
