"""mix, transform, pair and mix_targets: the formulas hold on every code path, for any batch."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mixup_collate import mix as M
from mixup_collate.mix import mix, mix_targets, pair, transform


@pytest.fixture(params=["vectorised", "row_loop"])
def path(request, monkeypatch):
    """Run a test on the one-pass vectorised kernel and on the cache-sized row-by-row loop."""
    if request.param == "row_loop":
        monkeypatch.setattr(M, "ROW_LOOP_MIN_BYTES", 0)
        monkeypatch.setattr(M, "CACHE_BYTES", 0)
    return request.param


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


def reference(x, perm, lam, scale=1.0, shift=0.0):
    """The mixup formula in float64, written independently of the kernel."""
    x = x.double()
    w = lam.double().reshape(-1, *([1] * (x.ndim - 1)))
    return (w * x + (1 - w) * x[perm]) * scale + shift


@given(batch=batches())
def test_every_row_is_lam_x_plus_one_minus_lam_partner(path, batch):
    x, perm, lam = batch
    out = mix(x, perm, lam)
    assert out.shape == x.shape
    assert out.dtype == (x.dtype if x.is_floating_point() else torch.float32)
    torch.testing.assert_close(out.double(), reference(x, perm, lam), rtol=1e-5, atol=1e-4)


@given(batch=batches(dtypes=(torch.float32, torch.float64)))
def test_overwriting_the_input_gives_the_same_result(path, batch):
    x, perm, lam = batch
    expected = mix(x.clone(), perm, lam)
    out = mix(x, perm, lam, overwrite_input=True)
    assert out.data_ptr() == x.data_ptr()
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-5)


def test_input_is_untouched_without_permission(path):
    x = torch.rand(6, 3, 4, 4)
    before = x.clone()
    mix(x, torch.randperm(6), torch.full((6,), 0.7))
    assert torch.equal(x, before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_uint8_is_widened_scaled_and_normalised_in_the_pass(path, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (5, 3, 6, 6), dtype=torch.uint8, generator=g)
    perm, lam = torch.randperm(5, generator=g), torch.rand(5, generator=g) * 0.5 + 0.5
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(3, 1, 1)
    out = mix(x, perm, lam, dtype=dtype, scale=1 / (255 * std), shift=-mean / std)
    assert out.dtype == dtype
    expected = (reference(x, perm, lam) / 255 - mean.double()) / std.double()
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)


def test_mixed_uint8_pixels_are_not_rounded():
    x = torch.tensor([[0], [1]], dtype=torch.uint8)
    out = mix(x, torch.tensor([1, 0]), torch.tensor([0.5, 0.75]))
    assert out.flatten().tolist() == [0.5, 0.75]


def test_channels_last(path):
    x = torch.rand(4, 3, 5, 5)
    perm, lam = torch.randperm(4), torch.rand(4) * 0.5 + 0.5
    out = mix(x, perm, lam, channels_last=True)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.double(), reference(x, perm, lam))
    with pytest.raises(ValueError, match="channels_last needs 4-D"):
        mix(torch.rand(4, 3), perm, lam, channels_last=True)


def test_batch_of_one_is_returned_as_is(path):
    x = torch.rand(1, 3, 4)
    torch.testing.assert_close(mix(x, torch.tensor([0]), torch.tensor([0.8])), x)


def test_lam_one_keeps_the_sample_and_lam_half_averages(path):
    x = torch.rand(3, 10)
    perm = torch.tensor([1, 2, 0])
    torch.testing.assert_close(mix(x, perm, torch.ones(3)), x)
    torch.testing.assert_close(mix(x, perm, torch.full((3,), 0.5)), (x + x[perm]) / 2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_stay_in_place(path, bad):
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


def test_mix_targets_refuses_class_indices():
    with pytest.raises(TypeError, match="float targets"):
        mix_targets(torch.tensor([1, 2]), torch.tensor([1, 0]), torch.ones(2))
