"""``MixupCollate``: the ``collate_fn`` that stacks samples on the CPU and mixes them on the device."""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import torch
from torch import Tensor
from torch.utils.data import get_worker_info

from . import mix as M
from .batch import MixedBatch, PendingBatch
from .sampling import sample_lam, sample_perm
from .stack import Stacked, stack_samples
from .stream import RandomStream

__all__ = ["MixupCollate"]

# The live MixupCollate objects of this process, by id. A collate pickled into a worker and back
# (inside a PendingBatch) resolves to the original here, so the main process's stream is used.
_LIVE: weakref.WeakValueDictionary[str, MixupCollate] = weakref.WeakValueDictionary()


@contextmanager
def _one_host_thread() -> Iterator[None]:
    """Run torch's CPU ops on one thread for a moment (see :meth:`MixupCollate.finish`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _restore(uid: str, config: dict[str, Any]) -> MixupCollate:
    live = _LIVE.get(uid)
    if live is None:
        live = MixupCollate(**config)
        live._uid = uid
        _LIVE[uid] = live
    return live


class MixupCollate:
    """A picklable ``collate_fn`` that yields mixup batches ``(x, y_a, y_b, lam)`` on the training device.

    ``DataLoader(ds, batch_size=B, collate_fn=MixupCollate(alpha=0.4))`` yields a :class:`MixedBatch`:
    ``x`` ``(B, *S)`` with ``x[i] = lam[i] * x_i + (1 - lam[i]) * x_perm[i]``, ``y_a`` the targets,
    ``y_b = y_a[perm]`` and ``lam`` float32 ``(B,)``. Samples are stacked where the DataLoader calls
    the collate (a worker process when ``num_workers > 0``); the move to the device, the random draws
    and the mix always happen in the main process.

    Args:
        alpha: Beta(alpha, alpha) concentration, > 0 (0.2-0.4 is usual for images).
        device: where batches are mixed and returned; ``None`` picks CUDA when available, else CPU.
        enabled: ``False`` returns the same 4-tuple unmixed (``lam = 1``, ``y_b = y_a``) for evaluation.
        per_sample: one ``lam`` per sample (``True``) or one per batch.
        fold: replace ``lam`` by ``max(lam, 1 - lam)`` so the unshuffled sample dominates (no duplicate pairs).
        stack_x: return ``x`` unmixed as ``(B, 2, *S)`` pairs ``(x_i, x_perm[i])`` for models that mix inside.
        stack_y: ``False`` mixes float targets linearly: ``y_a = y_b = lam * y + (1 - lam) * y[perm]``.
        dtype: floating output dtype; ``None`` keeps float inputs' dtype and turns ``uint8`` into float32.
        mean, std: per-channel normalization applied on the device, in ``[0, 1]`` units for ``uint8`` images.
        channels_last: return 4-D inputs in ``torch.channels_last`` memory format.
        input_key, target_key: field names for dict samples.
        seed: fixes the random stream (independently per distributed rank).
        generator: a CPU ``torch.Generator`` to draw from instead of ``seed``.
    """

    def __init__(
        self,
        alpha: float = 0.4,
        *,
        device: torch.device | str | None = None,
        enabled: bool = True,
        per_sample: bool = True,
        fold: bool = True,
        stack_x: bool = False,
        stack_y: bool = True,
        dtype: torch.dtype | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        channels_last: bool = False,
        input_key: str = "image",
        target_key: str = "label",
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(
                f"alpha must be a finite number > 0 (Beta(alpha, alpha)), got alpha={alpha!r}; "
                "to turn mixing off, use enabled=False"
            )
        if (mean is None) != (std is None):
            raise ValueError("pass mean and std together (per-channel normalization), or neither")
        if mean is not None and len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} values but std has {len(std)}; give one per channel")
        if std is not None and any(not s > 0 for s in std):
            raise ValueError(f"std values must be > 0, got std={list(std)}")
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype (float32, bfloat16, float16, ...), got {dtype}")
        if stack_x and channels_last:
            raise ValueError("channels_last applies to (B, C, H, W) batches; stack_x returns (B, 2, C, H, W) pairs")
        self._config = dict(
            alpha=float(alpha), device=device, enabled=enabled, per_sample=per_sample, fold=fold,
            stack_x=stack_x, stack_y=stack_y, dtype=dtype, mean=mean, std=std, channels_last=channels_last,
            input_key=input_key, target_key=target_key, seed=seed, generator=generator,
        )  # fmt: skip
        self.alpha = float(alpha)
        self.enabled = enabled
        self.per_sample = per_sample
        self.fold = fold
        self.stack_x = stack_x
        self.stack_y = stack_y
        self.dtype = dtype
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]
        self.channels_last = channels_last
        self.input_key = input_key
        self.target_key = target_key
        self._device_arg = None if device is None else torch.device(device)
        self._device: torch.device | None = None
        self._affine_cache: dict[tuple, tuple[Tensor, Tensor]] = {}
        self._stream = RandomStream(seed, generator)
        self._uid = uuid4().hex
        _LIVE[self._uid] = self

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore, (self._uid, self._config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items() if k != "generator")
        return f"MixupCollate({args})"

    @property
    def device(self) -> torch.device:
        """The training device (resolved in the main process: a worker must never query CUDA)."""
        if self._device is None:
            if get_worker_info() is not None:
                raise RuntimeError("MixupCollate resolves its device in the main process only, never in a worker")
            if self._device_arg is not None:
                self._device = self._device_arg
            else:
                self._device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return self._device

    def __call__(self, samples: Sequence[Any]) -> MixedBatch | PendingBatch:
        """Stack ``samples``; in the main process also finish (move and mix), in a worker defer that."""
        in_worker = get_worker_info() is not None
        pinned = not in_worker and self.device.type == "cuda"
        stacked = stack_samples(
            samples, input_key=self.input_key, target_key=self.target_key, shared=in_worker, pinned=pinned
        )
        self._check_targets(stacked.y)
        return PendingBatch(self, stacked) if in_worker else self.finish(stacked)

    def _check_targets(self, y: Tensor) -> None:
        if self.enabled and not self.stack_y and not y.is_floating_point():
            raise TypeError(
                "stack_y=False mixes targets linearly and needs float targets (one-hot, multi-hot, "
                f"regression), but the targets are {y.dtype} class indices; one-hot them in the "
                "dataset or keep stack_y=True and use mixup_cross_entropy"
            )

    def pin(self, stacked: Stacked) -> None:
        """Page-lock the stacked tensors for an asynchronous copy to a CUDA device (main process only)."""
        if self.device.type == "cuda":
            if not stacked.x.is_pinned():
                stacked.x = stacked.x.pin_memory()
            if not stacked.y.is_pinned():
                stacked.y = stacked.y.pin_memory()

    def _to_device(self, t: Tensor) -> Tensor:
        if self.device.type == "cuda" and not t.is_pinned():
            t = t.pin_memory()
        return t.to(self.device, non_blocking=True)

    def _affine(self, x: Tensor) -> tuple[Tensor | float, Tensor | None]:
        """Per-channel ``(scale, shift)`` for the input conversion: ``uint8 -> [0, 1]`` and normalization."""
        unit = 1.0 / 255.0 if x.dtype == torch.uint8 else 1.0
        if self.mean is None:
            return unit, None
        channels = x.shape[1] if x.ndim >= 2 else None
        if channels != len(self.mean):
            raise ValueError(
                f"mean/std have {len(self.mean)} values but the inputs have shape {tuple(x.shape)} "
                f"({channels} channels in dim 1); give one value per channel"
            )
        view = (len(self.mean),) + (1,) * (x.ndim - 2)
        dtype = torch.promote_types(M._out_dtype(x, self.dtype), torch.float32)
        key = (view, dtype, unit)
        if key not in self._affine_cache:  # built and moved once, not per batch
            mean = torch.tensor(self.mean, dtype=dtype).view(view)
            std = torch.tensor(self.std, dtype=dtype).view(view)
            self._affine_cache[key] = (self._to_device(unit / std), self._to_device(-mean / std))
        return self._affine_cache[key]

    def _draw(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """``(perm, lam)`` on the device, drawn on the CPU from this collate's stream (no host sync)."""
        if not self.enabled:
            perm = torch.arange(batch_size)
            lam = torch.ones(batch_size, dtype=torch.float32)
        else:
            g = self._stream.generator
            perm = sample_perm(batch_size, generator=g)
            lam = sample_lam(batch_size, self.alpha, fold=self.fold, per_sample=self.per_sample, generator=g)
        return self._to_device(perm), self._to_device(lam)

    def finish(self, stacked: Stacked, *, from_worker: bool = False) -> MixedBatch:
        """Move a stacked batch to the device, draw ``perm`` and ``lam`` and mix (main process only).

        ``from_worker``: the batch came from a DataLoader worker. When the device is the CPU, the
        host cores are then busy in the workers, and torch's intra-op threads of the main process
        would compete with them (measured: 0.6-0.8x the throughput of plain loading, against
        1.0-1.6x on one thread; see the README's Performance section), so the mix runs on one thread.
        """
        if from_worker and self.device.type == "cpu":
            with _one_host_thread():
                return self._finish(stacked)
        return self._finish(stacked)

    def _finish(self, stacked: Stacked) -> MixedBatch:
        x = self._to_device(stacked.x)
        y = self._to_device(stacked.y)
        perm, lam = self._draw(x.shape[0])
        scale, shift = self._affine(x)
        # x is this collate's own buffer (stacked here, or copied to the device), so it may be reused.
        if self.stack_x:
            x = M.pair(x, perm, dtype=self.dtype, scale=scale, shift=shift)
        elif self.enabled:
            x = M.mix(
                x, perm, lam, dtype=self.dtype, scale=scale, shift=shift,
                channels_last=self.channels_last, overwrite_input=True,
            )  # fmt: skip
        else:
            x = M.transform(
                x, dtype=self.dtype, scale=scale, shift=shift, channels_last=self.channels_last, overwrite_input=True
            )
        if self.enabled and not self.stack_y:
            y_a = y_b = M.mix_targets(y, perm, lam)
        else:
            y_a, y_b = y, y.index_select(0, perm)
        return MixedBatch(x, y_a, y_b, lam, perm=perm, extras=stacked.extras)

    def state_dict(self) -> dict[str, Any]:
        """The random stream's state, to resume the same sequence of ``lam`` and permutations."""
        return self._stream.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream saved by :meth:`state_dict`."""
        self._stream.load_state_dict(state)
