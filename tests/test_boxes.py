"""CutMix geometry: boxes lie in the image, cover the share lam asks for, and paste copies pixels exactly."""

from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from oracles import cut_regions, is_one_rectangle
from scipy import stats

from mixup_collate.boxes import box_masks, kept_fraction, paste, sample_boxes


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


@given(
    n=st.integers(1, 40),
    height=st.integers(1, 37),
    width=st.integers(1, 37),
    seed=st.integers(0, 2**31),
)
def test_boxes_lie_inside_and_never_exceed_their_share(n, height, width, seed):
    g = generator(seed)
    lam = torch.rand(n, generator=g)
    boxes = sample_boxes(lam, height, width, generator=g)
    assert boxes.dtype == torch.int64 and boxes.shape == (n, 4)
    top, bottom, left, right = boxes.unbind(1)
    assert bool(((top >= 0) & (top <= bottom) & (bottom <= height)).all())
    assert bool(((left >= 0) & (left <= right) & (right <= width)).all())
    area = (bottom - top) * (right - left)
    assert bool((area <= (1 - lam.double()) * height * width).all()), "a box never takes more than 1 - lam"


def test_unclipped_boxes_have_the_requested_sides():
    lam = torch.full((2000,), 0.75)  # sides = half the image's
    boxes = sample_boxes(lam, 32, 20, generator=generator())
    heights, widths = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    inside = (boxes[:, 0] > 0) & (boxes[:, 1] < 32) & (boxes[:, 2] > 0) & (boxes[:, 3] < 20)
    assert bool(inside.any())
    assert set(heights[inside].tolist()) == {16} and set(widths[inside].tolist()) == {10}
    assert bool((heights <= 16).all()) and bool((widths <= 10).all()), "clipping only shrinks a box"


def test_centres_are_spread_over_the_whole_image():
    boxes = sample_boxes(torch.full((4000,), 0.96), 10, 10, generator=generator())
    centres = ((boxes[:, 0] + boxes[:, 1]) // 2) * 10 + (boxes[:, 2] + boxes[:, 3]) // 2
    assert len(set(centres.tolist())) == 100


def test_minmax_draws_side_ratios_in_range_and_keeps_boxes_inside():
    boxes = sample_boxes(torch.ones(3000), 50, 40, minmax=(0.2, 0.6), generator=generator())
    heights, widths = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    assert heights.min() >= 10 and heights.max() <= 30 and widths.min() >= 8 and widths.max() <= 24
    assert heights.float().std() > 3 and not torch.equal(heights, widths * 50 // 40), "sides drawn independently"
    assert bool((boxes[:, 0] >= 0).all() and (boxes[:, 1] <= 50).all() and (boxes[:, 3] <= 40).all())


def test_kept_fraction_is_exact():
    boxes = torch.tensor([[0, 2, 0, 3], [0, 0, 1, 4], [0, 5, 0, 7]])
    kept = kept_fraction(boxes, 5, 7)
    assert kept.dtype == torch.float32
    assert torch.equal(kept, torch.tensor([29 / 35, 1.0, 0.0], dtype=torch.float64).float())


def test_masks_mark_exactly_the_box():
    mask = box_masks(torch.tensor([[1, 3, 2, 5]]), 4, 6)
    expected = torch.zeros(1, 4, 6, dtype=torch.bool)
    expected[0, 1:3, 2:5] = True
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("shape", [(3, 7, 9), (8, 8), (2, 3, 5, 6)])
def test_paste_copies_one_rectangle_from_the_partner(dtype, shape, paste_path):
    n = 6
    g = generator(1)
    x = (torch.arange(n, dtype=torch.float64) * 40).reshape(-1, *([1] * len(shape))) + torch.rand((n, *shape))
    x = x.to(dtype)
    perm = torch.tensor([1, 2, 3, 4, 5, 0])
    boxes = sample_boxes(torch.rand(n, generator=g) * 0.5 + 0.5, shape[-2], shape[-1], generator=g)
    out = paste(x.clone(), x, boxes, perm)
    assert out.dtype == dtype and out.shape == x.shape
    regions = cut_regions(out, x, x[perm])
    for i in range(n):
        assert is_one_rectangle(regions[i])
        assert int(regions[i].sum()) == int((boxes[i, 1] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 2]))


def test_paste_keeps_nan_and_inf_where_they_are(paste_path):
    x = torch.zeros(2, 1, 4, 4)
    x[1, 0, 0, 0] = float("inf")
    x[0, 0, 3, 3] = float("nan")
    out = paste(x.clone(), x, torch.tensor([[0, 2, 0, 2], [0, 0, 0, 0]]), torch.tensor([1, 0]))
    assert out[0, 0, 0, 0] == float("inf") and bool(out[0, 0, 3, 3].isnan())
    assert int((~out.isfinite()).sum()) == 3


def test_paste_names_bad_shapes(paste_path):
    x = torch.rand(4, 5, 5)
    with pytest.raises(ValueError, match=r"paste needs out \(B, \*S\), boxes \(B, 2k\).*got out \(4, 5\)"):
        paste(torch.rand(4, 5), x, torch.zeros(4, 4, dtype=torch.int64), torch.arange(4))
    with pytest.raises(ValueError, match=r"boxes \(3, 4\)"):
        paste(x.clone(), x, torch.ones(3, 4, dtype=torch.int64), torch.arange(4))
    with pytest.raises(ValueError, match=r"perm \[0, 4, 1, 2\]"):
        paste(x.clone(), x, torch.tensor([[0, 1, 0, 1]] * 4), torch.tensor([0, 4, 1, 2]))


def test_paste_fills_a_number_and_converts_to_outs_dtype(paste_path):
    out = torch.ones(2, 3, 4)
    paste(out, 0.0, torch.tensor([[1, 3, 0, 2], [0, 0, 0, 0]]))
    assert float(out.sum()) == 24 - 4 and bool((out[0, 1:3, 0:2] == 0).all())
    source = torch.full((2, 3, 4), 7, dtype=torch.uint8)
    paste(out, source, torch.tensor([[0, 1, 0, 1], [0, 0, 0, 0]]), torch.tensor([1, 0]))
    assert out.dtype == torch.float32 and float(out[0, 0, 0]) == 7.0


def test_training_pastes_through_this_paste(monkeypatch):
    """The collate's inputs and per-pixel lam are pasted by boxes.paste itself (editing it changes training)."""
    from mixup_collate import MixupCollate
    from mixup_collate import mix as mix_module

    assert mix_module.paste is paste
    calls = []

    def spy(out, *args):
        calls.append(tuple(out.shape))
        return paste(out, *args)

    monkeypatch.setattr(mix_module, "paste", spy)
    samples = [(torch.rand(3, 6, 5), torch.randint(0, 3, (6, 5))) for _ in range(4)]
    MixupCollate(alpha=0, cutmix_alpha=1.0, dense_targets=True, device="cpu", seed=0)(samples).finish()
    assert sorted(calls) == [(4, 3, 6, 5), (4, 6, 5)]


HEIGHT, WIDTH = 20, 30  # unequal, so a side or an edge computed from the other axis shows


def chi_square_pvalue(observed, expected):
    """Pearson's test of ``observed`` counts (a Counter) against ``expected`` ones (a dict); outcomes outside fail."""
    impossible = set(observed) - set(expected)
    assert not impossible, f"outcomes the model never gives: {sorted(impossible)[:5]}"
    keys = sorted(expected)
    return stats.chisquare([observed.get(k, 0) for k in keys], [expected[k] for k in keys]).pvalue


def centred_edges(size, side):
    """The ``(start, end)`` of a side-``side`` interval centred on each pixel of ``range(size)``, clipped: one each."""
    return Counter((max(0, c - side // 2), min(size, c - side // 2 + side)) for c in range(size))


class TestBoxPositionsFollowTheirDistribution:
    """Goodness of fit of where boxes lie, on both axes, for both ways of drawing them."""

    n = 6000

    @pytest.mark.parametrize("axis", ["rows", "columns"])
    def test_alpha_boxes_are_centred_on_a_uniform_pixel_and_clipped(self, axis):
        # lam = 15/16: sides H/4 = 5 and floor(W/4) = 7, odd, so "centred" has one meaning.
        boxes = sample_boxes(torch.full((self.n,), 15 / 16), HEIGHT, WIDTH, generator=generator(2))
        size, side, edges = (HEIGHT, 5, boxes[:, :2]) if axis == "rows" else (WIDTH, 7, boxes[:, 2:])
        observed = Counter(map(tuple, edges.tolist()))
        expected = {k: self.n * v / size for k, v in centred_edges(size, side).items()}
        assert chi_square_pvalue(observed, expected) > 1e-3

    @pytest.mark.parametrize("axis", ["rows", "columns"])
    def test_minmax_boxes_lie_anywhere_inside_uniformly(self, axis):
        # Given its side s, a box's start is uniform over the size - s + 1 places that keep it inside.
        boxes = sample_boxes(torch.ones(self.n), HEIGHT, WIDTH, minmax=(0.2, 0.6), generator=generator(3))
        size, edges = (HEIGHT, boxes[:, :2]) if axis == "rows" else (WIDTH, boxes[:, 2:])
        starts, sides = edges[:, 0], edges[:, 1] - edges[:, 0]
        statistic, dof = 0.0, 0
        for side in sides.unique().tolist():
            places = size - side + 1
            chosen = starts[sides == side]
            if len(chosen) < 5 * places:  # too few for the test (the side drawn only at the range's very end)
                continue
            assert int(chosen.min()) >= 0 and int(chosen.max()) < places, "a box runs outside the image"
            counts = torch.bincount(chosen, minlength=places).double()
            statistic += float(((counts - len(chosen) / places) ** 2).sum() / (len(chosen) / places))
            dof += places - 1
        assert dof > 50 and stats.chi2.sf(statistic, dof) > 1e-3

    @pytest.mark.parametrize("axis", ["rows", "columns"])
    def test_minmax_sides_are_a_uniform_ratio_of_their_own_axis(self, axis):
        lo, hi = 0.2, 0.6
        boxes = sample_boxes(torch.ones(self.n), HEIGHT, WIDTH, minmax=(lo, hi), generator=generator(4))
        size, edges = (HEIGHT, boxes[:, :2]) if axis == "rows" else (WIDTH, boxes[:, 2:])
        observed = Counter((edges[:, 1] - edges[:, 0]).tolist())
        # floor(size * U(lo, hi)) = s for U in [s / size, (s + 1) / size).
        mass = {s: max(0.0, min(hi, (s + 1) / size) - max(lo, s / size)) / (hi - lo) for s in range(size + 1)}
        expected = {s: self.n * m for s, m in mass.items() if m > 0}
        assert chi_square_pvalue(observed, expected) > 1e-3

    def test_the_fit_has_teeth(self):
        # A start never at the last place (a box that never touches the bottom edge) fails the test above.
        size, side = HEIGHT, 6
        g = generator(5)
        shifted = (torch.rand(self.n, dtype=torch.float64, generator=g) * (size - side)).floor().long()
        counts = torch.bincount(shifted, minlength=size - side + 1).tolist()
        assert stats.chisquare(counts).pvalue < 1e-10
        one_off = Counter((max(0, c - 2), min(WIDTH, c - 2 + 7)) for c in range(WIDTH))  # left edge from h // 2
        expected = {k: self.n * v / WIDTH for k, v in centred_edges(WIDTH, 7).items()}
        with pytest.raises(AssertionError, match="never gives"):
            chi_square_pvalue(Counter({k: v * 200 for k, v in one_off.items()}), expected)
