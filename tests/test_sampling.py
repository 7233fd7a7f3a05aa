"""sample_lam draws folded Beta(alpha, alpha) weights; sample_perm uniform permutations or cycles; coins are fair."""

import itertools
import math
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from support import devices, image_samples

from mixup_collate import MixupCollate
from mixup_collate.sampling import sample_coins, sample_lam, sample_perm


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
@pytest.mark.parametrize("alpha", [0.05, 0.0999, 0.1, 0.2, 0.4, 1.0, 2.0, 10.0, 1e4])
def test_folded_lam_follows_folded_beta(device, alpha):
    lam = sample_lam(20_000, alpha, generator=generator(device), device=device).double().cpu().numpy()
    assert_follows(lam, folded_beta_cdf(alpha), 0.5, 0.999)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("alpha", [0.02, 0.05, 0.4, 3.0])
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


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan"), float("inf"), "0.4", True])
def test_alpha_must_be_a_finite_positive_number(alpha):
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        sample_lam(4, alpha)


def test_numpy_alpha_is_a_number():
    g = generator("cpu")
    assert torch.equal(sample_lam(8, np.float32(0.5), generator=g), sample_lam(8, 0.5, generator=generator("cpu")))


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


def permutation_counts(draw, n, trials):
    """How often each of the n! permutations of range(n) comes out of ``draw()`` in ``trials`` draws."""
    index = {p: i for i, p in enumerate(itertools.permutations(range(n)))}
    counts = np.zeros(len(index))
    for _ in range(trials):
        counts[index[tuple(draw().tolist())]] += 1
    return counts


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("n", [4, 5])
def test_perm_is_uniform_over_all_permutations(device, n):
    # Chi-square over all n! outcomes: a rotation, a fixed pattern or a biased shuffle all fail it.
    g = generator(device)
    counts = permutation_counts(lambda: sample_perm(n, generator=g, device=device).cpu(), n, 40 * math.factorial(n))
    assert stats.chisquare(counts).pvalue > 1e-3


def test_the_uniformity_check_has_teeth():
    g = generator("cpu")
    rotation = lambda: torch.arange(5).roll(int(torch.randint(0, 5, (1,), generator=g)))  # noqa: E731
    assert stats.chisquare(permutation_counts(rotation, 5, 4800)).pvalue < 1e-3


@given(n=st.integers(2, 300), seed=st.integers(0, 2**31))
def test_cycle_has_no_fixed_points_and_no_two_cycles(n, seed):
    perm = sample_perm(n, cycle=True, generator=generator("cpu", seed)).tolist()
    assert sorted(perm) == list(range(n))
    assert all(perm[i] != i for i in range(n))
    i, length = 0, 0
    while True:  # one cycle through every sample
        i, length = perm[i], length + 1
        if i == 0:
            break
    assert length == n
    if n >= 3:
        assert all(perm[perm[i]] != i for i in range(n)), "no two samples are each other's partners"


@pytest.mark.parametrize("n", [4, 5])
def test_cycle_is_uniform_over_all_cycles(n):
    g = generator("cpu")
    counts = permutation_counts(lambda: sample_perm(n, cycle=True, generator=g), n, 60 * math.factorial(n - 1))
    cycles = counts[counts > 0]
    assert len(cycles) == math.factorial(n - 1), "every n-cycle occurs, and nothing else"
    assert stats.chisquare(cycles).pvalue > 1e-3


def test_a_batch_of_one_is_its_own_partner():
    assert sample_perm(1, cycle=True).tolist() == [0]


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_coins_follow_their_probability(p):
    heads = int(sample_coins(20_000, p, generator=generator("cpu")).sum())
    if p in (0.0, 1.0):
        assert heads == 20_000 * p
    else:
        assert stats.binomtest(heads, 20_000, p).pvalue > 1e-3


def test_one_coin_per_batch():
    coins = torch.stack([sample_coins(7, 0.5, per_sample=False, generator=generator("cpu", s)) for s in range(40)])
    assert bool((coins == coins[:, :1]).all()) and 0 < int(coins[:, 0].sum()) < 40


HUGE = [1e300, 1e308, 1.7e308, sys.float_info.max]
TINY = [1e-300, 1e-310, 1e-320, 5e-324]


class TestExtremeConcentrationsDrawPossibleWeights:
    """Every finite alpha > 0 is accepted, so every one must draw what Beta(alpha, alpha) gives."""

    @pytest.mark.parametrize("alpha", HUGE)
    @pytest.mark.parametrize("fold", [True, False])
    def test_a_huge_concentration_draws_one_half(self, alpha, fold):
        # The standard deviation, 1 / sqrt(8 alpha + 4), is far below float32's resolution at 0.5.
        lam = sample_lam(500, alpha, fold=fold, generator=generator("cpu"))
        assert bool((lam == 0.5).all()), lam.unique()

    @pytest.mark.parametrize("alpha", TINY)
    def test_a_tiny_concentration_draws_zero_or_one_evenly(self, alpha):
        # Beta(alpha, alpha) puts all but ~alpha of its mass at the ends, half at each.
        lam = sample_lam(2000, alpha, fold=False, generator=generator("cpu"))
        assert bool(((lam == 0) | (lam == 1)).all()), lam.unique()
        assert stats.binomtest(int((lam == 1).sum()), 2000, 0.5).pvalue > 1e-3
        assert bool((sample_lam(500, alpha, generator=generator("cpu")) == 1).all()), "folded: each sample keeps itself"

    @pytest.mark.parametrize("alpha", [TINY[2], HUGE[1]])
    def test_the_collate_mixes_within_its_promises(self, alpha):
        # fold=True keeps at least half of every sample, under Mixup and CutMix alike; no NaN reaches a pixel.
        samples, _ = image_samples(8, shape=(3, 8, 8))
        for settings in ({"alpha": alpha}, {"alpha": 0, "cutmix_alpha": alpha}):
            x, _, _, lam = MixupCollate(device="cpu", seed=0, **settings)(samples)
            assert bool(x.isfinite().all()) and bool(((lam >= 0.5) & (lam <= 1)).all()), (settings, lam)
