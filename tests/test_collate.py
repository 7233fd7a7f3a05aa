"""MixupCollate: a drop-in collate_fn whose batches satisfy the Mixup and CutMix formulas, with every option."""

import copy
import itertools
import math
import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from oracles import cut_regions, is_one_rectangle, mixup_reference
from scipy import stats
from support import devices, finished, image_samples
from torch.utils.data import DataLoader, TensorDataset

from mixup_collate import MixedBatch, MixupCollate, SoftTargetBatch, mixup_cross_entropy
from mixup_collate.collate import resolve_device
from mixup_collate.mix import transform
from mixup_collate.stack import stack_samples


def distinct_images(n, shape, dtype):
    """Images whose pixels tell samples apart (sample i's values lie in their own range)."""
    g = torch.Generator().manual_seed(n)
    base = (torch.arange(n, dtype=torch.float64) * (250 // n)).reshape(-1, *([1] * len(shape)))
    xs = base + torch.rand((n, *shape), generator=g, dtype=torch.float64) * (200 // n)
    xs = xs.to(dtype) if dtype == torch.uint8 else (xs / 255).to(dtype)
    return [(xs[i].clone(), i) for i in range(n)], xs


def kept_fraction_of(batch, samples):
    xs = torch.stack([s[0] for s in samples])
    regions = cut_regions(batch.x, xs, xs[batch.perm])
    fixed = batch.perm == torch.arange(len(samples))
    kept = (1 - regions.flatten(1).double().mean(1)).float()
    return torch.where(fixed, batch.lam, kept)  # a sample that is its own partner shows no box


class TestMixupFormula:
    """Every batch satisfies x = lam * x + (1 - lam) * x[perm], with uniform partners, as a DataLoader's collate_fn."""

    @pytest.mark.parametrize("device", devices())
    @given(n=st.integers(1, 33), alpha=st.floats(0.05, 5), seed=st.integers(0, 1000), cycle=st.booleans())
    def test_batch_satisfies_the_mixup_formula(self, device, n, alpha, seed, cycle):
        samples, xs = image_samples(n, seed=seed)
        batch = finished(MixupCollate(alpha, device=device, seed=seed, cycle=cycle), samples)
        assert isinstance(batch, MixedBatch) and isinstance(batch, tuple)
        x, y_a, y_b, lam = batch
        assert x.device.type == device and lam.device.type == device
        assert x.shape == xs.shape and lam.shape == (n,) and lam.dtype == torch.float32
        assert bool(((lam >= 0.5) & (lam <= 1)).all())
        assert sorted(batch.perm.tolist()) == list(range(n)), "perm is a bijection"
        if cycle and n > 1:
            assert all(i != j for i, j in enumerate(batch.perm.tolist())), "no sample is its own partner"
        assert torch.equal(y_a.cpu(), torch.arange(n) % 10)
        assert torch.equal(y_b.cpu(), y_a.cpu()[batch.perm.cpu()])
        torch.testing.assert_close(
            x.double().cpu(), mixup_reference(xs, batch.perm.cpu(), lam.cpu()), rtol=1e-5, atol=1e-6
        )

    @pytest.mark.parametrize("n", [4, 5])
    def test_partners_are_uniform_over_all_permutations(self, n):
        # At the collate level too: an identity for odd sizes, a rotation or a fixed pattern all fail this.
        collate = MixupCollate(device="cpu", seed=0)
        stacked = stack_samples(image_samples(n)[0])
        index = {p: i for i, p in enumerate(itertools.permutations(range(n)))}
        counts = np.zeros(len(index))
        for _ in range(40 * math.factorial(n)):
            counts[index[tuple(collate.draw(stacked).perm.tolist())]] += 1
        assert stats.chisquare(counts).pvalue > 1e-3

    def test_works_as_a_dataloader_collate_fn_with_odd_batches(self):
        ds = TensorDataset(torch.rand(11, 3, 2, 2), torch.randint(0, 3, (11,)))
        sizes = [b.x.shape[0] for b in DataLoader(ds, batch_size=4, collate_fn=MixupCollate(0.4, device="cpu"))]
        assert sizes == [4, 4, 3]


class TestDevice:
    """The device resolves in the main process: explicit, else cuda:$LOCAL_RANK, the current CUDA device, the CPU."""

    def test_device_resolves_to_local_rank_then_current_cuda_device_then_cpu(self, monkeypatch):
        monkeypatch.delenv("LOCAL_RANK", raising=False)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert resolve_device() == torch.device("cpu")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
        assert resolve_device() == torch.device("cuda", 2)
        monkeypatch.setenv("LOCAL_RANK", "1")
        assert resolve_device() == torch.device("cuda", 1)
        assert resolve_device("cpu") == torch.device("cpu"), "an explicit device wins"

    def test_the_resolved_device_is_visible(self):
        collate = MixupCollate(device="cpu")
        assert collate.device == torch.device("cpu") and "device=device(type='cpu')" in repr(collate)
        assert MixupCollate().device == resolve_device()


class TestRandomStream:
    """Seeds, generators and saved states give the same draws; ranks get their own."""

    def test_seed_gives_identical_batches_and_different_seeds_differ(self):
        samples, _ = image_samples(16)
        a = [finished(MixupCollate(seed=3, device="cpu"), samples) for _ in range(2)]
        assert torch.equal(a[0].x, a[1].x) and torch.equal(a[0].lam, a[1].lam) and torch.equal(a[0].perm, a[1].perm)
        b = finished(MixupCollate(seed=4, device="cpu"), samples)
        assert not torch.equal(a[0].lam, b.lam)

    def test_successive_batches_draw_fresh_parameters(self):
        samples, _ = image_samples(16)
        collate = MixupCollate(seed=3, device="cpu")
        assert not torch.equal(finished(collate, samples).lam, finished(collate, samples).lam)

    def test_generator_drives_the_stream(self):
        samples, _ = image_samples(8)
        a = finished(MixupCollate(generator=torch.Generator().manual_seed(1), device="cpu"), samples)
        b = finished(MixupCollate(generator=torch.Generator().manual_seed(1), device="cpu"), samples)
        assert torch.equal(a.lam, b.lam)
        with pytest.raises(ValueError, match="either seed or generator"):
            MixupCollate(seed=1, generator=torch.Generator())

    def test_unseeded_stream_follows_torch_manual_seed(self):
        samples, _ = image_samples(8)

        def first_lam(seed):
            torch.manual_seed(seed)
            return finished(MixupCollate(device="cpu"), samples).lam

        assert torch.equal(first_lam(5), first_lam(5))
        assert not torch.equal(first_lam(5), first_lam(6)), "a different torch seed gives a different stream"

    def test_state_dict_resumes_the_stream(self):
        samples, _ = image_samples(8)
        run = MixupCollate(seed=0, device="cpu")
        finished(run, samples)
        state = run.state_dict()
        expected = [finished(run, samples).lam for _ in range(3)]
        resumed = MixupCollate(seed=123, device="cpu")
        resumed.load_state_dict(state)
        assert all(torch.equal(finished(resumed, samples).lam, lam) for lam in expected)

    def test_state_dict_of_an_unseeded_collate_does_not_draw_from_torch(self):
        torch.manual_seed(0)
        before = torch.get_rng_state()
        collate = MixupCollate(device="cpu")
        collate.load_state_dict(collate.state_dict())
        assert torch.equal(torch.get_rng_state(), before)

    def test_distributed_ranks_get_independent_streams(self, monkeypatch):
        samples, _ = image_samples(32)
        draws = []
        for rank in ("0", "1"):
            monkeypatch.setenv("RANK", rank)
            draws.append(finished(MixupCollate(seed=0, device="cpu"), samples))
        assert not torch.equal(draws[0].lam, draws[1].lam)
        assert not torch.equal(draws[0].perm, draws[1].perm)


class TestOptions:
    """per_sample, fold, enabled, stack_x, stack_y and extras do what the table says."""

    def test_one_lam_per_batch(self):
        batch = finished(MixupCollate(per_sample=False, device="cpu", seed=0), image_samples(9)[0])
        assert bool((batch.lam == batch.lam[0]).all())

    def test_fold_off_allows_lam_below_half(self):
        collate = MixupCollate(fold=False, device="cpu", seed=0)
        lam = torch.cat([finished(collate, image_samples(64)[0]).lam for _ in range(3)])
        assert bool((lam < 0.5).any()) and bool((lam > 0.5).any())

    @pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
    def test_evaluation_mode_converts_and_normalises_without_mixing(self, dtype):
        samples, xs = image_samples(7, dtype=dtype)
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
        collate = MixupCollate(enabled=False, device="cpu", seed=0, mean=mean, std=std)
        x, y_a, y_b, lam = finished(collate, samples)
        unit = xs.double() / 255 if dtype == torch.uint8 else xs.double()
        expected = (unit - torch.tensor(mean).double().view(3, 1, 1)) / torch.tensor(std).double().view(3, 1, 1)
        torch.testing.assert_close(x.double(), expected, rtol=1e-5, atol=1e-5)
        assert torch.equal(y_a, y_b) and torch.equal(lam, torch.ones(7))
        assert collate.state_dict() == MixupCollate(seed=0, device="cpu").state_dict(), "no draw consumed"

    def test_stack_x_returns_pairs_unmixed_and_converted(self):
        samples, xs = image_samples(6, dtype=torch.uint8)
        batch = finished(MixupCollate(stack_x=True, device="cpu", seed=0), samples)
        assert batch.x.shape == (6, 2, 3, 4, 4) and batch.x.dtype == torch.float32
        torch.testing.assert_close(batch.x[:, 0], xs.float() / 255)
        torch.testing.assert_close(batch.x[:, 1], xs[batch.perm].float() / 255)

    def test_stack_x_keeps_categorical_inputs_as_integers(self):
        samples = [(torch.tensor([i, i + 1]), i) for i in range(5)]
        batch = finished(MixupCollate(stack_x=True, device="cpu", seed=0), samples)
        assert batch.x.dtype == torch.int64 and torch.equal(batch.x[:, 1], batch.x[batch.perm, 0])

    def test_integer_inputs_without_stack_x_are_refused(self):
        with pytest.raises(TypeError, match="int64.*stack_x=True"):
            finished(MixupCollate(device="cpu"), [(torch.tensor([1, 2]), 0), (torch.tensor([3, 4]), 1)])

    def test_stack_y_false_mixes_float_targets_linearly(self):
        samples = [(torch.rand(3), F.one_hot(torch.tensor(i % 4), 4).float()) for i in range(8)]
        batch = finished(MixupCollate(stack_y=False, device="cpu", seed=0), samples)
        y = torch.stack([s[1] for s in samples])
        expected = batch.lam[:, None] * y + (1 - batch.lam[:, None]) * y[batch.perm]
        torch.testing.assert_close(batch.y_a, expected)
        assert batch.y_b is batch.y_a
        torch.testing.assert_close(batch.y_a.sum(1), torch.ones(8))

    def test_stack_y_false_needs_float_targets(self):
        with pytest.raises(TypeError, match="stack_y=False.*class indices"):
            finished(MixupCollate(stack_y=False, device="cpu"), image_samples(4)[0])

    def test_extras_pass_through_unmixed_and_optionally_to_the_device(self):
        samples = [{"image": torch.rand(3), "label": i, "id": 100 + i, "name": f"s{i}"} for i in range(4)]
        batch = finished(MixupCollate(device="cpu", seed=0), samples)
        assert batch.extras["id"].tolist() == [100, 101, 102, 103] and batch.extras["name"] == ["s0", "s1", "s2", "s3"]
        moved = MixupCollate(device="meta", seed=0, extras_to_device=True)(samples).finish()
        assert moved.extras["id"].device.type == "meta" and moved.extras["name"] == ["s0", "s1", "s2", "s3"]
        kept = MixupCollate(device="meta", seed=0)(samples).finish()
        assert kept.extras["id"].device.type == "cpu"

    @pytest.mark.parametrize(
        "extras, kept",
        [(False, []), (["name"], ["name"]), (("id", "name"), ["id", "name"]), (True, ["id", "name", "raw"])],
    )
    def test_extras_keeps_the_fields_it_names_and_drops_the_rest_uncollated(self, extras, kept):
        class Raw:  # default_collate cannot collate it: only a field that is kept is collated
            pass

        samples = [{"image": torch.rand(3), "label": i, "id": i, "name": f"s{i}", "raw": Raw()} for i in range(4)]
        collate = MixupCollate(device="cpu", seed=0, extras=extras)
        if "raw" in kept:
            with pytest.raises(TypeError, match="extra field 'raw' could not be collated"):
                finished(collate, samples)
        else:
            assert sorted(finished(collate, samples).extras) == kept

    @pytest.mark.parametrize("extras, named", [(["nmae"], "'nmae'"), (["id", "path"], "'path'"), ([5], "5")])
    def test_extras_naming_a_field_no_sample_has_is_refused_naming_it_and_the_fields(self, extras, named):
        samples = [{"image": torch.rand(3), "label": i, "id": i, "name": f"s{i}"} for i in range(4)]
        with pytest.raises(KeyError, match=rf"extras names the field {named}.*their other fields are \['id', 'name'\]"):
            MixupCollate(device="cpu", extras=extras)(samples)

    def test_extras_keeps_tuple_fields_by_position(self):
        samples = [(torch.rand(3), i, f"a{i}", 10 * i) for i in range(3)]
        assert list(finished(MixupCollate(device="cpu", extras=[3]), samples).extras) == [3]

    def test_scalar_inputs_are_mixed(self):
        samples = [(torch.tensor(float(i)), i) for i in range(4)]
        batch = finished(MixupCollate(device="cpu", seed=0), samples)
        want = mixup_reference(torch.arange(4.0), batch.perm, batch.lam)
        torch.testing.assert_close(batch.x.double(), want, rtol=1e-6, atol=1e-6)

    def test_nan_and_inf_are_not_cleaned(self):
        samples, _ = image_samples(4)
        samples[1][0][0, 0, 0] = float("nan")
        samples[2][0][0, 0, 1] = float("inf")
        batch = finished(MixupCollate(device="cpu", seed=0, alpha=1.0), samples)
        touched = lambda i: (batch.perm == i) | (torch.arange(4) == i)  # noqa: E731
        assert torch.equal(torch.isnan(batch.x[:, 0, 0, 0]), touched(1))
        assert torch.equal(~torch.isfinite(batch.x[:, 0, 0, 1]), touched(2))


class TestConversion:
    """uint8 to float, dtype, mean/std and channels_last, folded into the mix on the device."""

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, "float16"])
    def test_uint8_images_become_normalised_floats_on_the_device(self, dtype):
        samples, xs = image_samples(5, dtype=torch.uint8)
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
        batch = finished(MixupCollate(device="cpu", seed=0, dtype=dtype, mean=mean, std=std), samples)
        want = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        assert batch.x.dtype == want and batch.lam.dtype == torch.float32
        m, s = torch.tensor(mean).view(3, 1, 1).double(), torch.tensor(std).view(3, 1, 1).double()
        expected = (mixup_reference(xs, batch.perm, batch.lam) / 255 - m) / s
        tol = 1e-5 if want == torch.float32 else 3e-2
        torch.testing.assert_close(batch.x.double(), expected, rtol=tol, atol=tol)

    def test_uint8_and_float_inputs_give_the_same_batch(self):
        samples, xs = image_samples(6, dtype=torch.uint8)
        as_float = [(x.float() / 255, y) for x, y in samples]
        torch.testing.assert_close(
            finished(MixupCollate(device="cpu", seed=1), samples).x,
            finished(MixupCollate(device="cpu", seed=1), as_float).x,
        )

    def test_one_collate_normalises_uint8_and_float_batches_each_correctly(self):
        # The normalisation constants are cached per input kind: a uint8 batch must not reuse a float batch's.
        collate = MixupCollate(device="cpu", seed=0, mean=[0.5], std=[0.25], enabled=False)
        bytes_, xs = image_samples(4, shape=(1, 3, 3), dtype=torch.uint8)
        floats = [(x.float() / 255, y) for x, y in bytes_]
        for samples in (floats, bytes_, floats):
            expected = (xs.double() / 255 - 0.5) / 0.25
            torch.testing.assert_close(finished(collate, samples).x.double(), expected, rtol=1e-6, atol=1e-6)

    def test_scalar_mean_and_std_apply_to_every_channel(self):
        samples, xs = image_samples(4)
        x = finished(MixupCollate(device="cpu", enabled=False, mean=0.5, std=0.5), samples).x
        torch.testing.assert_close(x, (xs - 0.5) / 0.5)

    def test_channels_last_output(self):
        batch = finished(MixupCollate(device="cpu", channels_last=True, seed=0), image_samples(4)[0])
        assert batch.x.is_contiguous(memory_format=torch.channels_last)

    def test_normalising_already_normalised_inputs_warns_once(self):
        samples = [(torch.randn(3, 4, 4) * 2, i) for i in range(4)]
        collate = MixupCollate(device="cpu", mean=[0.5] * 3, std=[0.2] * 3)
        with pytest.warns(UserWarning, match="normalised twice"):
            finished(collate, samples)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            finished(collate, samples)
            finished(MixupCollate(device="cpu", mean=[0.5] * 3, std=[0.2] * 3), image_samples(4)[0])

    def test_normalised_inputs_are_noticed_in_any_batch_not_only_the_first(self):
        collate = MixupCollate(device="cpu", mean=0.5, std=0.25, seed=0)
        inside = [(torch.rand(3, 4, 4), 0) for _ in range(3)]
        outside = [(torch.rand(3, 4, 4) * 2, 0) for _ in range(3)]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            finished(collate, inside)
        with pytest.warns(UserWarning, match=r"normalised twice"):
            finished(collate, outside)

    def test_empty_spatial_dimensions_are_named_under_cutmix_and_mix_otherwise(self):
        empty = [(torch.rand(3, 0, 4), i) for i in range(3)]
        with pytest.raises(ValueError, match=r"two spatial dimensions \(..., H, W\), both non-empty.*\(3, 0, 4\)"):
            finished(MixupCollate(cutmix_alpha=1.0, device="cpu"), empty)
        assert finished(MixupCollate(mean=0.5, std=0.2, device="cpu"), empty).x.shape == (3, 3, 0, 4)

    def test_normalisation_must_match_the_channels(self):
        with pytest.raises(ValueError, match=r"mean/std have 2 values but the inputs have shape \(3, 3, 4, 4\)"):
            finished(MixupCollate(device="cpu", mean=[0.5, 0.5], std=[0.2, 0.2]), image_samples(3)[0])


class TestArguments:
    """Bad arguments are refused naming them; numpy numbers are numbers."""

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"alpha": 0}, "alpha=0 turns Mixup off and CutMix is off too.*enabled=False"),
            ({"alpha": -0.5}, "alpha=-0.5"),
            ({"alpha": float("inf")}, "alpha must be a finite number"),
            ({"alpha": "0.4"}, "alpha must be a finite number"),
            ({"cutmix_alpha": -1}, "cutmix_alpha must be a finite number"),
            ({"cutmix_minmax": (0.5, 0.2)}, r"cutmix_minmax must be \(lo, hi\)"),
            ({"cutmix_minmax": (0.2, 0.9)}, "fold=True keeps at least half.*fold=False"),
            ({"prob": 1.5}, r"prob must be a number in \[0, 1\]"),
            ({"switch_prob": -0.1}, "switch_prob"),
            ({"soft_targets": True}, "soft_targets=True needs num_classes"),
            ({"soft_targets": True, "num_classes": 0}, "num_classes=0"),
            ({"label_smoothing": 0.1}, "pass it to the loss instead"),
            ({"soft_targets": True, "num_classes": 3, "label_smoothing": 1.5}, "label_smoothing must be"),
            ({"off_epoch": -1}, "off_epoch must be"),
            ({"mean": [0.5]}, "mean and std together"),
            ({"mean": [0.5, 0.5], "std": [0.2, 0.2, 0.2]}, "mean has 2 values but std has 3"),
            ({"mean": [0.5], "std": [0.0]}, "std values must be > 0"),
            ({"mean": [float("nan")], "std": [0.2]}, "mean must be a finite number"),
            ({"mean": [0.5], "std": float("inf")}, "std must be a finite number"),
            ({"dtype": torch.int32}, "dtype must be a floating dtype"),
            ({"dtype": "float33"}, "dtype must be a floating dtype"),
            ({"dtype": "int8"}, "dtype must be a floating dtype"),
            ({"seed": -1}, "seed must be a non-negative integer.*seed=-1"),
            ({"seed": 1.5}, "seed must be a non-negative integer.*seed=1.5"),
            ({"stack_x": True, "channels_last": True}, "channels_last"),
            ({"stack_x": True, "cutmix_alpha": 1.0}, "stack_x.*CutMix"),
        ],
    )
    def test_bad_arguments_are_refused_naming_them(self, kwargs, message):
        with pytest.raises((ValueError, TypeError), match=message):
            MixupCollate(**kwargs)

    def test_numpy_numbers_are_numbers(self):
        collate = MixupCollate(np.float32(0.4), prob=np.float64(1.0), seed=np.int64(3), device="cpu")
        assert collate.alpha == pytest.approx(0.4) and collate.seed == 3
        finished(collate, image_samples(4)[0])


class TestCutMix:
    """CutMix pastes one rectangle from the partner, lam is the kept share; switched batches mix or cut each sample."""

    @pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
    @pytest.mark.parametrize("n, shape", [(7, (3, 9, 13)), (8, (3, 16, 16)), (5, (11, 6)), (3, (2, 3, 5, 8))])
    def test_cutmix_pastes_one_rectangle_from_the_partner_and_lam_is_the_kept_share(self, dtype, n, shape):
        samples, xs = distinct_images(n, shape, dtype)
        collate = MixupCollate(alpha=0.0, cutmix_alpha=1.0, cycle=True, device="cpu", seed=n)
        converted = transform(xs, scale=1 / 255) if dtype == torch.uint8 else xs  # uint8 -> [0, 1] as in every batch
        boxes = set()
        for _ in range(4):
            batch = finished(collate, samples)
            regions = cut_regions(batch.x, converted, converted[batch.perm])
            height, width = shape[-2:]
            for i in range(n):
                assert is_one_rectangle(regions[i])
                kept = float((height * width - int(regions[i].sum())) / (height * width))
                assert batch.lam[i] == torch.tensor(kept, dtype=torch.float32), "lam is exactly the kept share"
                assert kept >= 0.5, "fold: a sample keeps at least half of its own image"
                rows, cols = regions[i].any(1).nonzero(), regions[i].any(0).nonzero()
                if len(rows):
                    boxes.add((int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())))
            assert torch.equal(batch.y_b, batch.y_a[batch.perm])
        assert len(boxes) > n, "every sample gets its own box"

    def test_correct_lam_false_gives_the_drawn_lam_with_the_same_boxes(self):
        samples, xs = distinct_images(32, (3, 7, 9), torch.float32)
        kwargs = {"alpha": 0.0, "cutmix_alpha": 1.0, "cycle": True, "device": "cpu", "seed": 4}
        kept = finished(MixupCollate(**kwargs), samples)
        drawn = finished(MixupCollate(**kwargs, correct_lam=False), samples)
        assert torch.equal(kept.x, drawn.x) and torch.equal(kept.lam, kept_fraction_of(kept, samples))
        assert bool((drawn.lam <= kept.lam).all()) and not torch.equal(drawn.lam, kept.lam)

    def test_cutmix_boxes_may_be_larger_without_fold(self):
        collate = MixupCollate(alpha=0.0, cutmix_alpha=1.0, fold=False, device="cpu", seed=0)
        lam = torch.cat([finished(collate, image_samples(32, shape=(3, 8, 8))[0]).lam for _ in range(3)])
        assert bool((lam < 0.5).any())

    def test_cutmix_needs_two_spatial_dimensions(self):
        with pytest.raises(ValueError, match=r"two spatial dimensions.*\(5,\)"):
            finished(MixupCollate(cutmix_alpha=1.0, device="cpu"), [(torch.rand(5), 0), (torch.rand(5), 1)])

    def test_switched_batches_mix_some_samples_and_cut_the_others(self):
        samples, xs = distinct_images(40, (3, 8, 8), torch.float32)
        batch = finished(MixupCollate(alpha=1.0, cutmix_alpha=1.0, cycle=True, device="cpu", seed=0), samples)
        own, partner = batch.x.double(), xs[batch.perm].double()
        cut = [bool(((own[i] == xs[i]) | (own[i] == partner[i])).all()) for i in range(40)]
        assert 5 < sum(cut) < 35
        for i in range(40):
            if cut[i]:
                continue
            torch.testing.assert_close(own[i], mixup_reference(xs, batch.perm, batch.lam)[i])


class TestProb:
    """prob leaves samples (or the batch) unmixed, with their own pixels and lam = 1."""

    @pytest.mark.parametrize("per_sample", [True, False])
    def test_prob_leaves_samples_unmixed_with_their_own_pixels(self, per_sample):
        samples, xs = distinct_images(50, (3, 6, 6), torch.float32)
        collate = MixupCollate(
            alpha=1.0, cutmix_alpha=1.0, prob=0.5, per_sample=per_sample, cycle=True, device="cpu", seed=1
        )
        unmixed = []
        for _ in range(8):
            batch = finished(collate, samples)
            same = (batch.x == xs).flatten(1).all(1)
            assert bool((batch.lam[same] == 1).all()), "an unmixed sample has lam = 1"
            unmixed.append(same)
        unmixed = torch.stack(unmixed)
        if per_sample:
            assert 0.3 < float(unmixed.double().mean()) < 0.7
        else:
            assert bool((unmixed == unmixed[:, :1]).all()), "the whole batch is mixed or not"


class TestSoftTargets:
    """soft_targets=True yields (x, target) whose loss is the four-tuple's."""

    def test_soft_targets_sum_to_one_and_give_the_loss_of_the_four_tuple(self):
        samples, _ = image_samples(13, shape=(3, 8, 8))
        kwargs = dict(alpha=0.8, cutmix_alpha=1.0, prob=0.9, device="cpu", seed=2)
        soft = finished(MixupCollate(soft_targets=True, num_classes=10, label_smoothing=0.1, **kwargs), samples)
        four = finished(MixupCollate(**kwargs), samples)
        assert isinstance(soft, SoftTargetBatch) and soft.target.shape == (13, 10)
        torch.testing.assert_close(soft.target.sum(1), torch.ones(13))
        assert torch.equal(soft.x, four.x) and torch.equal(soft.lam, four.lam)
        logits = torch.randn(13, 10, dtype=torch.float64)
        soft_loss = -(soft.target.double() * logits.log_softmax(1)).sum(1).mean()
        four_loss = mixup_cross_entropy(logits, four.y_a, four.y_b, four.lam.double(), label_smoothing=0.1)
        assert abs(float(soft_loss) - float(four_loss)) < 1e-6

    def test_soft_targets_name_a_class_index_out_of_range(self):
        samples = [(torch.rand(2, 3, 3), 1), (torch.rand(2, 3, 3), 7)]
        with pytest.raises(ValueError, match=r"sample 1's target 7 is not a class index in \[0, num_classes=5\)"):
            finished(MixupCollate(soft_targets=True, num_classes=5, device="cpu"), samples)


class TestSchedules:
    """off_epoch, set_epoch and knobs changed between epochs take effect at once."""

    def test_off_epoch_turns_mixing_off_from_that_epoch_and_mixup_enabled_mirrors_enabled(self):
        samples, xs = image_samples(6)
        collate = MixupCollate(device="cpu", seed=0, off_epoch=2)
        for epoch, mixed in [(0, True), (1, True), (2, False), (5, False)]:
            collate.set_epoch(epoch)
            assert collate.mixing is mixed and bool((finished(collate, samples).lam < 1).any()) is mixed
        collate.set_epoch(0)
        collate.mixup_enabled = False  # what timm's --mixup-off-epoch sets
        assert not collate.enabled and torch.equal(finished(collate, samples).x, xs)
        with pytest.raises(ValueError, match="epoch must be a non-negative int"):
            collate.set_epoch(-1)

    def test_off_epoch_without_set_epoch_warns_once_naming_set_epoch(self):
        samples, _ = image_samples(4)
        collate = MixupCollate(device="cpu", seed=0, off_epoch=3)
        with pytest.warns(UserWarning, match=r"off_epoch=3.*set_epoch\(\) has not been called"):
            finished(collate, samples)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            finished(collate, samples)  # once
            for make in (lambda c: c.set_epoch(0), lambda c: c.load_state_dict(collate.state_dict())):
                announced = MixupCollate(device="cpu", seed=0, off_epoch=3)
                make(announced)
                finished(announced, samples)
            finished(MixupCollate(device="cpu", seed=0), samples)

    def test_each_epoch_has_its_own_reproducible_stream(self):
        samples, _ = image_samples(8)
        collate = MixupCollate(device="cpu", seed=0)
        lams = {}
        for epoch in (0, 1, 0):
            collate.set_epoch(epoch)
            lams.setdefault(epoch, []).append(finished(collate, samples).lam)
        assert torch.equal(lams[0][0], lams[0][1]) and not torch.equal(lams[0][0], lams[1][0])

    def test_knobs_changed_between_epochs_take_effect_at_once(self):
        samples, _ = image_samples(64, shape=(3, 8, 8))
        collate = MixupCollate(alpha=0.2, device="cpu", seed=0)
        first = finished(collate, samples)
        collate.alpha, collate.cutmix_alpha, collate.switch_prob = 0.0, 1.0, 1.0
        second = finished(collate, samples)
        assert bool((first.lam > 0.5).all())
        assert torch.equal(second.lam, kept_fraction_of(second, samples))


class TestCopies:
    """Copies and pickles are independent collates in the same state; repr shows the settings."""

    @pytest.mark.parametrize("make_copy", [copy.copy, copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))])
    def test_copies_are_independent_collates(self, make_copy):
        train = MixupCollate(0.3, device="cpu", seed=9)
        evaluation = make_copy(train)
        assert evaluation is not train and evaluation.key != train.key
        evaluation.enabled = False
        evaluation.alpha = 1.0
        assert train.enabled and train.alpha == 0.3
        assert repr(evaluation).replace("enabled=False", "enabled=True").replace("alpha=1.0", "alpha=0.3") == repr(
            train
        )

    @pytest.mark.parametrize("make_copy", [copy.copy, copy.deepcopy])
    def test_a_copy_continues_the_same_stream_independently(self, make_copy):
        samples, _ = image_samples(8)
        original = MixupCollate(device="cpu", seed=0)
        finished(original, samples)
        twin = make_copy(original)
        assert torch.equal(finished(twin, samples).lam, finished(original, samples).lam)
        finished(original, samples)
        assert not torch.equal(finished(twin, samples).lam, finished(original, samples).lam)

    def test_a_pickled_collate_carries_its_settings_but_nothing_random(self):
        collate = MixupCollate(0.3, device="cpu", generator=torch.Generator().manual_seed(1))
        restored = pickle.loads(pickle.dumps(collate))
        assert restored.alpha == 0.3 and restored._stream._caller_generator is None

    def test_repr_is_derived_from_the_attributes(self):
        collate = MixupCollate(0.3, cutmix_alpha=1.0, device="cpu", seed=9)
        collate.prob = 0.5
        text = repr(collate)
        assert text.startswith("MixupCollate(alpha=0.3, cutmix_alpha=1.0") and "prob=0.5" in text and "seed=9" in text


class TestCompile:
    """A compiled model fed finished batches compiles once, and once more at most for a ragged last batch."""

    def test_a_compiled_model_recompiles_at_most_once_more_for_a_ragged_last_batch(self):
        import torch._dynamo

        compiles = []

        def counting_backend(graph, example_inputs):
            compiles.append([tuple(t.shape) for t in example_inputs if isinstance(t, torch.Tensor)])
            return graph.forward

        torch._dynamo.reset()
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(5))
        model(torch.rand(2, 3, 8, 8))
        compiled = torch.compile(model, backend=counting_backend)
        data = TensorDataset(torch.randint(0, 256, (19, 3, 8, 8), dtype=torch.uint8), torch.arange(19) % 5)
        collate = MixupCollate(cutmix_alpha=1.0, mean=0.5, std=0.25, device="cpu", seed=0)
        for epoch in range(2):
            collate.set_epoch(epoch)
            for x, y_a, y_b, lam in DataLoader(data, batch_size=4, collate_fn=collate):
                mixup_cross_entropy(compiled(x), y_a, y_b, lam).backward()
        torch._dynamo.reset()
        assert 1 <= len(compiles) <= 2, compiles
