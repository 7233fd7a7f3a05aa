"""What the DataLoader yields: a finished :class:`MixedBatch`, or a :class:`PendingBatch` from a worker.

A worker may not touch the training device, so it hands the main process a ``PendingBatch``
holding the stacked CPU tensors. The main process finishes it (move to the device, draw ``lam``
and the permutation, mix) the first time it is unpacked, indexed or read. Where an accelerator is
present and ``pin_memory=True``, the DataLoader's pin-memory thread calls :meth:`PendingBatch.pin_memory`
first, so the host-to-device copy starts from page-locked memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from torch import Tensor

if TYPE_CHECKING:
    from .collate import MixupCollate
    from .stack import Stacked

__all__ = ["MixedBatch", "PendingBatch"]


class _Fields(NamedTuple):
    x: Tensor
    y_a: Tensor
    y_b: Tensor
    lam: Tensor


class MixedBatch(_Fields):
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

    def __new__(
        cls, x: Tensor, y_a: Tensor, y_b: Tensor, lam: Tensor, perm: Tensor | None = None, extras: dict | None = None
    ) -> MixedBatch:
        self = super().__new__(cls, x, y_a, y_b, lam)
        self.perm = perm
        self.extras = {} if extras is None else extras
        return self

    def pin_memory(self) -> MixedBatch:
        """Already on its device: the DataLoader's pinning leaves it as it is."""
        return self


class PendingBatch:
    """A stacked batch from a worker, finished into a :class:`MixedBatch` in the main process on first use."""

    def __init__(self, collate: MixupCollate, stacked: Stacked) -> None:
        self._collate = collate
        self._stacked: Stacked | None = stacked
        self._batch: MixedBatch | None = None

    def pin_memory(self) -> PendingBatch:
        """Called by the DataLoader's pin-memory thread (main process): page-lock the CPU tensors."""
        if self._stacked is not None:
            self._collate.pin(self._stacked)
        return self

    def finish(self) -> MixedBatch:
        """Move, draw and mix (once); later calls return the same batch."""
        if self._batch is None:
            self._batch = self._collate.finish(self._stacked, from_worker=True)
            self._stacked = None
        return self._batch

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.finish())

    def __getitem__(self, index: int | slice) -> Any:
        return self.finish()[index]

    def __len__(self) -> int:
        return 4

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.finish(), name)

    def __repr__(self) -> str:
        state = "finished" if self._batch is not None else "pending"
        return f"PendingBatch({state})"
