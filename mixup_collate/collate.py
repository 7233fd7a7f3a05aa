"""``MixupCollate``: the ``collate_fn`` that stacks samples on the CPU and mixes them on the device.

It composes the pure pieces: :mod:`.stack` (where the DataLoader calls it, a worker or the main
process), then, at the batch's first use in the main process (:mod:`.pending`), :mod:`.params` draws
from the collate's :mod:`.stream` and :mod:`.mix` applies the draws on the device.
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from numbers import Integral, Real
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import get_worker_info

from .batch import MixedBatch, SoftTargetBatch, to_device
from .mix import Scratch, mix, mix_targets, output_dtype, overwrites, pair, soft_targets, transform
from .params import MixParams, draw_params
from .pending import PendingBatch, register_owner
from .sampling import check_concentration
from .stack import Stacked, stack_samples
from .stream import RandomStream

__all__ = ["MixupCollate", "resolve_device"]


@contextmanager
def _one_host_thread() -> Iterator[None]:
    """Run torch's CPU ops on one thread for a moment (see :meth:`MixupCollate.apply`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def resolve_device(device: torch.device | str | None = None) -> torch.device:
    """``device`` if given; else ``cuda:$LOCAL_RANK`` (torchrun), the current CUDA device, or the CPU, in that order.

    Call it in the main process only: asking for CUDA inside a DataLoader worker is what this library avoids.
    """
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        local_rank = os.environ.get("LOCAL_RANK")
        return torch.device("cuda", int(local_rank) if local_rank is not None else torch.cuda.current_device())
    return torch.device("cpu")


def _probability(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {name}={value!r}")
    return float(value)


def _concentration_or_off(value: object, name: str) -> float:
    """0 (off) or a valid Beta concentration."""
    if isinstance(value, Real) and not isinstance(value, bool) and value == 0:
        return 0.0
    return check_concentration(value, name)


def _channel_values(values: object, name: str) -> list[float] | None:
    """``mean``/``std``: ``None``, one number for every channel, or one per channel; all finite."""
    if values is None:
        return None
    if isinstance(values, Tensor):
        values = values.flatten().tolist()
    items = [values] if isinstance(values, Real) else list(values)
    if not items or any(isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) for v in items):
        raise ValueError(f"{name} must be a finite number or a sequence of finite numbers, got {name}={values!r}")
    return [float(v) for v in items]


def _float_dtype(dtype: object) -> torch.dtype | None:
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."), dtype)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(
            f"dtype must be a floating dtype (torch.float32, torch.bfloat16, 'float16', ...), got dtype={dtype!r}"
        )
    return dtype


def _to_device(t: Tensor, device: torch.device) -> Tensor:
    if t.device == device:
        return t
    if device.type == "cuda" and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


class MixupCollate:
    """A ``collate_fn`` that yields Mixup/CutMix batches ``(x, y_a, y_b, lam)`` on the training device.

    ``DataLoader(ds, batch_size=B, collate_fn=MixupCollate(alpha=0.4, device=device))`` yields batches
    that unpack as ``x, y_a, y_b, lam``: ``x`` ``(B, *S)`` with ``x[i] = lam[i] * x_i + (1 - lam[i]) * x_perm[i]``
    (or ``x_i`` with a box pasted from ``x_perm[i]`` under CutMix), ``y_a`` the targets, ``y_b = y_a[perm]``
    and ``lam`` float32 ``(B,)``, the weight of ``y_a``. Samples are stacked where the DataLoader calls the
    collate (a worker process when ``num_workers > 0``); the draws and the mix happen in the main process,
    on ``device``, the first time the loop uses the batch (see :class:`~mixup_collate.pending.PendingBatch`).

    Args:
        alpha: Mixup's Beta(alpha, alpha) concentration; 0 turns Mixup off (with CutMix on).
        cutmix_alpha: CutMix's Beta concentration for the box area; 0 (default) turns CutMix off.
        cutmix_minmax: ``(lo, hi)`` bounds of the CutMix box side ratios, drawn uniformly (instead of
            ``cutmix_alpha``); turns CutMix on.
        switch_prob: with both on, the chance that a sample uses CutMix rather than Mixup.
        prob: the chance that a sample (or, with ``per_sample=False``, the batch) is mixed at all.
        soft_targets: yield ``(x, target)`` with dense mixed targets ``(B, num_classes)`` instead.
        num_classes: the number of classes, for ``soft_targets``.
        label_smoothing: smoothing of the soft targets (the 4-tuple form leaves it to the loss).
        off_epoch: from this epoch on (see :meth:`set_epoch`) nothing is mixed.
        device: where batches are mixed and returned; ``None`` resolves, in the main process, to
            ``cuda:$LOCAL_RANK``, the current CUDA device, or the CPU (see :func:`resolve_device`).
        enabled: ``False`` returns the same structure unmixed (``lam = 1``, ``y_b = y_a``), for evaluation.
        per_sample: one draw per sample (``True``) or one per batch.
        fold: ``lam`` becomes ``max(lam, 1 - lam)``: every sample keeps at least half of itself.
        cycle: partners along one random cycle: no sample is its own partner, and for ``B >= 3`` no two
            samples are each other's partners (default: a uniform random permutation).
        stack_x: return ``x`` unmixed as ``(B, 2, *S)`` pairs ``(x_i, x_perm[i])`` for models that mix inside.
        stack_y: ``False`` mixes float targets linearly: ``y_a = y_b = lam * y + (1 - lam) * y[perm]``.
        dtype: floating output dtype; ``None`` keeps float inputs' dtype and turns ``uint8`` into float32.
        mean, std: per-channel normalization applied on the device, in ``[0, 1]`` units for ``uint8`` images.
        channels_last: return 4-D inputs in ``torch.channels_last`` memory format.
        input_key, target_key: field names for dict samples.
        extras_to_device: also move the tensors among the samples' other fields to ``device``.
        seed: fixes the random stream (independently per distributed rank and epoch).
        generator: a CPU ``torch.Generator`` to draw from instead of ``seed`` (used as is).

    Example::

        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> data = TensorDataset(torch.rand(10, 3, 8, 8), torch.arange(10) % 3)
        >>> loader = DataLoader(data, batch_size=5, collate_fn=MixupCollate(0.4, device="cpu", seed=0))
        >>> x, y_a, y_b, lam = next(iter(loader))
        >>> x.shape, y_a.tolist(), bool((lam >= 0.5).all())
        (torch.Size([5, 3, 8, 8]), [0, 1, 2, 0, 1], True)
    """

    def __init__(
        self,
        alpha: float = 0.4,
        *,
        cutmix_alpha: float = 0.0,
        cutmix_minmax: tuple[float, float] | None = None,
        switch_prob: float = 0.5,
        prob: float = 1.0,
        soft_targets: bool = False,
        num_classes: int | None = None,
        label_smoothing: float = 0.0,
        off_epoch: int | None = None,
        device: torch.device | str | None = None,
        enabled: bool = True,
        per_sample: bool = True,
        fold: bool = True,
        cycle: bool = False,
        stack_x: bool = False,
        stack_y: bool = True,
        dtype: torch.dtype | str | None = None,
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
        channels_last: bool = False,
        input_key: str = "image",
        target_key: str = "label",
        extras_to_device: bool = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.alpha = alpha
        self.cutmix_alpha = cutmix_alpha
        self.cutmix_minmax = None if cutmix_minmax is None else tuple(cutmix_minmax)
        self.switch_prob = switch_prob
        self.prob = prob
        self.soft_targets = soft_targets
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.off_epoch = off_epoch
        self.enabled = enabled
        self.per_sample = per_sample
        self.fold = fold
        self.cycle = cycle
        self.stack_x = stack_x
        self.stack_y = stack_y
        self.dtype = _float_dtype(dtype)
        self.mean = _channel_values(mean, "mean")
        self.std = _channel_values(std, "std")
        self.channels_last = channels_last
        self.input_key = input_key
        self.target_key = target_key
        self.extras_to_device = extras_to_device
        self._device_arg = None if device is None else torch.device(device)
        self._device: torch.device | None = self._device_arg
        self._stream = RandomStream(seed, generator)
        self._affine_cache: dict[tuple, tuple[Tensor | float, Tensor | None]] = {}
        self._scratch = Scratch()
        self._range_checked = False
        self._check_config()
        self.key = register_owner(self)

    def overwrites(self, stacked: Stacked, device: torch.device | None = None) -> bool:
        """Whether finishing this batch on ``device`` writes the result into its stacked buffer (CPU float input)."""
        device = self.device if device is None else device
        x = stacked.x  # None once a failed in-place mix spent it
        return (
            x is not None
            and device.type == "cpu"
            and not self.stack_x
            and overwrites(x, self.dtype, self.channels_last)
        )

    # -- configuration -------------------------------------------------------------------------------

    def _check_config(self) -> None:
        """Refuse a configuration that cannot work, naming the argument; the mixing knobs may change between epochs."""
        self.alpha = _concentration_or_off(self.alpha, "alpha")
        self.cutmix_alpha = _concentration_or_off(self.cutmix_alpha, "cutmix_alpha")
        self.switch_prob = _probability(self.switch_prob, "switch_prob")
        self.prob = _probability(self.prob, "prob")
        minmax = self.cutmix_minmax
        if minmax is not None:
            if len(minmax) != 2 or not all(isinstance(v, Real) for v in minmax) or not 0 < minmax[0] <= minmax[1] <= 1:
                raise ValueError(f"cutmix_minmax must be (lo, hi) with 0 < lo <= hi <= 1, got {minmax!r}")
            if self.fold and minmax[1] ** 2 > 0.5:
                raise ValueError(
                    f"cutmix_minmax={minmax!r} allows boxes covering up to {minmax[1] ** 2:.2f} of an image, but "
                    "fold=True keeps at least half of every image; pass fold=False or hi <= 0.707"
                )
        if self.alpha == 0 and not self.cutmix_on:
            raise ValueError(
                "alpha=0 turns Mixup off and CutMix is off too (cutmix_alpha=0, no cutmix_minmax); to turn mixing "
                "off, keep alpha and pass enabled=False (or set collate.enabled = False)"
            )
        if self.soft_targets and (
            isinstance(self.num_classes, bool) or not isinstance(self.num_classes, Integral) or self.num_classes < 1
        ):
            raise ValueError(
                f"soft_targets=True needs num_classes, a positive int, got num_classes={self.num_classes!r}"
            )
        smoothing = self.label_smoothing
        if isinstance(smoothing, bool) or not isinstance(smoothing, Real) or not 0 <= smoothing < 1:
            raise ValueError(f"label_smoothing must be a number in [0, 1), got label_smoothing={smoothing!r}")
        if smoothing and not self.soft_targets:
            raise ValueError(
                "label_smoothing here smooths soft targets (soft_targets=True); with the (x, y_a, y_b, lam) batches "
                "pass it to the loss instead: mixup_cross_entropy(..., label_smoothing=...) or "
                "MixupLoss(nn.CrossEntropyLoss(label_smoothing=...))"
            )
        if self.off_epoch is not None and (
            isinstance(self.off_epoch, bool) or not isinstance(self.off_epoch, Integral) or self.off_epoch < 0
        ):
            raise ValueError(f"off_epoch must be a non-negative int or None, got off_epoch={self.off_epoch!r}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("pass mean and std together (per-channel normalization), or neither")
        if self.mean is not None and len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise ValueError(f"mean has {len(self.mean)} values but std has {len(self.std)}; give one per channel")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError(f"std values must be > 0, got std={self.std}")
        if self.stack_x and self.channels_last:
            raise ValueError("channels_last applies to (B, C, H, W) batches; stack_x returns (B, 2, C, H, W) pairs")
        if self.stack_x and self.cutmix_on:
            raise ValueError("stack_x returns unmixed pairs for models that mix inside; it cannot carry CutMix boxes")
        self._checked = self._knobs()

    @property
    def cutmix_on(self) -> bool:
        """Whether CutMix is configured (``cutmix_alpha > 0`` or ``cutmix_minmax``)."""
        return self.cutmix_alpha > 0 or self.cutmix_minmax is not None

    @property
    def mixup_enabled(self) -> bool:
        """``enabled`` under the name timm's training script toggles (``--mixup-off-epoch``)."""
        return self.enabled

    @mixup_enabled.setter
    def mixup_enabled(self, value: bool) -> None:
        self.enabled = value

    @property
    def mixing(self) -> bool:
        """Whether batches drawn now are mixed: ``enabled`` and before ``off_epoch``."""
        return bool(self.enabled) and (self.off_epoch is None or self.epoch < self.off_epoch)

    @property
    def epoch(self) -> int:
        """The epoch set by :meth:`set_epoch` (0 before)."""
        return self._stream.epoch

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch``: its own random stream (from the seed), and no mixing from ``off_epoch`` on.

        Call it at the start of every epoch, like ``DistributedSampler.set_epoch``. It takes effect at
        once, also with ``persistent_workers=True``: workers never draw.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, Integral) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got epoch={epoch!r}")
        self._stream.set_epoch(int(epoch))

    @property
    def device(self) -> torch.device:
        """The training device, resolved in the main process (a worker must never query CUDA)."""
        if self._device is None:
            if get_worker_info() is not None:
                raise RuntimeError("MixupCollate resolves its device in the main process only, never in a worker")
            self._device = resolve_device()
        return self._device

    @property
    def seed(self) -> int | None:
        return self._stream.seed

    def __repr__(self) -> str:
        names = [p for p in inspect.signature(MixupCollate.__init__).parameters if p not in ("self", "generator")]
        values = {name: getattr(self, name) for name in names if name != "device"}
        values["device"] = self._device if self._device is not None else "auto"
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in values.items())})"

    # -- copies and pickling -----------------------------------------------------------------------

    _CACHES = ("_affine_cache", "_scratch")  # per object, never copied or pickled

    def __getstate__(self) -> dict[str, Any]:
        # The stream pickles its seed only; device-side caches stay behind.
        return {k: v for k, v in self.__dict__.items() if k not in self._CACHES}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._affine_cache, self._scratch = {}, Scratch()
        # Keeps the key in a fresh worker (its batches come back to the original); a new key elsewhere.
        self.key = register_owner(self, state["key"])

    def __deepcopy__(self, memo: dict[int, Any]) -> MixupCollate:
        """An independent collate in the same state: same settings, a stream that draws what this one would."""
        import copy

        twin = type(self).__new__(type(self))
        shared = {k: v for k, v in self.__dict__.items() if k not in (*self._CACHES, "_stream", "key")}
        twin.__dict__.update(copy.deepcopy(shared, memo))
        twin._stream = self._stream.clone()
        twin._affine_cache, twin._scratch = {}, Scratch()
        twin.key = register_owner(twin)
        return twin

    def __copy__(self) -> MixupCollate:
        return self.__deepcopy__({})

    # -- the collate_fn ------------------------------------------------------------------------------

    def __call__(self, samples: Sequence[Any]) -> PendingBatch:
        """Stack ``samples`` on the CPU; the result is drawn and mixed at its first use, in the main process."""
        in_worker = get_worker_info() is not None
        pinned = not in_worker and self.device.type == "cuda"
        stacked = stack_samples(
            samples, input_key=self.input_key, target_key=self.target_key, shared=in_worker, pinned=pinned
        )
        return PendingBatch(self, stacked, 2 if self.soft_targets else 4)

    def pin(self, stacked: Stacked) -> None:
        """Page-lock the stacked tensors for an asynchronous copy to a CUDA device (main process only)."""
        if self.device.type == "cuda":
            if not stacked.x.is_pinned():
                stacked.x = stacked.x.pin_memory()
            if not stacked.y.is_pinned():
                stacked.y = stacked.y.pin_memory()

    def _knobs(self) -> tuple:
        return (
            self.alpha, self.cutmix_alpha, self.cutmix_minmax, self.switch_prob, self.prob, self.soft_targets,
            self.num_classes, self.label_smoothing, self.off_epoch, self.mean, self.std, self.fold, self.stack_x,
            self.channels_last,
        )  # fmt: skip

    def draw(self, stacked: Stacked) -> MixParams:
        """The batch's random parameters, from this collate's stream (CPU, main process)."""
        if self._knobs() != self._checked:  # settings may change between epochs: check them when they do
            self._check_config()
        x, y = stacked.x, stacked.y
        self._check_targets(y)
        if not self.mixing:
            return MixParams.identity(x.shape[0])
        if self.cutmix_on and x.ndim < 3:
            raise ValueError(
                "CutMix needs samples with two spatial dimensions (..., H, W), "
                f"got samples of shape {tuple(x.shape[1:])}"
            )
        return draw_params(
            x.shape[0],
            tuple(x.shape[1:]),
            alpha=self.alpha,
            cutmix_alpha=self.cutmix_alpha,
            cutmix_minmax=self.cutmix_minmax,
            switch_prob=self.switch_prob,
            prob=self.prob,
            fold=self.fold,
            per_sample=self.per_sample,
            cycle=self.cycle,
            generator=self._stream.next_generator(),
        )

    def _check_targets(self, y: Tensor) -> None:
        if self.mixing and not self.stack_y and not y.is_floating_point():
            raise TypeError(
                "stack_y=False mixes targets linearly and needs float targets (one-hot, multi-hot, "
                f"regression), but the targets are {y.dtype} class indices; one-hot them in the "
                "dataset or keep stack_y=True and use mixup_cross_entropy"
            )
        if self.soft_targets and not y.is_floating_point():
            bad = ((y < 0) | (y >= self.num_classes)).nonzero()
            if len(bad):
                i = int(bad[0])
                raise ValueError(
                    f"sample {i}'s target {int(y[i])} is not a class index in [0, num_classes={self.num_classes})"
                )

    def apply(
        self, stacked: Stacked, params: MixParams, device: torch.device | None = None, *, from_worker: bool = False
    ) -> MixedBatch | SoftTargetBatch:
        """Move a stacked batch to ``device`` (default: the collate's) and mix it with ``params``.

        ``from_worker``: the batch came from a DataLoader worker. When the device is the CPU, the
        host cores are then busy in the workers and torch's intra-op threads of the main process
        would compete with them, so the mix runs on one thread (restored after).
        """
        device = self.device if device is None else device
        if from_worker and device.type == "cpu":
            with _one_host_thread():
                return self._apply(stacked, params, device)
        return self._apply(stacked, params, device)

    def _apply(self, stacked: Stacked, params: MixParams, device: torch.device) -> MixedBatch | SoftTargetBatch:
        if stacked.x is None:
            raise RuntimeError(
                "this batch's mix failed after it began overwriting the stacked inputs in place, so it cannot be "
                "finished again; skip the batch (the error that interrupted the mix was raised before this one)"
            )
        self._warn_if_normalised_twice(stacked.x)
        x, y = _to_device(stacked.x, device), _to_device(stacked.y, device)
        perm, lam = _to_device(params.perm, device), _to_device(params.lam, device)
        extras = stacked.extras
        if self.extras_to_device:
            extras = to_device(extras, device, non_blocking=True)
        if self.soft_targets:
            targets: tuple[Tensor, ...] = (soft_targets(y, perm, lam, self.num_classes, self.label_smoothing),)
        elif params.active and not self.stack_y:
            y_a = mix_targets(y, perm, lam)
            targets = (y_a, y_a)
        else:
            targets = (y, y.index_select(0, perm))
        # The mix of x comes last: it may overwrite the stacked buffer in place, and nothing after it can fail.
        # Before it, a failure leaves the input untouched and finishing again reuses the same draws; once the
        # stacked buffer is being overwritten, it is dropped, so a failed batch is never mixed twice.
        scale, shift = self._affine(x, device)
        if self.overwrites(stacked, device):
            stacked.x = None
        if self.stack_x:
            x = pair(x, perm, dtype=self.dtype, scale=scale, shift=shift)
        elif params.active:
            rows, boxes = params.rows, params.boxes
            x = mix(
                x, perm, lam, rows=rows, boxes=boxes, dtype=self.dtype, scale=scale, shift=shift,
                channels_last=self.channels_last, overwrite_input=True, scratch=self._scratch,
            )  # fmt: skip
        else:
            x = transform(
                x, dtype=self.dtype, scale=scale, shift=shift, channels_last=self.channels_last, overwrite_input=True
            )
        if self.soft_targets:
            return SoftTargetBatch(x, *targets, lam=lam, perm=perm, extras=extras)
        return MixedBatch(x, *targets, lam, perm=perm, extras=extras)

    def _warn_if_normalised_twice(self, x: Tensor) -> None:
        """Warn once if ``mean``/``std`` meet float inputs outside ``[0, 1]`` (likely normalised already)."""
        if self._range_checked or self.mean is None or not x.is_floating_point():
            return
        self._range_checked = True
        low, high = torch.aminmax(x)
        if low < 0 or high > 1:
            warnings.warn(
                f"MixupCollate(mean=..., std=...) normalises, but the float inputs already span "
                f"[{float(low):.3g}, {float(high):.3g}], outside [0, 1]: are they normalised twice (e.g. by "
                "v2.Normalize in the dataset)? Drop one of the two.",
                stacklevel=2,
            )

    def _affine(self, x: Tensor, device: torch.device) -> tuple[Tensor | float, Tensor | None]:
        """Per-channel ``(scale, shift)`` for the input conversion: ``uint8 -> [0, 1]`` and normalization."""
        unit = 1.0 / 255.0 if x.dtype == torch.uint8 else 1.0
        if self.mean is None:
            return unit, None
        channels = x.shape[1] if x.ndim >= 2 else None
        count = max(len(self.mean), len(self.std))
        if count != 1 and channels != count:
            raise ValueError(
                f"mean/std have {count} values but the inputs have shape {tuple(x.shape)} "
                f"({channels} channels in dim 1); give one value per channel"
            )
        view = (count,) + (1,) * (x.ndim - 2)
        dtype = torch.promote_types(output_dtype(x, self.dtype), torch.float32)
        key = (view, dtype, unit, device, tuple(self.mean), tuple(self.std))
        if key not in self._affine_cache:  # built and moved once, not per batch
            mean = torch.tensor(self.mean, dtype=torch.float64).expand(count).reshape(view)
            std = torch.tensor(self.std, dtype=torch.float64).expand(count).reshape(view)
            scale, shift = (unit / std).to(dtype), (-mean / std).to(dtype)
            self._affine_cache[key] = (_to_device(scale, device), _to_device(shift, device))
        return self._affine_cache[key]

    # -- the random stream -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The random stream's state (epoch included), to resume the same sequence of draws."""
        return self._stream.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream saved by :meth:`state_dict`."""
        self._stream.load_state_dict(state)
