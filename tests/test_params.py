"""draw_params: who is mixed, by Mixup or CutMix, with which weight and box; frequencies as configured."""

import pytest
import torch
from scipy import stats

from mixup_collate.boxes import kept_fraction
from mixup_collate.params import BLENDED, CUT, UNMIXED, MixParams, draw_params


def draw(n=64, shape=(3, 16, 12), seed=0, **kwargs):
    kwargs.setdefault("alpha", 0.4)
    return draw_params(n, shape, generator=torch.Generator().manual_seed(seed), **kwargs)


def kinds(p):
    """Per sample: 'mixup', 'cutmix' or 'none' (a cut sample whose box came out empty is unchanged: 'none')."""
    n = p.perm.shape[0]
    assert p.mode.dtype == torch.uint8 and set(p.mode.tolist()) <= {UNMIXED, BLENDED, CUT}
    boxes = torch.zeros(n, 4, dtype=torch.int64) if p.boxes is None else p.boxes
    nonempty = (boxes[:, 1] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 2])
    assert not bool((nonempty & (p.mode != CUT)).any()), "only a cut sample has a box"
    assert bool((p.lam[p.mode == UNMIXED] == 1).all()), "an unmixed sample keeps weight 1"
    cut = nonempty & (p.mode == CUT)
    return ["mixup" if m == BLENDED else "cutmix" if c else "none" for m, c in zip(p.mode.tolist(), cut.tolist())]


def test_mixup_only_blends_every_sample_with_folded_weights():
    p = draw()
    assert p.boxes is None and p.blends_all and p.mixes
    assert sorted(p.perm.tolist()) == list(range(64))
    assert p.lam.dtype == torch.float32 and bool(((p.lam >= 0.5) & (p.lam <= 1)).all())


def test_cutmix_only_cuts_every_sample_and_lam_is_the_kept_share():
    p = draw(alpha=0.0, cutmix_alpha=1.0)
    assert bool((p.mode == CUT).all())
    torch.testing.assert_close(p.lam, kept_fraction(p.boxes, 16, 12), rtol=0, atol=0)
    assert bool((p.lam >= 0.5).all()), "fold: every sample keeps at least half of its image"
    assert len({tuple(b) for b in p.boxes.tolist()}) > 32, "boxes differ across samples"


def test_cutmix_without_fold_may_take_most_of_an_image():
    lam = torch.cat([draw(alpha=0.0, cutmix_alpha=1.0, fold=False, seed=s).lam for s in range(4)])
    assert bool((lam < 0.5).any()) and bool((lam > 0.5).any())


@pytest.mark.parametrize("switch_prob", [0.2, 0.5, 0.9])
def test_switch_prob_is_the_share_of_cutmix_samples(switch_prob):
    k = [kind for s in range(40) for kind in kinds(draw(cutmix_alpha=1.0, switch_prob=switch_prob, seed=s))]
    cut = sum(kind == "cutmix" for kind in k)
    # Tiny CutMix boxes can come out empty (the sample is then unchanged): count those too.
    empty = sum(kind == "none" for kind in k)
    assert stats.binomtest(cut + empty, len(k), switch_prob).pvalue > 1e-3
    assert empty < 0.05 * len(k)


@pytest.mark.parametrize("prob", [0.0, 0.3, 0.8])
def test_prob_is_the_share_of_mixed_samples(prob):
    params = [draw(cutmix_alpha=1.0, prob=prob, seed=s) for s in range(40)]
    unmixed = [lam == 1 and kind != "mixup" for p in params for lam, kind in zip(p.lam.tolist(), kinds(p))]
    mixed = len(unmixed) - sum(unmixed)
    if prob == 0.0:
        assert mixed == 0 and all(bool((p.lam == 1).all()) for p in params)
    else:
        assert stats.binomtest(mixed, len(unmixed), prob).pvalue > 1e-3


def test_one_draw_per_batch():
    for s in range(20):
        p = draw(cutmix_alpha=1.0, per_sample=False, n=9, seed=s)
        assert len(set(kinds(p))) == 1 and len(set(p.lam.tolist())) == 1
        if p.boxes is not None:
            assert bool((p.boxes == p.boxes[0]).all()), "one box for the batch"


def test_minmax_boxes():
    p = draw(alpha=0.0, cutmix_minmax=(0.3, 0.6), shape=(20, 30))
    heights, widths = p.boxes[:, 1] - p.boxes[:, 0], p.boxes[:, 3] - p.boxes[:, 2]
    assert heights.min() >= 6 and heights.max() <= 12 and widths.min() >= 9 and widths.max() <= 18
    torch.testing.assert_close(p.lam, kept_fraction(p.boxes, 20, 30), rtol=0, atol=0)


def test_cycle_partners():
    p = draw(cycle=True, n=9)
    assert all(i != j for i, j in enumerate(p.perm.tolist()))


def test_same_generator_state_same_draws():
    a, b = draw(cutmix_alpha=1.0, prob=0.5, seed=3), draw(cutmix_alpha=1.0, prob=0.5, seed=3)
    for name in ("perm", "lam", "mode", "boxes"):
        assert torch.equal(getattr(a, name), getattr(b, name))


def test_identity():
    p = MixParams.identity(5)
    assert not p.mixes and p.perm.tolist() == list(range(5)) and p.lam.tolist() == [1.0] * 5


class TestCorrectLam:
    """correct_lam=False (timm's) gives CutMix samples the drawn lam; the boxes are the same either way."""

    def test_the_drawn_lam_is_folded_beta_and_never_above_the_kept_share(self):
        kwargs = {"n": 4000, "shape": (3, 7, 9), "alpha": 0.0, "cutmix_alpha": 1.0, "seed": 5}
        kept, drawn = draw(**kwargs), draw(**kwargs, correct_lam=False)
        assert torch.equal(kept.boxes, drawn.boxes) and torch.equal(kept.perm, drawn.perm)
        assert torch.equal(kept.lam, kept_fraction(kept.boxes, 7, 9))
        assert bool((drawn.lam <= kept.lam).all()), "a box never covers more than its drawn share"
        assert bool((drawn.lam < kept.lam).float().mean() > 0.5), "on a 7x9 image most boxes are rounded or clipped"
        # Beta(1, 1) folded to max(lam, 1 - lam) is uniform on [0.5, 1].
        assert stats.kstest(drawn.lam.double().numpy(), stats.uniform(0.5, 0.5).cdf).pvalue > 1e-3

    def test_blended_samples_are_unaffected(self):
        a = draw(alpha=0.4, cutmix_alpha=1.0, seed=2)
        b = draw(alpha=0.4, cutmix_alpha=1.0, seed=2, correct_lam=False)
        blended = a.mode == BLENDED
        assert torch.equal(a.lam[blended], b.lam[blended]) and not torch.equal(a.lam, b.lam)
