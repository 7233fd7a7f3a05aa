"""mix, transform, pair, mix_targets and soft_targets: the formulas hold on every code path, for any batch."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from oracles import cut_regions, is_one_rectangle, mixup_reference

from mixup_collate.boxes import kept_fraction, sample_boxes
from mixup_collate.mix import Scratch, mix, mix_targets, pair, soft_targets, transform
from mixup_collate.params import BLENDED, CUT, UNMIXED


@st.composite
def batches(draw, dtypes=(torch.float32, torch.float64, torch.uint8)):
    b = draw(st.integers(1, 9))
    shape = draw(st.lists(st.integers(1, 5), min_size=0, max_size=3))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**31))
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b, *shape), generator=g, dtype=torch.float64) * 255
    x = x.to(dtype)
    perm = torch.randperm(b, generator=g)
    lam = (torch.rand(b, generator=g) * 0.5 + 0.5).float()
    return x, perm, lam


reference = mixup_reference


@given(batch=batches())
def test_every_row_is_lam_x_plus_one_minus_lam_partner(kernel_path, batch):
    x, perm, lam = batch
    out = mix(x, perm, lam)
    assert out.shape == x.shape
    assert out.dtype == (x.dtype if x.is_floating_point() else torch.float32)
    torch.testing.assert_close(out.double(), reference(x, perm, lam), rtol=1e-5, atol=1e-4)


@given(batch=batches(dtypes=(torch.float32, torch.float64)))
def test_overwriting_the_input_gives_the_same_result_in_its_memory(kernel_path, batch):
    x, perm, lam = batch
    expected = mix(x.clone(), perm, lam)
    out = mix(x, perm, lam, overwrite_input=True)
    assert out.data_ptr() == x.data_ptr()
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-5)


@given(batch=batches(), seed=st.integers(0, 2**31))
def test_any_partner_indices_not_only_permutations(kernel_path, batch, seed):
    # Sampling with replacement, or a fixed partner: the in-place row order would be wrong for these.
    x, _, lam = batch
    idx = torch.randint(0, x.shape[0], (x.shape[0],), generator=torch.Generator().manual_seed(seed))
    out = mix(x.clone(), idx, lam, overwrite_input=True)
    torch.testing.assert_close(out.double(), reference(x, idx, lam), rtol=1e-5, atol=1e-4)


def test_out_of_range_indices_are_named():
    with pytest.raises(ValueError, match=r"indices in \[0, 3\).*\[0, 5, 1\]"):
        mix(torch.rand(3, 2), torch.tensor([0, 5, 1]), torch.ones(3))


@given(batch=batches(), reuse=st.booleans())
def test_a_reused_scratch_buffer_never_leaks_into_results(kernel_path, batch, reuse):
    x, perm, lam = batch
    scratch = Scratch()
    first = mix(x, perm, lam, scratch=scratch)
    held = first.clone()
    second = mix(x.flip(0).contiguous() if reuse else x, perm.flip(0), lam, scratch=scratch)
    assert torch.equal(first, held), "the batch the caller holds is not touched by the next mix"
    assert first.untyped_storage().data_ptr() != second.untyped_storage().data_ptr()
    assert scratch._buffer is None or scratch._buffer.untyped_storage().data_ptr() not in (
        first.untyped_storage().data_ptr(),
        second.untyped_storage().data_ptr(),
    )


def test_input_is_untouched_without_permission(kernel_path):
    x = torch.rand(6, 3, 4, 4)
    before = x.clone()
    mix(x, torch.randperm(6), torch.full((6,), 0.7))
    assert torch.equal(x, before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_uint8_is_widened_scaled_and_normalised_in_the_pass(kernel_path, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (5, 3, 6, 6), dtype=torch.uint8, generator=g)
    perm, lam = torch.randperm(5, generator=g), torch.rand(5, generator=g) * 0.5 + 0.5
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(3, 1, 1)
    out = mix(x, perm, lam, dtype=dtype, scale=1 / (255 * std), shift=-mean / std)
    assert out.dtype == dtype
    expected = (reference(x, perm, lam) / 255 - mean.double()) / std.double()
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_output_is_the_float32_result_rounded_once(kernel_path, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=g)
    perm, lam = torch.randperm(16, generator=g), torch.rand(16, generator=g) * 0.5 + 0.5
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(3, 1, 1)
    out = mix(x, perm, lam, dtype=dtype, scale=1 / (255 * std), shift=-mean / std)
    exact = (reference(x, perm, lam) / 255 - mean.double()) / std.double()
    rounded = exact.to(dtype)
    ulp = (rounded.double().abs() * torch.finfo(dtype).eps).clamp(min=torch.finfo(dtype).tiny)
    assert bool(((out.double() - rounded.double()).abs() <= ulp).all()), "within one ulp of one rounding"


def test_mixed_uint8_pixels_are_not_rounded():
    x = torch.tensor([[0], [1]], dtype=torch.uint8)
    out = mix(x, torch.tensor([1, 0]), torch.tensor([0.5, 0.75]))
    assert out.flatten().tolist() == [0.5, 0.75]


def test_channels_last(kernel_path):
    x = torch.rand(4, 3, 5, 5)
    perm, lam = torch.randperm(4), torch.rand(4) * 0.5 + 0.5
    out = mix(x, perm, lam, channels_last=True)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.double(), reference(x, perm, lam))
    with pytest.raises(ValueError, match="channels_last needs 4-D"):
        mix(torch.rand(4, 3), perm, lam, channels_last=True)


def test_batch_of_one_is_returned_as_is(kernel_path):
    x = torch.rand(1, 3, 4)
    torch.testing.assert_close(mix(x, torch.tensor([0]), torch.tensor([0.8])), x)


def test_lam_one_keeps_the_sample_and_lam_half_averages(kernel_path):
    x = torch.rand(3, 10)
    perm = torch.tensor([1, 2, 0])
    torch.testing.assert_close(mix(x, perm, torch.ones(3)), x)
    torch.testing.assert_close(mix(x, perm, torch.full((3,), 0.5)), (x + x[perm]) / 2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_stay_in_place(kernel_path, bad):
    x = torch.zeros(4, 2, 3)
    x[2, 1, 1] = bad
    perm = torch.tensor([2, 3, 0, 1])  # row 0 takes row 2 as partner; row 2 takes row 0
    lam = torch.full((4,), 0.75)
    out = mix(x, perm, lam)
    for row in (0, 2):
        value = out[row, 1, 1].item()
        assert value != value if bad != bad else value == bad
    expected_finite = torch.ones_like(out, dtype=torch.bool)
    expected_finite[[0, 2], 1, 1] = False
    assert torch.equal(torch.isfinite(out), expected_finite)


def test_rejects_wrong_shapes_and_dtypes():
    x = torch.rand(4, 3)
    with pytest.raises(ValueError, match=r"perm must have shape \(4,\).*\(3,\)"):
        mix(x, torch.arange(3), torch.ones(4))
    with pytest.raises(ValueError, match=r"lam must have shape \(4,\).*\(4, 1\)"):
        mix(x, torch.arange(4), torch.ones(4, 1))
    with pytest.raises(TypeError, match="int64.*stack_x"):
        mix(torch.ones(4, 3, dtype=torch.int64), torch.arange(4), torch.ones(4))
    with pytest.raises(TypeError, match="floating point"):
        mix(x, torch.arange(4), torch.ones(4), dtype=torch.int32)
    with pytest.raises(ValueError, match="B >= 1"):
        mix(torch.rand(0, 3), torch.arange(0), torch.ones(0))


def test_the_mode_blends_some_samples_cuts_others_and_keeps_the_rest(kernel_path, paste_path):
    g = torch.Generator().manual_seed(3)
    n = 8
    x = (torch.arange(n).view(-1, 1, 1, 1) * 30 + torch.randint(0, 20, (n, 3, 9, 7), generator=g)).to(torch.uint8)
    perm = torch.tensor([1, 2, 3, 4, 5, 6, 7, 0])
    lam = torch.rand(n, generator=g) * 0.5 + 0.5
    rows = torch.tensor([0, 3, 5])
    mode = torch.full((n,), CUT, dtype=torch.uint8)
    mode[rows] = BLENDED
    mode[6] = UNMIXED  # sample 6 stays as it is, whatever its box
    boxes = sample_boxes(torch.full((n,), 0.6), 9, 7, generator=g)
    out = mix(x, perm, lam, mode=mode, boxes=boxes, scale=1 / 255)
    blended = reference(x, perm, lam) / 255
    torch.testing.assert_close(out[rows].double(), blended[rows], rtol=1e-6, atol=1e-6)
    others = torch.tensor([1, 2, 4, 7])
    converted = transform(x, scale=1 / 255)  # pasted pixels are copied, then converted like every pixel
    regions = cut_regions(out[others], converted[others], converted[perm[others]])
    for i, region in zip(others.tolist(), regions):
        assert is_one_rectangle(region)
        assert float(1 - region.double().mean()) == pytest.approx(float(kept_fraction(boxes[i : i + 1], 9, 7)))
    assert torch.equal(out[6], converted[6])


def test_transform_converts_without_mixing():
    x = torch.randint(0, 256, (3, 2, 4), dtype=torch.uint8)
    out = transform(x, scale=1 / 255)
    torch.testing.assert_close(out, x.float() / 255)
    f = torch.rand(3, 2, 4)
    assert transform(f, overwrite_input=True) is f


@given(batch=batches(dtypes=(torch.float32, torch.uint8, torch.int64)))
def test_pair_stacks_each_row_with_its_partner(batch):
    x, perm, _ = batch
    out = pair(x, perm)
    assert out.shape == (x.shape[0], 2, *x.shape[1:])
    torch.testing.assert_close(out[:, 0].double(), x.double())
    torch.testing.assert_close(out[:, 1].double(), x[perm].double())
    if x.dtype == torch.int64:
        assert out.dtype == torch.int64


@given(batch=batches(dtypes=(torch.float32, torch.float64)))
def test_mix_targets_is_the_linear_combination(batch):
    y, perm, lam = batch
    torch.testing.assert_close(mix_targets(y, perm, lam).double(), reference(y, perm, lam), rtol=1e-5, atol=1e-4)


def test_mix_targets_keeps_weight_one_on_a_shared_class():
    y = torch.nn.functional.one_hot(torch.tensor([3, 3, 1]), 5).float()
    out = mix_targets(y, torch.tensor([1, 0, 2]), torch.tensor([0.6, 0.9, 0.7]))
    assert torch.equal(out[0], y[0]) and torch.equal(out[1], y[1])
    assert torch.equal(out.sum(1), torch.ones(3))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_soft_targets_mix_smoothed_one_hots(smoothing):
    y, perm, lam = torch.tensor([0, 2, 2, 1]), torch.tensor([3, 0, 1, 2]), torch.tensor([0.9, 0.6, 0.5, 1.0])
    smooth = lambda t: F.one_hot(t, 3).double() * (1 - smoothing) + smoothing / 3  # noqa: E731
    expected = lam.double()[:, None] * smooth(y) + (1 - lam.double()[:, None]) * smooth(y[perm])
    out = soft_targets(y, perm, lam, 3, smoothing)
    assert out.shape == (4, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-7)
    torch.testing.assert_close(out.sum(1), torch.ones(4))


def test_soft_targets_of_float_targets_mix_linearly_then_smooth():
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    out = soft_targets(y, torch.tensor([1, 0]), torch.tensor([0.75, 0.5]), 3, 0.3)
    mixed = torch.tensor([[0.75, 0.25, 0.75], [0.5, 0.5, 0.5]])
    torch.testing.assert_close(out, mixed * 0.7 + 0.1)


def test_a_box_counts_for_a_cut_row_only_on_every_path(kernel_path, paste_path):
    """One meaning for mode and boxes: a blended or unmixed row's box is ignored, on every path alike."""
    x = torch.rand(4, 2, 6, 6)
    perm, lam = torch.tensor([1, 2, 3, 0]), torch.tensor([0.7, 0.6, 0.9, 0.8])
    mode = torch.tensor([BLENDED, UNMIXED, CUT, BLENDED], dtype=torch.uint8)
    boxes = torch.tensor([[0, 3, 0, 3]] * 4)
    for overwrite in (False, True):
        out = mix(x.clone(), perm, lam, mode=mode, boxes=boxes, overwrite_input=overwrite)
        expected = reference(x, perm, lam)
        assert torch.allclose(out[[0, 3]].double(), expected[[0, 3]], atol=1e-6), "blended rows are only blended"
        assert torch.equal(out[1], x[1]), "an unmixed row is its own"
        assert torch.equal(out[2, :, :3, :3], x[3, :, :3, :3]) and torch.equal(out[2, :, 3:], x[2, :, 3:])


def test_cut_rows_without_boxes_are_refused():
    with pytest.raises(ValueError, match="CUT rows need boxes"):
        mix(torch.rand(2, 1, 3, 3), torch.tensor([1, 0]), torch.ones(2), mode=torch.tensor([CUT, UNMIXED]))
