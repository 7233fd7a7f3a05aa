"""MixupCollate: a drop-in collate_fn whose batches satisfy the mixup formula, with every option."""

import pickle

import pytest
import torch
from conftest import devices
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from mixup_collate import MixedBatch, MixupCollate


def image_samples(n, shape=(3, 4, 4), dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        xs = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)
    else:
        xs = torch.rand((n, *shape), generator=g, dtype=dtype)
    return [(xs[i].clone(), i % 10) for i in range(n)], xs


def expected_x(xs, batch):
    """Independent check of the formula, using the batch's own perm and lam."""
    lam = batch.lam.double().cpu().reshape(-1, *([1] * (xs.ndim - 1)))
    perm = batch.perm.cpu()
    return lam * xs.double() + (1 - lam) * xs.double()[perm]


@pytest.mark.parametrize("device", devices())
@given(n=st.integers(1, 33), alpha=st.floats(0.05, 5), seed=st.integers(0, 1000))
def test_batch_satisfies_the_mixup_formula(device, n, alpha, seed):
    samples, xs = image_samples(n, seed=seed)
    batch = MixupCollate(alpha, device=device, seed=seed)(samples)
    assert isinstance(batch, MixedBatch) and isinstance(batch, tuple)
    x, y_a, y_b, lam = batch
    assert x.device.type == device and lam.device.type == device
    assert x.shape == xs.shape and lam.shape == (n,) and lam.dtype == torch.float32
    assert bool(((lam >= 0.5) & (lam <= 1)).all())
    assert sorted(batch.perm.tolist()) == list(range(n)), "perm is a bijection"
    assert torch.equal(y_a.cpu(), torch.arange(n) % 10)
    assert torch.equal(y_b.cpu(), y_a.cpu()[batch.perm.cpu()])
    assert sorted(y_b.tolist()) == sorted(y_a.tolist()), "every sample is someone's partner once"
    torch.testing.assert_close(x.double().cpu(), expected_x(xs, batch), rtol=1e-5, atol=1e-6)


def test_works_as_a_dataloader_collate_fn_with_odd_batches():
    ds = TensorDataset(torch.rand(11, 3, 2, 2), torch.randint(0, 3, (11,)))
    sizes = [b.x.shape[0] for b in DataLoader(ds, batch_size=4, collate_fn=MixupCollate(0.4, device="cpu"))]
    assert sizes == [4, 4, 3]


def test_default_device_is_cuda_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert MixupCollate().device.type == expected
    assert MixupCollate(device="cpu").device.type == "cpu"


def test_seed_gives_identical_batches_and_different_seeds_differ():
    samples, _ = image_samples(16)
    a = [MixupCollate(seed=3, device="cpu")(samples) for _ in range(2)]
    assert torch.equal(a[0].x, a[1].x) and torch.equal(a[0].lam, a[1].lam) and torch.equal(a[0].perm, a[1].perm)
    b = MixupCollate(seed=4, device="cpu")(samples)
    assert not torch.equal(a[0].lam, b.lam)


def test_successive_batches_draw_fresh_parameters():
    samples, _ = image_samples(16)
    collate = MixupCollate(seed=3, device="cpu")
    first, second = collate(samples), collate(samples)
    assert not torch.equal(first.lam, second.lam)


def test_generator_drives_the_stream():
    samples, _ = image_samples(8)
    a = MixupCollate(generator=torch.Generator().manual_seed(1), device="cpu")(samples)
    b = MixupCollate(generator=torch.Generator().manual_seed(1), device="cpu")(samples)
    assert torch.equal(a.lam, b.lam)
    with pytest.raises(ValueError, match="either seed or generator"):
        MixupCollate(seed=1, generator=torch.Generator())


def test_unseeded_stream_follows_torch_manual_seed():
    samples, _ = image_samples(8)
    torch.manual_seed(5)
    a = MixupCollate(device="cpu")(samples)
    torch.manual_seed(5)
    b = MixupCollate(device="cpu")(samples)
    assert torch.equal(a.lam, b.lam)


def test_state_dict_resumes_the_stream():
    samples, _ = image_samples(8)
    run = MixupCollate(seed=0, device="cpu")
    run(samples)
    state = run.state_dict()
    expected = [run(samples).lam for _ in range(3)]
    resumed = MixupCollate(seed=123, device="cpu")
    resumed.load_state_dict(state)
    assert all(torch.equal(resumed(samples).lam, lam) for lam in expected)


def test_distributed_ranks_get_independent_streams(monkeypatch):
    samples, _ = image_samples(32)
    draws = []
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        draws.append(MixupCollate(seed=0, device="cpu")(samples))
    assert not torch.equal(draws[0].lam, draws[1].lam)
    assert not torch.equal(draws[0].perm, draws[1].perm)


def test_one_lam_per_batch():
    batch = MixupCollate(per_sample=False, device="cpu", seed=0)(image_samples(9)[0])
    assert bool((batch.lam == batch.lam[0]).all())


def test_fold_off_allows_lam_below_half():
    lam = torch.cat([MixupCollate(fold=False, device="cpu", seed=s)(image_samples(64)[0]).lam for s in range(3)])
    assert bool((lam < 0.5).any()) and bool((lam > 0.5).any())


def test_validation_mode_returns_the_batch_unmixed():
    samples, xs = image_samples(7, dtype=torch.uint8)
    collate = MixupCollate(enabled=False, device="cpu", seed=0)
    x, y_a, y_b, lam = collate(samples)
    torch.testing.assert_close(x, xs.float() / 255)
    assert torch.equal(y_a, y_b) and torch.equal(lam, torch.ones(7))
    assert collate.state_dict()["rng_state"].equal(MixupCollate(seed=0, device="cpu").state_dict()["rng_state"])


def test_stack_x_returns_pairs_unmixed():
    samples, xs = image_samples(6)
    batch = MixupCollate(stack_x=True, device="cpu", seed=0)(samples)
    assert batch.x.shape == (6, 2, 3, 4, 4)
    torch.testing.assert_close(batch.x[:, 0], xs)
    torch.testing.assert_close(batch.x[:, 1], xs[batch.perm])


def test_stack_x_keeps_categorical_inputs_as_integers():
    samples = [(torch.tensor([i, i + 1]), i) for i in range(5)]
    batch = MixupCollate(stack_x=True, device="cpu", seed=0)(samples)
    assert batch.x.dtype == torch.int64 and torch.equal(batch.x[:, 1], batch.x[batch.perm, 0])


def test_integer_inputs_without_stack_x_are_refused():
    with pytest.raises(TypeError, match="int64.*stack_x=True"):
        MixupCollate(device="cpu")([(torch.tensor([1, 2]), 0), (torch.tensor([3, 4]), 1)])


def test_stack_y_false_mixes_float_targets_linearly():
    samples = [(torch.rand(3), torch.nn.functional.one_hot(torch.tensor(i % 4), 4).float()) for i in range(8)]
    batch = MixupCollate(stack_y=False, device="cpu", seed=0)(samples)
    y = torch.stack([s[1] for s in samples])
    expected = batch.lam[:, None] * y + (1 - batch.lam[:, None]) * y[batch.perm]
    torch.testing.assert_close(batch.y_a, expected)
    assert batch.y_b is batch.y_a
    torch.testing.assert_close(batch.y_a.sum(1), torch.ones(8))


def test_stack_y_false_needs_float_targets():
    with pytest.raises(TypeError, match="stack_y=False.*class indices"):
        MixupCollate(stack_y=False, device="cpu")(image_samples(4)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_uint8_images_become_normalised_floats_on_the_device(dtype):
    samples, xs = image_samples(5, dtype=torch.uint8)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    batch = MixupCollate(device="cpu", seed=0, dtype=dtype, mean=mean, std=std)(samples)
    assert batch.x.dtype == dtype and batch.lam.dtype == torch.float32
    m, s = torch.tensor(mean).view(3, 1, 1).double(), torch.tensor(std).view(3, 1, 1).double()
    expected = (expected_x(xs, batch) / 255 - m) / s
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(batch.x.double(), expected, rtol=tol, atol=tol)


def test_uint8_and_float_inputs_give_the_same_batch():
    samples, xs = image_samples(6, dtype=torch.uint8)
    as_float = [(x.float() / 255, y) for x, y in samples]
    a = MixupCollate(device="cpu", seed=1)(samples)
    b = MixupCollate(device="cpu", seed=1)(as_float)
    torch.testing.assert_close(a.x, b.x)


def test_channels_last_output():
    batch = MixupCollate(device="cpu", channels_last=True, seed=0)(image_samples(4)[0])
    assert batch.x.is_contiguous(memory_format=torch.channels_last)


def test_extras_pass_through_unmixed():
    samples = [{"image": torch.rand(3), "label": i, "id": 100 + i} for i in range(4)]
    batch = MixupCollate(device="cpu", seed=0)(samples)
    assert batch.extras["id"].tolist() == [100, 101, 102, 103]


def test_nan_and_inf_are_not_cleaned():
    samples, _ = image_samples(4)
    samples[1][0][0, 0, 0] = float("nan")
    samples[2][0][0, 0, 1] = float("inf")
    batch = MixupCollate(device="cpu", seed=0, alpha=1.0)(samples)
    touched = lambda i: (batch.perm == i) | (torch.arange(4) == i)  # noqa: E731
    assert torch.equal(torch.isnan(batch.x[:, 0, 0, 0]), touched(1))
    assert torch.equal(~torch.isfinite(batch.x[:, 0, 0, 1]), touched(2))
    assert int(torch.isfinite(batch.x).logical_not().sum()) == int(touched(1).sum() + touched(2).sum())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 0}, "alpha must be a finite number > 0"),
        ({"alpha": -0.5}, "alpha=-0.5"),
        ({"alpha": float("inf")}, "alpha"),
        ({"mean": [0.5]}, "mean and std together"),
        ({"mean": [0.5, 0.5], "std": [0.2]}, "mean has 2 values but std has 1"),
        ({"mean": [0.5], "std": [0.0]}, "std values must be > 0"),
        ({"dtype": torch.int32}, "dtype must be a floating dtype"),
        ({"stack_x": True, "channels_last": True}, "channels_last"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MixupCollate(**kwargs)


def test_normalization_must_match_the_channels():
    with pytest.raises(ValueError, match=r"mean/std have 2 values but the inputs have shape \(3, 3, 4, 4\)"):
        MixupCollate(device="cpu", mean=[0.5, 0.5], std=[0.2, 0.2])(image_samples(3)[0])


def test_pickles_for_spawned_workers():
    collate = MixupCollate(0.3, device="cpu", seed=9)
    assert pickle.loads(pickle.dumps(collate)) is collate, "a pickled collate resolves to the live one"
    assert "alpha=0.3" in repr(collate)
