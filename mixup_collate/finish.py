"""Finishing a batch: a stacked CPU batch and its drawn parameters become the batch on the device.

Everything between the draw and the training step lives here: moving the tensors (page-locked for
an asynchronous copy to CUDA), the targets (``y_b``, mixed float targets, soft targets), the inputs
(``plan_inputs`` decides once per batch: pair, mix or transform, the dtype, in place or not; on a CUDA
device with Triton one fused kernel does it, elsewhere ``mix_inputs``), the caches a collate keeps from
batch to batch (affine constants, the scratch buffer), and the all-or-nothing guard:

* Ctrl-C waits until the batch is complete (``finishing``), so a batch is drawn and mixed whole
  or not at all;
* when the mix overwrites the stacked buffer in place, the buffer is spent first, so a batch whose
  mix fails half-way is never mixed twice (finishing it again raises an error that says why);
* a batch from a DataLoader worker is mixed on one CPU thread, since the workers own the host cores.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Union

import torch
from torch import Tensor

from . import fused
from .batch import DetectionBatch, MixedBatch, SoftTargetBatch, Stacked, to_device
from .detection import mix_box_targets
from .fused import DeviceDraws
from .mix import Scratch, mix_inputs, mix_maps, mix_targets, output_dtype, pixel_lam, plan_inputs, soft_targets
from .params import MixParams
from .settings import Settings

try:  # the C module behind `signal`: the same calls without the enum conversions, a few microseconds per batch
    from _signal import SIG_DFL, SIGINT
    from _signal import signal as set_handler
except ImportError:  # pragma: no cover - other Python implementations
    from signal import SIG_DFL, SIGINT
    from signal import signal as set_handler

__all__ = ["Finisher", "finishing", "move", "pin"]

Batch = Union[MixedBatch, SoftTargetBatch, DetectionBatch]

SPENT = (
    "this batch's mix failed after it began overwriting the stacked inputs in place, so it cannot be "
    "finished again; skip the batch (the error that interrupted the mix was raised before this one)"
)


def move(t: Tensor, device: torch.device) -> Tensor:
    """``t`` on ``device``: itself if it is there, else an asynchronous copy (from page-locked memory for CUDA)."""
    if t.device == device:
        return t
    if device.type == "cuda" and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def pin(stacked: Stacked) -> None:
    """Page-lock the stacked tensors for an asynchronous copy (the DataLoader's ``pin_memory``, main process)."""
    if torch.cuda.is_available():
        if not stacked.x.is_pinned():
            stacked.x = stacked.x.pin_memory()
        if isinstance(stacked.y, Tensor) and not stacked.y.is_pinned():
            stacked.y = stacked.y.pin_memory()


_THREADS_LOCK = threading.Lock()
_one_thread_users = 0
_threads_before = 0


@contextmanager
def one_host_thread() -> Iterator[None]:
    """Run torch's CPU ops on one thread for a moment (restored when the last thread using it leaves)."""
    global _one_thread_users, _threads_before
    with _THREADS_LOCK:
        if _one_thread_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _one_thread_users += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _one_thread_users -= 1
            if _one_thread_users == 0:
                torch.set_num_threads(_threads_before)


class _SigintDeferred:
    """Hold Ctrl-C back until the block ends (main thread only), then deliver it as the process would have."""

    def __enter__(self) -> None:
        self.active = threading.current_thread() is threading.main_thread()
        self.caught: list[tuple[int, Any]] = []
        if self.active:
            self.previous = set_handler(SIGINT, lambda signum, frame: self.caught.append((signum, frame)))

    def __exit__(self, *exc: object) -> None:
        if not self.active:
            return
        set_handler(SIGINT, SIG_DFL if self.previous is None else self.previous)
        if self.caught:
            if callable(self.previous):
                self.previous(*self.caught[0])
            elif self.previous == SIG_DFL:
                raise KeyboardInterrupt


@contextmanager
def finishing() -> Iterator[None]:
    """The guard around drawing and applying one batch: Ctrl-C deferred, inference mode off.

    A batch first used under ``torch.inference_mode()`` must still be trainable later, so its tensors
    are made outside inference mode.
    """
    with _SigintDeferred():
        if torch.is_inference_mode_enabled():
            with torch.inference_mode(False):
                yield
        else:
            yield


class Finisher:
    """What a collate keeps from batch to batch to finish its batches: affine constants, scratch, one warning."""

    def __init__(self) -> None:
        self._constants: dict[tuple, tuple[Tensor | float, Tensor | None]] = {}
        self._scratch = Scratch()
        self._range_warned = False
        self._dense_warned = False

    def apply(
        self, stacked: Stacked, params: MixParams, settings: Settings, device: torch.device, *, from_worker: bool
    ) -> Batch:
        """Move ``stacked`` to ``device`` and mix it with ``params`` as ``settings`` say.

        ``from_worker``: the batch came from a DataLoader worker; on the CPU the workers then keep the
        host cores busy and torch's intra-op threads of the main process would compete with them, so
        the mix runs on one thread.
        """
        if from_worker and device.type == "cpu":
            with one_host_thread():
                return self._apply(stacked, params, settings, device)
        return self._apply(stacked, params, settings, device)

    def _apply(self, stacked: Stacked, params: MixParams, s: Settings, device: torch.device) -> Batch:
        if stacked.x is None:
            raise RuntimeError(SPENT)
        self._warn_if_normalised_twice(stacked, s)
        x = move(stacked.x, device)
        draws = self._fused_draws(stacked, params, s, device)
        perm, lam = (move(params.perm, device), move(params.lam, device)) if draws is None else draws[:2]
        extras = to_device(stacked.extras, device, non_blocking=True) if s.extras_to_device else stacked.extras
        if s.box_targets:  # the box arithmetic on the host, where the counts are
            targets = mix_box_targets(
                stacked.y, params.perm, params.lam, params.mode, params.boxes, device, s.box_min_visibility
            )
            x = self._inputs(x, stacked, params, perm, lam, s, draws)
            return DetectionBatch(x, targets, lam=lam, perm=perm, extras=extras)
        y = move(stacked.y, device) if draws is None or draws.targets is None else draws.targets[0]
        weights = lam  # of y_a: per sample, or per pixel for dense targets
        sizes = tuple(x.shape[d] for d in s.cutmix_dims) if s.dense_targets else ()  # the cut dims, for dense ones
        dense = None if draws is None or not s.dense_targets else fused.finish_dense(y, draws, sizes, not s.stack_y)
        if dense is not None:  # one launch: the per-pixel lam and both targets
            *targets, weights = dense
        elif draws is not None and draws.targets is not None:
            targets = draws.targets  # crossed with the draws, y[perm] taken on the host
        else:
            if s.dense_targets:
                mode, boxes = (params.mode, params.boxes) if draws is None else (draws.mode, draws.boxes)
                weights = pixel_lam(lam, mode, boxes, *sizes)
            else:
                self._warn_if_dense_looking(x, y, s)
            targets = self._targets(y, perm, weights, params.mixes, s)
        x = self._inputs(x, stacked, params, perm, lam, s, draws)
        if s.soft_targets:
            return SoftTargetBatch(x, *targets, lam=lam, perm=perm, extras=extras)
        return MixedBatch(x, *targets, weights, perm=perm, extras=extras)

    @staticmethod
    def _fused_draws(stacked: Stacked, params: MixParams, s: Settings, device: torch.device) -> DeviceDraws | None:
        """The draws on ``device`` in one copy, where the fused kernel finishes the inputs (else ``None``).

        Class indices cross with them, ``y[perm]`` taken on the host, so the targets need no launch.
        """
        x, y = stacked.x, stacked.y
        if s.stack_x or not fused.usable(device, x.dtype, output_dtype(x, s.dtype), params.dims):
            return None
        indices = isinstance(y, Tensor) and y.dtype == torch.int64 and y.ndim == 1
        packs_y = indices and s.stack_y and not (s.soft_targets or s.dense_targets or s.box_targets)
        return fused.move_draws(
            params.perm, params.lam, params.mode, params.boxes, y if packs_y else None, lambda t: move(t, device)
        )

    def _inputs(
        self,
        x: Tensor,
        stacked: Stacked,
        params: MixParams,
        perm: Tensor,
        lam: Tensor,
        s: Settings,
        draws: DeviceDraws | None = None,
    ) -> Tensor:
        """The batch's inputs, mixed (or converted) as planned; called last, since nothing after it may fail."""
        plan = plan_inputs(
            x, mixed=params.mixes, stack_x=s.stack_x, dtype=s.dtype, mean=s.mean, std=s.std,
            channels_last=s.channels_last, overwrite_input=True, constants=self._constants, channel_dim=s.channel_dim,
        )  # fmt: skip
        if draws is not None and plan.kind != "pair":  # one launch: mix, cut, convert, normalise
            return fused.finish_inputs(
                x, draws, params.dims, plan.dtype, plan.scale, plan.shift, s.channel_dim, s.channels_last
            )
        # A mix that overwrites the stacked buffer spends it first, so a batch whose mix fails half-way is
        # refused (SPENT) rather than mixed twice.
        if plan.in_place and x is stacked.x:
            stacked.x = None
        mode = None if params.blends_all else params.mode  # None: every sample blended, the Mixup kernel
        return mix_inputs(x, plan, perm, lam, mode, params.boxes, params.dims, self._scratch)

    @staticmethod
    def _targets(y: Tensor, perm: Tensor, lam: Tensor, mixes: bool, s: Settings) -> tuple[Tensor, ...]:
        if s.dense_targets and not y.is_floating_point():  # small masks cross as they are, gathered while small
            return y.long(), y.index_select(0, perm).long()
        if s.soft_targets:
            return (soft_targets(y, perm, lam, s.num_classes, s.label_smoothing),)
        if not s.stack_y:
            if not mixes:
                return y, y
            y_a = mix_maps(y, perm, lam) if s.dense_targets else mix_targets(y, perm, lam)
            return y_a, y_a
        return y, y.index_select(0, perm)

    def _warn_if_dense_looking(self, x: Tensor, y: Tensor, s: Settings) -> None:
        """Warn once if CutMix meets float targets shaped like per-pixel maps but treats them as one vector."""
        if self._dense_warned or not s.cutmix_on or not y.is_floating_point() or y.ndim < 3 or x.ndim < 3:
            return
        if tuple(y.shape[-2:]) == tuple(x.shape[-2:]):
            self._dense_warned = True
            warnings.warn(
                f"the float targets {tuple(y.shape)} end with the inputs' (H, W) = {tuple(x.shape[-2:])}: if they "
                "are per-pixel maps, pass MixupCollate(..., dense_targets=True), or CutMix pastes the box into the "
                "image but not into the map, and lam is one number per sample",
                stacklevel=2,
            )

    def _warn_if_normalised_twice(self, stacked: Stacked, s: Settings) -> None:
        """Warn once if ``mean``/``std`` meet float inputs outside ``[0, 1]`` (likely normalised already).

        Every batch is looked at until one is: the range is measured where the batch is stacked.
        """
        if self._range_warned or s.mean is None or stacked.value_range is None:
            return
        low, high = stacked.value_range
        if low < 0 or high > 1:
            self._range_warned = True
            warnings.warn(
                f"MixupCollate(mean=..., std=...) normalises, but the float inputs already span "
                f"[{low:.3g}, {high:.3g}], outside [0, 1]: are they normalised twice (e.g. by "
                "v2.Normalize in the dataset)? Drop one of the two.",
                stacklevel=2,
            )
