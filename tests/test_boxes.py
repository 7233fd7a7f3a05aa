"""CutMix geometry: boxes lie in the image, cover the share lam asks for, and paste copies pixels exactly."""

import math
from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from oracles import cut_regions, is_one_rectangle, paste_reference, region_reference
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


class TestPasteAtTheBorders:
    """Edges beyond a dimension are clipped to it on both paths; boxes of another dtype are refused by name."""

    @pytest.mark.parametrize("edges", [[-2, 3, 1, 4], [1, 9, -5, 2], [-4, -1, 0, 6], [2, 3, 6, 9], [0, 5, 0, 6]])
    def test_both_paths_clip_the_edges_to_the_row(self, edges, paste_path):
        x = torch.arange(2 * 5 * 6, dtype=torch.float32).view(2, 1, 5, 6)
        got = paste(x.clone(), x, torch.tensor([edges, [0, 0, 0, 0]]), torch.tensor([1, 0]))
        top, bottom, left, right = (min(max(e, 0), n) for e, n in zip(edges, (5, 5, 6, 6)))
        want = x.clone()
        want[0, :, top:bottom, left:right] = x[1, :, top:bottom, left:right]
        assert torch.equal(got, want)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
    def test_non_integer_boxes_are_refused_naming_them(self, dtype, paste_path):
        x = torch.rand(2, 1, 5, 6)
        boxes = torch.tensor([[0, 2, 1, 3], [0, 0, 0, 0]]).to(dtype)
        with pytest.raises(ValueError, match=f"paste's boxes must be an integer tensor.*{dtype}"):
            paste(x.clone(), x, boxes, torch.tensor([1, 0]))

    def test_mix_refuses_non_integer_boxes_naming_them(self):
        from mixup_collate.mix import mix
        from mixup_collate.params import CUT

        x, mode = torch.rand(2, 1, 5, 6), torch.full((2,), CUT, dtype=torch.uint8)
        with pytest.raises(ValueError, match="boxes must hold integer edges"):
            mix(x, torch.tensor([1, 0]), torch.ones(2), mode=mode, boxes=torch.tensor([[0.0, 2, 1, 3]] * 2))


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


SIZES = [(9,), (8,), (5, 6), (7, 4), (4, 7, 9), (3, 6, 5)]  # k = 1, 2, 3; odd and even sizes


class TestRegionsOverAnyDimensions:
    """A region over k dimensions: the contract's formulas, against the float64 oracle, for k = 1, 2, 3."""

    @pytest.mark.parametrize("sizes", SIZES)
    @pytest.mark.parametrize("seed", range(3))
    def test_regions_and_their_lam_equal_the_oracles(self, sizes, seed):
        g = generator(seed)
        lam = torch.rand(300, generator=g)  # down to 0: regions larger than half the sample, clipped at borders
        replay = torch.Generator().set_state(g.get_state())
        regions = sample_boxes(lam, *sizes, generator=g)
        centres = torch.stack([torch.randint(0, s, (300,), generator=replay) for s in sizes], 1).tolist()
        assert regions.shape == (300, 2 * len(sizes)) and regions.dtype == torch.int64
        kept = kept_fraction(regions, *sizes)
        clipped = 0
        for i, (edges, c) in enumerate(zip(regions.tolist(), centres)):
            expected, expected_lam = region_reference(float(lam[i]), sizes, c)
            assert edges == expected, f"sample {i}: lam {float(lam[i])}, centre {c}"
            assert float(kept[i]) == pytest.approx(expected_lam, abs=2**-24)
            clipped += any(e in (0, s) for e, s in zip(edges, [v for s in sizes for v in (s, s)]))
        assert clipped > 30, "regions at the borders are covered"

    @pytest.mark.parametrize("sizes", SIZES)
    def test_a_region_never_exceeds_its_share(self, sizes):
        lam = torch.rand(2000, generator=generator(7))
        regions = sample_boxes(lam, *sizes, generator=generator(8))
        volume = (regions[:, 1::2] - regions[:, 0::2]).prod(1)
        assert bool((volume <= (1 - lam.double()) * math.prod(sizes)).all())

    @pytest.mark.parametrize("sizes", [(9,), (6, 7, 8), (5, 9)])
    def test_positions_are_uniform_in_each_dimension(self, sizes):
        # Sides of 1 (the share is 0.2 ** k): a region's start is its centre, uniform over the dimension.
        n, k = 4000, len(sizes)
        regions = sample_boxes(torch.full((n,), 1 - 0.2**k), *sizes, generator=generator(9))
        assert bool(((regions[:, 1::2] - regions[:, 0::2]) == 1).all())
        for d, size in enumerate(sizes):
            counts = torch.bincount(regions[:, 2 * d], minlength=size).tolist()
            assert len(counts) == size and stats.chisquare(counts).pvalue > 1e-3, f"dimension {d}"

    @pytest.mark.parametrize("sizes", [(9,), (6, 7, 8)])
    def test_minmax_regions_lie_inside_with_sides_in_range(self, sizes):
        regions = sample_boxes(torch.ones(2000), *sizes, minmax=(0.3, 0.7), generator=generator(10))
        sides = regions[:, 1::2] - regions[:, 0::2]
        for d, size in enumerate(sizes):
            assert sides[:, d].min() >= math.floor(0.3 * size) and sides[:, d].max() <= math.floor(0.7 * size)
            assert bool((regions[:, 2 * d] >= 0).all() and (regions[:, 2 * d + 1] <= size).all())
        assert len({tuple(r) for r in sides.tolist()}) > 4, "sides drawn per dimension"

    def test_the_default_two_dimensions_are_todays_boxes(self):
        # (top, bottom, left, right) over (H, W): the k = 2 region is the box, bit for bit.
        lam = torch.rand(500, generator=generator(11))
        g = generator(12)
        replay = torch.Generator().set_state(g.get_state())
        regions = sample_boxes(lam, 13, 8, generator=g).tolist()
        cy, cx = torch.randint(0, 13, (500,), generator=replay), torch.randint(0, 8, (500,), generator=replay)
        for i in range(500):
            assert regions[i] == region_reference(float(lam[i]), (13, 8), (int(cy[i]), int(cx[i])))[0]

    @pytest.mark.parametrize(
        "shape, dims",
        [((4, 3, 6, 5), (-4, -2, -1)), ((4, 3, 6, 5), (-4,)), ((2, 7, 9), (-1,)), ((2, 7, 9), (-2,)), ((11,), (-1,))],
    )
    def test_paste_copies_the_region_over_its_dimensions_and_every_index_of_the_others(self, shape, dims, paste_path):
        n = 5
        x = torch.rand((n, *shape), generator=generator(13))
        perm = torch.tensor([2, 0, 4, 1, 3])
        sizes = tuple(shape[d] for d in dims)
        regions = sample_boxes(torch.rand(n, generator=generator(14)), *sizes, generator=generator(15))
        out = paste(x.clone(), x, regions, perm, dims)
        assert torch.equal(out.double(), paste_reference(x, perm.tolist(), regions.tolist(), dims))
        masks = box_masks(regions, *sizes)
        assert masks.shape == (n, *sizes) and torch.equal(
            masks.flatten(1).sum(1), (regions[:, 1::2] - regions[:, 0::2]).prod(1)
        )

    def test_paste_refuses_dims_that_do_not_fit(self, paste_path):
        x = torch.rand(3, 4, 5)
        regions = torch.zeros(3, 6, dtype=torch.int64)
        with pytest.raises(ValueError, match=r"boxes \(3, 6\).*dims \(-3, -2, -1\)"):
            paste(x.clone(), x, regions, torch.arange(3), (-3, -2, -1))
        for dims in [(-1, -2), (1, 2), (-1, 0)]:
            with pytest.raises(ValueError, match=rf"dims \({dims[0]}, {dims[1]}\)"):
                paste(x.clone(), x, torch.zeros(3, 4, dtype=torch.int64), torch.arange(3), dims)
