"""Random mixing parameters: the weights ``lam``, the partner of every sample, and per-sample coins.

Pure tensor functions with injectable randomness (a ``torch.Generator``); they know nothing of
DataLoaders. Drawing needs no host synchronisation: no ``.item()``; on the CPU the arithmetic on a
handful of draws is numpy's (the same IEEE operations, without a tensor operation's fixed cost).
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch
from torch import Tensor

__all__ = ["sample_coins", "sample_lam", "sample_perm"]

# Below this concentration a Gamma(alpha) draw can underflow float64 (P(X < 1e-308) > 1e-30), and Beta
# draws take the log-space path.
LOG_SPACE_BELOW = 0.1


def _check_size(n: int, what: str) -> None:
    if n < 1:
        raise ValueError(f"cannot draw {what} for an empty batch (n={n})")


_CPU = torch.device("cpu")


def _device(device: torch.device | str | None) -> torch.device:
    return _CPU if device is None else torch.device(device)


def _log_gamma_pairs(n: int, alpha: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``log X - log Y`` for ``n`` pairs of independent ``X, Y ~ Gamma(alpha, 1)``, float64, exact for tiny ``alpha``.

    Uses ``Gamma(a) = Gamma(a + 1) * U ** (1 / a)``: for small ``a`` the plain draw underflows to 0
    (and Beta = X / (X + Y) turns into 0/0), while the logarithm of the boosted form stays finite.
    The two ``log U`` are subtracted before dividing by ``a``: for a subnormal ``a`` each quotient
    alone overflows (and ``-inf - -inf`` is NaN), while their difference over ``a`` is at worst
    ``+-inf``, the weight 0 or 1 that such a concentration draws.
    """
    concentration = torch.full((2, n), alpha + 1.0, dtype=torch.float64, device=device)
    log_gamma = torch._standard_gamma(concentration, generator=generator).log_()
    uniform = torch.rand((2, n), dtype=torch.float64, device=device, generator=generator)
    # 1 - U lies in (0, 1], so its logarithm is finite.
    log_uniform = uniform.neg_().log1p_()
    return (log_gamma[0] - log_gamma[1]).add_((log_uniform[0] - log_uniform[1]).div_(alpha))


def check_concentration(alpha: object, name: str = "alpha") -> float:
    """``alpha`` as a float if it is a finite real number > 0 (numpy scalars included), else a clear error."""
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"{name} must be a finite number > 0 for Beta({name}, {name}), got {name}={alpha!r}")
    return float(alpha)


def sample_lam(
    n: int,
    alpha: float,
    *,
    fold: bool = True,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw mixing weights ``lam ~ Beta(alpha, alpha)``: a float32 tensor of shape ``(n,)``.

    ``fold`` maps each weight to ``max(lam, 1 - lam)``, so the unshuffled sample always dominates;
    folded weights lie in ``[0.5, 1]``. ``per_sample=False`` draws one weight and repeats it ``n`` times.

    The Beta draw is ``X / (X + Y)`` with ``X, Y ~ Gamma(alpha)`` in float64. Below ``alpha = 0.1`` a
    Gamma draw can underflow (and the ratio turn into 0/0), so there it is ``sigmoid(log X - log Y)``
    computed in log space, which stays exact for tiny ``alpha`` where ``torch.distributions.Beta`` saturates.
    Every finite ``alpha > 0`` draws correctly, subnormal and near the float64 maximum included.
    """
    alpha = check_concentration(alpha)
    _check_size(n, "mixing weights")
    draws, device = n if per_sample else 1, _device(device)
    if alpha < LOG_SPACE_BELOW:
        logit = _log_gamma_pairs(draws, alpha, generator, device)
        if fold:
            # max(sigmoid(d), 1 - sigmoid(d)) == sigmoid(|d|), without rounding twice.
            logit.abs_()
        lam = torch.sigmoid(logit)
    else:
        pair = torch._standard_gamma(
            torch.full((2, draws), alpha, dtype=torch.float64, device=device), generator=generator
        )
        # Halved before the sum, which overflows for alpha near the float64 maximum; halving is exact, so the
        # ratio is bit for bit X / (X + Y) wherever that does not overflow.
        if device.type == "cpu":  # the same IEEE float64 operations in numpy, without a tensor op's fixed cost
            half = pair.numpy() * 0.5
            ratio = (half.max(0) if fold else half[0]) / (half[0] + half[1])
            lam = torch.from_numpy(ratio.astype(np.float32))
            return lam if per_sample else lam.expand(n).clone()
        pair.mul_(0.5)
        lam = (pair.amax(0) if fold else pair[0]).div_(pair.sum(0))
    lam = lam.to(torch.float32)
    return lam if per_sample else lam.expand(n).clone()


def sample_perm(
    n: int,
    *,
    cycle: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw the partner of every sample: a random permutation of ``range(n)``, int64 ``(n,)``.

    By default the permutation is uniform over all ``n!``: about one sample per batch is its own
    partner, and a 2-cycle pairs ``i`` with ``j`` and ``j`` with ``i``. ``cycle=True`` draws a uniform
    random ``n``-cycle instead: for ``n >= 2`` no sample is its own partner, and for ``n >= 3`` no two
    samples are each other's partners.
    """
    _check_size(n, "a permutation")
    order = torch.randperm(n, generator=generator, device=_device(device))
    if not cycle:
        return order
    # Visit the samples in a random order; each one's partner is the next one visited.
    perm = torch.empty_like(order)
    perm[order] = order.roll(-1)
    return perm


def sample_coins(
    n: int,
    p: float,
    *,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``n`` independent Bernoulli(``p``) draws, bool ``(n,)`` (one draw repeated when not ``per_sample``)."""
    _check_size(n, "coins")
    device = _device(device)
    draws = torch.rand(n if per_sample else 1, generator=generator, dtype=torch.float64, device=device)
    heads = torch.from_numpy(draws.numpy() < p) if device.type == "cpu" else draws < p
    return heads if per_sample else heads.expand(n).clone()
