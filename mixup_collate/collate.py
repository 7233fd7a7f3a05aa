"""``MixupCollate``: the ``collate_fn`` that stacks samples on the CPU and mixes them on the device.

A batch's path, by module: ``stack`` stacks the samples where the DataLoader calls the collate
(a worker process when ``num_workers > 0``) into a [`PendingBatch`][mixup_collate.PendingBatch]. At
the batch's first use, in the main process, the collate draws its parameters (``params``, from
the collate's ``stream``, as its ``settings`` say) and ``finish`` applies them on the
device (``mix``). The collate itself only composes these.
"""

from __future__ import annotations

import inspect
import os
import threading
import warnings
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import torch
from torch.utils.data import get_worker_info

from .batch import MixedBatch, SoftTargetBatch, Stacked
from .finish import Finisher
from .params import MixParams, draw_params
from .pending import PendingBatch, register_owner
from .settings import KNOBS, Knob, Settings, check_device, unknown_setting
from .stack import stack_samples
from .stream import RandomStream

__all__ = ["MixupCollate", "resolve_device"]


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


class MixupCollate:
    """A ``collate_fn`` that yields Mixup/CutMix batches ``(x, y_a, y_b, lam)`` on the training device.

    ``DataLoader(ds, batch_size=B, collate_fn=MixupCollate(alpha=0.4, device=device))`` yields batches
    that unpack as ``x, y_a, y_b, lam``: ``x`` ``(B, *S)`` with ``x[i] = lam[i] * x_i + (1 - lam[i]) * x_perm[i]``
    (or ``x_i`` with a box pasted from ``x_perm[i]`` under CutMix), ``y_a`` the targets, ``y_b = y_a[perm]``
    and ``lam`` float32 ``(B,)``, the weight of ``y_a``. Samples are stacked where the DataLoader calls the
    collate (a worker process when ``num_workers > 0``); the draws and the mix happen in the main process,
    on ``device``, the first time the loop uses the batch (see [`PendingBatch`][mixup_collate.PendingBatch]).

    Args:
        alpha: Mixup's Beta(alpha, alpha) concentration; 0 turns Mixup off (with CutMix on).
        cutmix_alpha: CutMix's Beta concentration for the box area; 0 (default) turns CutMix off.
        cutmix_minmax: ``(lo, hi)`` bounds of the CutMix box side ratios, drawn uniformly (instead of
            ``cutmix_alpha``); turns CutMix on.
        cutmix_dims: the sample dimensions a CutMix box spans, negative (counted from the end of a sample's
            shape) and increasing: ``(-2, -1)`` an image's ``(H, W)`` (shared by every frame of a clip),
            ``(-4, -2, -1)`` a block of a ``(T, C, H, W)`` clip's frames and pixels, ``(-4,)`` a run of whole
            frames, ``(-1,)`` a segment of a spectrogram's or waveform's time axis. The box covers every
            index of the other dimensions, and its volume the share ``1 - lam``.
        switch_prob: with both on, the chance that a sample uses CutMix rather than Mixup.
        prob: the chance that a sample (or, with ``per_sample=False``, the batch) is mixed at all.
        soft_targets: yield ``(x, target)`` with dense mixed targets ``(B, num_classes)`` instead.
        dense_targets: each target is a mask or map aligned with the input's ``(H, W)`` (segmentation:
            integer ``(H, W)`` masks; depth, heatmaps: float ``(H, W)`` or ``(K, H, W)`` maps); ``lam`` is
            then ``(B, H, W)``, the weight of ``y_a`` at each pixel (0 inside a pasted CutMix box).
        box_targets: each target is a detection dict (``boxes``, ``labels``, optional ``masks``); the batch is
            ``(x, targets)`` with per-box ``weights`` (see
            [`mix_box_targets`][mixup_collate.detection.mix_box_targets]).
        box_min_visibility: the share of a box's area a CutMix sample must still show for the box to stay (a
            box it does not show at all goes at any value).
        box_target_keys: the keys each detection target keeps (as torchvision's ``target_keys``), the others
            dropped before any check; ``None`` keeps every key. Must include ``"boxes"`` and ``"labels"``.
        box_fields: further per-box keys of the detection targets, mixed with their boxes (``labels``, ``masks``,
            ``area``, ``iscrowd``, ``keypoints`` and ``weights`` are per-box already); every other key is the
            image's own, whatever its length (``image_id``, DETR's ``size`` and ``orig_size``).
        num_classes: the number of classes, for ``soft_targets``.
        label_smoothing: smoothing of the soft targets (the 4-tuple form leaves it to the loss).
        off_epoch: from this epoch on (see [`set_epoch`][mixup_collate.MixupCollate.set_epoch]) nothing is mixed.
        device: where batches are mixed and returned; ``None`` resolves, in the main process, to
            ``cuda:$LOCAL_RANK``, the current CUDA device, or the CPU (see ``resolve_device``).
        enabled: ``False`` returns the same structure unmixed (``lam = 1``, ``y_b = y_a``), for evaluation.
        per_sample: one draw per sample (``True``) or one per batch.
        fold: ``lam`` becomes ``max(lam, 1 - lam)``: every sample keeps at least half of itself.
        cycle: partners along one random cycle: no sample is its own partner, and for ``B >= 3`` no two
            samples are each other's partners (default: a uniform random permutation).
        correct_lam: a CutMix sample's ``lam`` is the share of its image it keeps (``True``) or the
            drawn weight before the box is clipped at the border (``False``, timm's ``correct_lam=False``).
        stack_x: return ``x`` unmixed as ``(B, 2, *S)`` pairs ``(x_i, x_perm[i])`` for models that mix inside.
        stack_y: ``False`` mixes float targets linearly: ``y_a = y_b = lam * y + (1 - lam) * y[perm]``.
        dtype: floating output dtype; ``None`` keeps float inputs' dtype and turns ``uint8`` into float32.
        mean: per-channel means of a normalization applied on the device, in ``[0, 1]`` units for ``uint8``
            images (one value per channel, or one for all).
        std: the normalization's per-channel standard deviations, as ``mean``.
        channel_dim: the sample dimension ``mean``/``std`` apply along, negative (``-3`` for the ``C`` of a
            ``(T, C, H, W)`` clip); ``None`` for a sample's first dimension.
        channels_last: return 4-D inputs in ``torch.channels_last`` memory format.
        input_key: the input's field name in dict samples.
        target_key: the target's field name in dict samples.
        extras: the other fields ``batch.extras`` keeps: all (``True``), none (``False``) or those named in a list.
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
        cutmix_dims: tuple[int, ...] = (-2, -1),
        switch_prob: float = 0.5,
        prob: float = 1.0,
        soft_targets: bool = False,
        dense_targets: bool = False,
        box_targets: bool = False,
        box_min_visibility: float = 0.1,
        box_target_keys: Sequence[str] | None = None,
        box_fields: Sequence[str] = (),
        num_classes: int | None = None,
        label_smoothing: float = 0.0,
        off_epoch: int | None = None,
        device: torch.device | str | None = None,
        enabled: bool = True,
        per_sample: bool = True,
        fold: bool = True,
        cycle: bool = False,
        correct_lam: bool = True,
        stack_x: bool = False,
        stack_y: bool = True,
        dtype: torch.dtype | str | None = None,
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
        channel_dim: int | None = None,
        channels_last: bool = False,
        input_key: str = "image",
        target_key: str = "label",
        extras: bool | Sequence[Any] = True,
        extras_to_device: bool = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        values = locals()
        self.settings = Settings(**{name: values[name] for name in KNOBS})
        self._device: torch.device | None = check_device(device)
        self._stream = RandomStream(seed, generator)
        self._epoch_set = False  # off_epoch counts the epochs set_epoch announces
        self._finisher = Finisher()
        self._lock = threading.Lock()
        self.key = register_owner(self)

    def __new__(cls, *args: Any, **kwargs: Any) -> MixupCollate:
        # A misspelt keyword gets the closest setting named, as assignment and update() do.
        known = inspect.signature(cls.__init__).parameters
        for name in kwargs:
            if name not in known:
                raise TypeError(unknown_setting(name, tuple(p for p in known if p != "self")))
        return super().__new__(cls)

    def __setattr__(self, name: str, value: Any) -> None:
        """Settings validate themselves (see ``Knob``); a misspelt one is refused."""
        if not name.startswith("_") and name not in ("settings", "key") and not hasattr(type(self), name):
            raise AttributeError(unknown_setting(name))
        object.__setattr__(self, name, value)

    def update(self, **changes: Any) -> None:
        """Change several settings at once, checked together: ``collate.update(alpha=0, cutmix_alpha=1.0)``."""
        self.settings.update(**changes)

    mixup_enabled = Knob("enabled")  # the name timm's training script toggles (--mixup-off-epoch)

    @property
    def mixing(self) -> bool:
        """Whether batches drawn now are mixed: ``enabled`` and before ``off_epoch``."""
        s = self.settings
        return s.enabled and (s.off_epoch is None or self.epoch < s.off_epoch)

    @property
    def epoch(self) -> int:
        """The epoch set by [`set_epoch`][mixup_collate.MixupCollate.set_epoch] (0 before)."""
        return self._stream.epoch

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch``: its own random stream (from the seed), and no mixing from ``off_epoch`` on.

        Call it at the start of every epoch, like ``DistributedSampler.set_epoch``. It takes effect at
        once, also with ``persistent_workers=True``: workers never draw.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, Integral) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got epoch={epoch!r}")
        self._stream.set_epoch(int(epoch))
        self._epoch_set = True

    def _warn_if_epoch_never_set(self) -> None:
        """Warn once when ``off_epoch`` waits for epochs that ``set_epoch`` never announces."""
        if self.settings.off_epoch is not None and not self._epoch_set:
            self._epoch_set = True  # once
            warnings.warn(
                f"MixupCollate(off_epoch={self.settings.off_epoch}) turns mixing off from that epoch on, but "
                "set_epoch() has not been called, so the collate stays at epoch 0: call collate.set_epoch(epoch) "
                "at the start of every epoch (the Lightning and Hugging Face helpers do)",
                stacklevel=3,
            )

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
        values = self.settings.items()
        values["device"] = self._device if self._device is not None else "auto"
        values["seed"] = self.seed
        names = [p for p in inspect.signature(MixupCollate.__init__).parameters if p in values]
        return f"{type(self).__name__}({', '.join(f'{k}={values[k]!r}' for k in names)})"

    # -- copies and pickling: settings and stream travel, the finisher's caches never do -----------------

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_finisher", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._finisher, self._lock = Finisher(), threading.Lock()
        # Keeps the key in a fresh worker (its batches come back to the original); a new key elsewhere.
        self.key = register_owner(self, state["key"])

    def __deepcopy__(self, memo: dict[int, Any]) -> MixupCollate:
        """An independent collate in the same state: same settings, a stream that draws what this one would."""
        twin = type(self).__new__(type(self))
        settings = Settings(**self.settings.items())
        twin.__setstate__({**self.__getstate__(), "settings": settings, "_stream": self._stream.clone(), "key": None})
        return twin

    def __copy__(self) -> MixupCollate:
        return self.__deepcopy__({})

    # -- the two doors of a pending batch: draw, then apply -----------------------------------------

    def __call__(self, samples: Sequence[Any]) -> PendingBatch:
        """Stack ``samples`` on the CPU; the result is drawn and mixed at its first use, in the main process."""
        in_worker = get_worker_info() is not None
        pinned = not in_worker and self.device.type == "cuda"
        s = self.settings
        stacked = stack_samples(
            samples, input_key=s.input_key, target_key=s.target_key, shared=in_worker, pinned=pinned,
            dense=s.dense_targets, cut_dims=s.cutmix_dims, boxes=s.box_targets, box_keys=s.box_target_keys,
            box_fields=s.box_fields, measure_range=s.mean is not None, keep=s.extras,
        )  # fmt: skip
        if not s.structure_fixed:  # only a batch these settings can mix fixes the structure (a refused one leaves
            s.check_batch(stacked.x, stacked.y, self.mixing)  # the fix its error names possible)
            s.fix_structure()
        return PendingBatch(self, stacked, 2 if s.soft_targets or s.box_targets else 4)

    def draw(self, stacked: Stacked) -> MixParams:
        """The batch's random parameters, from this collate's stream (CPU, main process)."""
        x, mixing = stacked.x, self.mixing
        self.settings.check_batch(x, stacked.y, mixing)
        self.settings.fix_structure()
        self._warn_if_epoch_never_set()
        if not mixing:
            return MixParams.identity(x.shape[0])
        size, shape, args = x.shape[0], tuple(x.shape[1:]), self.settings.draw_args()
        # One stream, several threads: each batch claims one index with its draws, atomically.
        with self._lock, self._stream.claim() as generator:
            return draw_params(size, shape, **args, generator=generator)

    def apply(
        self, stacked: Stacked, params: MixParams, device: torch.device | None = None, *, from_worker: bool = False
    ) -> MixedBatch | SoftTargetBatch:
        """Move a stacked batch to ``device`` (default: the collate's) and mix it with ``params``."""
        device = self.device if device is None else device
        return self._finisher.apply(stacked, params, self.settings, device, from_worker=from_worker)

    # -- the random stream -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The random stream's state (epoch included), to resume the same sequence of draws."""
        return self._stream.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream saved by [`state_dict`][mixup_collate.MixupCollate.state_dict]."""
        self._stream.load_state_dict(state)
        self._epoch_set = True


for _name in KNOBS:  # collate.alpha reads the settings; collate.alpha = 0.8 validates and writes them
    setattr(MixupCollate, _name, Knob(_name))
