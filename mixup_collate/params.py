"""Everything random about one batch, drawn at once on the CPU, apart from applying it.

[`draw_params`][mixup_collate.params.draw_params] composes the samplers into a
[`MixParams`][mixup_collate.params.MixParams]: each sample's partner, whether it is mixed at all (``prob``), by Mixup
or by CutMix (``switch_prob``), its weight and its box. Applying the parameters
([`mixup_collate.mix.mix`][mixup_collate.mix.mix]) draws nothing, so a batch whose mix is retried, or finished again,
gets the very same draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .boxes import kept_fraction, sample_boxes
from .sampling import sample_coins, sample_lam, sample_perm

__all__ = ["BLENDED", "CUT", "UNMIXED", "MixParams", "draw_params"]


UNMIXED = 0
"""``MixParams.mode`` of a sample left as it is: its own input and targets."""
BLENDED = 1
"""``MixParams.mode`` of a sample blended with its partner (Mixup, weight ``lam``)."""
CUT = 2
"""``MixParams.mode`` of a sample with its CutMix box copied from its partner."""


@dataclass(frozen=True)
class MixParams:
    """The draws for a batch of ``B`` samples (CPU tensors); ``mode`` says what each sample gets.

    Attributes:
        perm: ``(B,)`` int64 partner of each sample.
        lam: ``(B,)`` float32 weight of each sample's own target: its Mixup weight, the share of its
            image it keeps under CutMix, or 1 when it is not mixed.
        mode: ``(B,)`` uint8, per sample [`UNMIXED`][mixup_collate.params.UNMIXED] (its own input and targets),
            [`BLENDED`][mixup_collate.params.BLENDED] (Mixup with weight ``lam``) or [`CUT`][mixup_collate.params.CUT]
            (CutMix: its box is copied from its partner).
        boxes: ``(B, 2k)`` int64 CutMix boxes of the [`CUT`][mixup_collate.params.CUT] samples (empty for the others),
            one ``(start, stop)`` pair per dimension in ``dims``, or ``None`` when no sample is cut.
        dims: the sample dimensions the boxes span, negative: ``(-2, -1)`` makes them
            ``(top, bottom, left, right)`` over ``(H, W)``.
    """

    perm: Tensor
    lam: Tensor
    mode: Tensor
    boxes: Tensor | None = None
    dims: tuple[int, ...] = (-2, -1)
    # (any sample mixed, every sample blended): what the drawer knows already, else read from mode once.
    summary: tuple[bool, bool] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.summary is None:
            object.__setattr__(self, "summary", (bool(self.mode.any()), bool((self.mode == BLENDED).all())))

    @classmethod
    def identity(cls, batch_size: int) -> MixParams:
        """No mixing: every sample is its own partner with weight 1."""
        unmixed = torch.zeros(batch_size, dtype=torch.uint8)
        return cls(torch.arange(batch_size), torch.ones(batch_size), unmixed, summary=(False, False))

    @property
    def mixes(self) -> bool:
        """Whether any sample is blended or cut."""
        return self.summary[0]

    @property
    def blends_all(self) -> bool:
        """Whether every sample is blended (plain Mixup)."""
        return self.summary[1]


def draw_params(
    batch_size: int,
    sample_shape: tuple[int, ...],
    *,
    alpha: float,
    cutmix_alpha: float = 0.0,
    cutmix_minmax: tuple[float, float] | None = None,
    switch_prob: float = 0.5,
    prob: float = 1.0,
    fold: bool = True,
    per_sample: bool = True,
    cycle: bool = False,
    correct_lam: bool = True,
    cutmix_dims: tuple[int, ...] = (-2, -1),
    generator: torch.Generator | None = None,
) -> MixParams:
    """Draw the parameters of one batch; ``alpha=0`` turns Mixup off, ``cutmix_alpha=0`` (and no minmax) CutMix.

    ``sample_shape`` is one sample's shape; CutMix boxes span its dimensions ``cutmix_dims`` (negative,
    increasing; by default the last two). With ``per_sample=False`` the coins, the weight and the box
    are drawn once and shared by the batch. A CutMix sample's ``lam`` is the share of the sample it
    keeps; ``correct_lam=False`` gives the drawn weight instead (timm's ``correct_lam=False``), before
    the box is clipped at the border.
    """
    n, g = batch_size, generator
    use_mixup = alpha > 0
    use_cutmix = cutmix_alpha > 0 or cutmix_minmax is not None
    perm = sample_perm(n, cycle=cycle, generator=g)
    if use_mixup and not use_cutmix and prob >= 1:  # plain Mixup: every sample blended
        lam = sample_lam(n, alpha, fold=fold, per_sample=per_sample, generator=g)
        return MixParams(perm, lam, torch.full((n,), BLENDED, dtype=torch.uint8), summary=(True, True))
    # The draws come from torch's generator; combining them is numpy's work (a handful of numbers each).
    mixed = np.ones(n, dtype=bool) if prob >= 1 else sample_coins(n, prob, per_sample=per_sample, generator=g).numpy()
    if use_mixup and use_cutmix:
        cut = sample_coins(n, switch_prob, per_sample=per_sample, generator=g).numpy() & mixed
    else:
        cut = mixed if use_cutmix else np.zeros(n, dtype=bool)
    blend = mixed & ~cut
    lam = np.ones(n, dtype=np.float32)
    if use_mixup:
        lam = np.where(blend, sample_lam(n, alpha, fold=fold, per_sample=per_sample, generator=g).numpy(), lam)
    mode = torch.from_numpy(blend.astype(np.uint8) + cut.astype(np.uint8) * CUT)
    summary = (bool(mixed.any()), bool(blend.all()))
    if not use_cutmix:
        return MixParams(perm, torch.from_numpy(lam), mode, summary=summary)
    sizes = tuple(sample_shape[d] for d in cutmix_dims)
    draws = n if per_sample else 1
    box_lam = torch.ones(draws) if cutmix_minmax else sample_lam(draws, cutmix_alpha, fold=fold, generator=g)
    drawn = sample_boxes(box_lam, *sizes, minmax=cutmix_minmax, generator=g).numpy()
    boxes = torch.from_numpy(np.where(cut[:, None], drawn, 0))
    kept = kept_fraction(boxes, *sizes).numpy() if correct_lam else box_lam.numpy()
    lam = torch.from_numpy(np.where(cut, kept, lam))
    return MixParams(perm, lam, mode, boxes if cut.any() else None, tuple(cutmix_dims), summary)
