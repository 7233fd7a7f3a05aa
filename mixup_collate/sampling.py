"""Random mixing parameters: the mixing weights ``lam`` and the partner permutation.

Pure tensor functions with injectable randomness (a ``torch.Generator``); they know nothing of
DataLoaders. Drawing happens without any host synchronisation: no ``.item()``, no numpy.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sample_lam", "sample_perm"]


def _log_gamma_pairs(n: int, alpha: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``log X - log Y`` for ``n`` pairs of independent ``X, Y ~ Gamma(alpha, 1)``, float64, exact for tiny ``alpha``.

    Uses ``Gamma(a) = Gamma(a + 1) * U ** (1 / a)``: for small ``a`` the plain draw underflows to 0
    (and Beta = X / (X + Y) turns into 0/0), while the logarithm of the boosted form stays finite.
    """
    concentration = torch.full((2, n), alpha + 1.0, dtype=torch.float64, device=device)
    boosted = torch._standard_gamma(concentration, generator=generator)
    uniform = torch.rand((2, n), dtype=torch.float64, device=device, generator=generator)
    # 1 - U lies in (0, 1], so its logarithm is finite.
    log_gamma = boosted.log_().add_(torch.log1p(uniform.neg_()).div_(alpha))
    return log_gamma[0] - log_gamma[1]


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

    ``fold`` maps each weight to ``max(lam, 1 - lam)`` so the unshuffled sample always dominates and
    no pair (i, j) is produced twice with swapped weights; folded weights lie in ``[0.5, 1]``.
    ``per_sample=False`` draws one weight and repeats it ``n`` times (one ``lam`` per batch).

    The Beta draw is ``sigmoid(log X - log Y)`` with ``X, Y ~ Gamma(alpha)`` computed in log space and
    float64, which stays accurate for small ``alpha`` where ``torch.distributions.Beta`` saturates.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 for Beta(alpha, alpha), got alpha={alpha!r}")
    if n < 1:
        raise ValueError(f"cannot draw mixing weights for an empty batch (n={n})")
    device = torch.device("cpu") if device is None else torch.device(device)
    draws = n if per_sample else 1
    logit = _log_gamma_pairs(draws, alpha, generator, device)
    if fold:
        # max(sigmoid(d), 1 - sigmoid(d)) == sigmoid(|d|), without rounding twice.
        logit = logit.abs()
    lam = torch.sigmoid(logit).to(torch.float32)
    return lam if per_sample else lam.expand(n).clone()


def sample_perm(
    n: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw the partner of every sample: a uniformly random permutation of ``range(n)``, int64 ``(n,)``."""
    if n < 1:
        raise ValueError(f"cannot draw a permutation for an empty batch (n={n})")
    device = torch.device("cpu") if device is None else torch.device(device)
    return torch.randperm(n, generator=generator, device=device)
