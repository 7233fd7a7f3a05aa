"""sample_lam draws folded Beta(alpha, alpha) weights; sample_perm draws uniform permutations."""

import numpy as np
import pytest
import torch
from conftest import devices
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from mixup_collate import sample_lam, sample_perm


def generator(device, seed=0):
    return torch.Generator(device=device).manual_seed(seed)


@given(n=st.integers(1, 300), alpha=st.floats(0.01, 50), seed=st.integers(0, 2**31))
def test_folded_lam_is_float32_of_shape_n_in_half_to_one(n, alpha, seed):
    lam = sample_lam(n, alpha, generator=generator("cpu", seed))
    assert lam.dtype == torch.float32 and lam.shape == (n,)
    assert bool(((lam >= 0.5) & (lam <= 1.0)).all())


@given(n=st.integers(1, 300), alpha=st.floats(0.01, 50), seed=st.integers(0, 2**31))
def test_unfolded_lam_is_in_unit_interval(n, alpha, seed):
    lam = sample_lam(n, alpha, fold=False, generator=generator("cpu", seed))
    assert bool(((lam >= 0) & (lam <= 1)).all())


def assert_follows(samples, cdf, lo, hi):
    """KS test of ``samples`` against ``cdf`` on ``[lo, hi]``, plus a binomial check of the mass outside.

    float32 cannot resolve the Beta's steep tails for small alpha (many draws round to exactly 1.0,
    correctly so), which breaks the KS test's no-ties assumption; inside ``[lo, hi]`` the rounding
    is negligible, and the tails are checked by their total probability instead.
    """
    inside = (samples >= lo) & (samples <= hi)
    mass = cdf(hi) - cdf(lo)
    binomial = stats.binomtest(int(inside.sum()), len(samples), min(mass, 1.0))
    assert binomial.pvalue > 1e-3, f"{inside.mean():.5f} of draws in [{lo}, {hi}], expected {mass:.5f}"
    result = stats.kstest(samples[inside], lambda t: (cdf(t) - cdf(lo)) / mass)
    assert result.pvalue > 1e-3, result


def folded_beta_cdf(alpha):
    # Folded Beta(a, a) on [0.5, 1]: P(max(L, 1 - L) <= t) = 2 * I_t(a, a) - 1.
    return lambda t: np.clip(2 * stats.beta.cdf(t, alpha, alpha) - 1, 0, 1)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.4, 1.0, 2.0, 10.0])
def test_folded_lam_follows_folded_beta(device, alpha):
    lam = sample_lam(20_000, alpha, generator=generator(device), device=device).double().cpu().numpy()
    assert_follows(lam, folded_beta_cdf(alpha), 0.5, 0.999)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("alpha", [0.05, 0.4, 3.0])
def test_unfolded_lam_follows_beta(device, alpha):
    lam = sample_lam(20_000, alpha, fold=False, generator=generator(device), device=device).double().cpu().numpy()
    assert_follows(lam, stats.beta(alpha, alpha).cdf, 0.001, 0.999)


def test_ks_test_detects_a_wrong_distribution():
    # The check above has teeth: the same draws fail against a different alpha.
    lam = sample_lam(20_000, 0.4, generator=generator("cpu")).double().numpy()
    with pytest.raises(AssertionError):
        assert_follows(lam, folded_beta_cdf(0.5), 0.5, 0.999)


def test_per_batch_lam_repeats_one_draw():
    lam = sample_lam(17, 0.4, per_sample=False, generator=generator("cpu"))
    assert lam.shape == (17,) and bool((lam == lam[0]).all())


def test_same_generator_state_gives_same_draws():
    a = sample_lam(64, 0.4, generator=generator("cpu", 7))
    b = sample_lam(64, 0.4, generator=generator("cpu", 7))
    c = sample_lam(64, 0.4, generator=generator("cpu", 8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan")])
def test_alpha_must_be_positive(alpha):
    with pytest.raises(ValueError, match="alpha"):
        sample_lam(4, alpha)


def test_empty_batch_is_refused():
    with pytest.raises(ValueError, match="empty"):
        sample_lam(0, 0.4)
    with pytest.raises(ValueError, match="empty"):
        sample_perm(0)


@given(n=st.integers(1, 500), seed=st.integers(0, 2**31))
def test_perm_is_a_bijection(n, seed):
    perm = sample_perm(n, generator=generator("cpu", seed))
    assert perm.dtype == torch.int64
    assert sorted(perm.tolist()) == list(range(n))


@pytest.mark.parametrize("device", devices())
def test_perm_is_uniform(device):
    # Position of element 0 after shuffling 5 items: uniform over 5 places (chi-square).
    g = generator(device)
    counts = np.zeros(5)
    for _ in range(5000):
        counts[int(sample_perm(5, generator=g, device=device).cpu().argmin())] += 1
    assert stats.chisquare(counts).pvalue > 1e-3
