"""What the DataLoader yields: a batch stacked on the CPU that is drawn and mixed at its first use.

The data's path, whatever ``num_workers`` is:

1. ``MixupCollate.__call__`` stacks the samples where the DataLoader runs it (a worker process when
   ``num_workers > 0``) and returns a [`PendingBatch`][mixup_collate.PendingBatch] holding the CPU tensors.
2. A worker's batch reaches the main process by pickle. It names its collate by a key, and the main
   process finds the collate registered under that key (``register_owner``): the one that owns
   the random stream. That is the only thing the key is for; a copied or unpickled collate is an
   ordinary, independent object with a key of its own.
3. The first time the training loop uses the batch (unpacks, indexes or reads it, or calls ``finish()``
   or a pytree function on it), the owner draws the batch's parameters from its stream and mixes on
   the device (the one a framework's ``.to()`` named, if any: moving a batch is not using it). So
   draws follow the order in which the loop first uses batches, the same for any ``num_workers``,
   ``pin_memory`` or start method; a batch skipped unused consumes no draw.
4. Anywhere but in a worker, a copy or a pickle of a pending batch is a copy of the finished batch,
   finished first under the batch's lock: a copy is always the same batch and never draws again.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, Union
from uuid import uuid4
from weakref import WeakValueDictionary

import torch
from torch.utils import _pytree as pytree
from torch.utils.data import get_worker_info

from .batch import MixedBatch, SoftTargetBatch, _to_arguments
from .finish import finishing, pin

if TYPE_CHECKING:
    from .batch import Stacked
    from .params import MixParams

__all__ = ["PendingBatch", "register_owner"]

Batch = Union[MixedBatch, SoftTargetBatch]


class Owner(Protocol):
    """The collate that finishes a pending batch: draws its parameters, then applies them."""

    key: str  # what a batch from a worker names to find this owner (see register_owner)

    def draw(self, stacked: Stacked) -> MixParams: ...

    def apply(
        self, stacked: Stacked, params: MixParams, device: torch.device | None = None, *, from_worker: bool = False
    ) -> Batch: ...


# The collates of this process, by key; a batch coming back from a worker looks its owner up here.
_OWNERS: WeakValueDictionary[str, Owner] = WeakValueDictionary()


def register_owner(owner: Owner, key: str | None = None) -> str:
    """Register ``owner`` under ``key`` (kept when free in this process, as in a fresh worker) or a new key."""
    if key is None or key in _OWNERS:
        key = uuid4().hex
    _OWNERS[key] = owner
    return key


def _finished(batch: Batch) -> PendingBatch:
    pending = PendingBatch(None, None, len(batch))
    pending._batch = batch
    return pending


def _arrive(key: str, stacked: Stacked, size: int) -> PendingBatch:
    """Unpickle a pending batch coming back from a DataLoader worker: its owner is this process's collate."""
    owner = _OWNERS.get(key)
    if owner is None:
        raise RuntimeError(
            "a pending mixup batch was unpickled in a process where the MixupCollate that made it does not exist. "
            "Pending batches travel only from a DataLoader worker to the process that owns the collate (keep the "
            "collate alive while its loader runs); to send a batch anywhere else (a queue, torch.save, another "
            "process), pickle it in the main process, which finishes it first"
        )
    return PendingBatch(owner, stacked, size, from_worker=True)


class PendingBatch:
    """A stacked CPU batch that becomes a [`MixedBatch`][mixup_collate.MixedBatch] (or
    [`SoftTargetBatch`][mixup_collate.SoftTargetBatch]) at first use.

    It unpacks, indexes and reads like the finished batch (``x, y_a, y_b, lam = batch``,
    ``batch[0]``, ``batch.lam``, ``batch.perm``, ``batch.extras``), and ``torch.utils._pytree`` sees the
    finished batch's tensors. It is not itself a tuple: [`finish`][mixup_collate.PendingBatch.finish] returns the named
    tuple, and [`to`][mixup_collate.PendingBatch.to] (what Lightning and accelerate call) names the device to mix it on.
    """

    __slots__ = ("_batch", "_device", "_from_worker", "_lock", "_owner", "_params", "_size", "_stacked")

    def __init__(self, owner: Owner | None, stacked: Stacked | None, size: int, *, from_worker: bool = False) -> None:
        self._owner = owner
        self._stacked = stacked
        self._size = size
        self._from_worker = from_worker
        self._device: torch.device | None = None
        self._params: MixParams | None = None  # kept if the mix fails, so finishing again reuses the draws
        self._lock = threading.Lock()  # another thread finishing it (or copying it) waits for the same batch
        self._batch: Batch | None = None

    def finish(self, device: torch.device | str | None = None) -> Batch:
        """Draw and mix once, in the main process; later calls return the same batch (moved to ``device`` if given).

        The batch is mixed on ``device``, else on the device a framework asked for with
        [`to`][mixup_collate.PendingBatch.to], else on the collate's. Draws are kept apart from the mix: if the mix
        fails (or is interrupted), finishing again uses the same draws on the same, untouched input. Ctrl-C waits until
        the batch is complete.
        """
        device = self._device if device is None else torch.device(device)
        if self._batch is None:
            if get_worker_info() is not None:
                raise RuntimeError("MixupCollate finishes batches in the main process only, never in a worker")
            with self._lock:
                if self._batch is None:
                    with finishing():  # Ctrl-C waits until the batch is complete; inference mode off
                        if self._params is None:
                            self._params = self._owner.draw(self._stacked)
                        batch = self._owner.apply(self._stacked, self._params, device, from_worker=self._from_worker)
                        self._batch, self._stacked, self._params = batch, None, None
                    return self._batch
        if device is not None and self._batch[0].device != device:
            return self._batch.to(device)
        return self._batch

    def to(self, *args: Any, **kwargs: Any) -> PendingBatch | Batch:
        """Send the batch to a device: ``to(device, non_blocking=False)``, what Lightning and accelerate call.

        A pending batch stays pending (moving it is not using it: a batch a framework moves and then
        skips draws nothing) and is mixed directly on that device at its first use; a finished batch
        is moved. The dtype is the collate's (``MixupCollate(dtype=...)``): a dtype here is refused.
        """
        device, non_blocking = _device_arguments(args, kwargs)
        if self._batch is not None:
            return self._batch.to(device, non_blocking=non_blocking)
        self._device = device
        return self

    def pin_memory(self) -> PendingBatch:
        """Called by the DataLoader's pinning (main process): page-lock the CPU tensors for a CUDA target."""
        if self._stacked is not None:
            pin(self._stacked)
        return self

    def __iter__(self) -> Iterator[Any]:
        return iter(self.finish())

    def __getitem__(self, index: int | slice) -> Any:
        return self.finish()[index]

    def __len__(self) -> int:
        return self._size

    x = property(lambda self: self.finish().x, doc="The mixed inputs (finishes the batch).")
    y_a = property(lambda self: self.finish().y_a, doc="The samples' own targets (finishes the batch).")
    y_b = property(lambda self: self.finish().y_b, doc="The partners' targets (finishes the batch).")
    target = property(lambda self: self.finish().target, doc="Dense mixed targets, soft_targets=True only.")
    targets = property(lambda self: self.finish().targets, doc="The detection targets, box_targets=True only.")
    lam = property(lambda self: self.finish().lam, doc="Weight of each sample's own target (finishes the batch).")
    perm = property(lambda self: self.finish().perm, doc="Partner indices (finishes the batch).")
    extras = property(lambda self: self.finish().extras, doc="The samples' other fields (finishes the batch).")

    def __reduce__(self) -> tuple[Any, ...]:
        """In a worker, the stacked batch (drawn and mixed in the main process); elsewhere the finished batch."""
        if self._batch is None and get_worker_info() is not None:
            return _arrive, (self._owner.key, self._stacked, self._size)
        return _finished, (self.finish(),)

    def __copy__(self) -> PendingBatch:
        """The batch itself: like a tuple, a pending batch is one value (finishing either is finishing both)."""
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> PendingBatch:
        """A copy of the finished batch, finished under this batch's lock: the same batch, never another draw."""
        return _finished(copy.deepcopy(self.finish(), memo))

    def __repr__(self) -> str:
        return f"PendingBatch({'finished' if self._batch is not None else 'pending'}, {self._size} fields)"


def _device_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[torch.device, bool]:
    """``(device, non_blocking)`` from ``to``'s arguments (``Tensor.to``'s forms), refusing a dtype by name."""
    if any(isinstance(a, torch.dtype) for a in (*args, *kwargs.values())) or "dtype" in kwargs:
        raise TypeError(
            "a pending mixup batch moves between devices only; its dtype is set by MixupCollate(dtype=...) "
            "(a finished batch, batch.finish(), converts its floating fields with .to(dtype))"
        )
    if not isinstance(kwargs.get("non_blocking", False), bool):
        raise TypeError(f"non_blocking must be True or False, got {kwargs['non_blocking']!r}")
    device, _, non_blocking = _to_arguments(args, kwargs)
    if device is None:
        raise TypeError(f"PendingBatch.to needs a device (a torch.device, 'cuda:0', 'cpu', ...), got {args!r}")
    return device, non_blocking


def _flatten(pending: PendingBatch) -> tuple[list[Any], Any]:
    batch = pending.finish()
    return [*batch, *(getattr(batch, name) for name in batch.attached)], (type(batch), len(batch))


def _unflatten(children: Any, context: Any) -> Batch:
    cls, size = context
    children = list(children)
    return cls(*children[:size], **dict(zip(cls.attached, children[size:])))


pytree.register_pytree_node(
    PendingBatch, _flatten, _unflatten, serialized_type_name=f"{__name__}.{PendingBatch.__qualname__}"
)
