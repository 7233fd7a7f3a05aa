"""What MixupCollate promises, checked through its public API where a subtle slip would go unnoticed.

Each class pins one contract that an earlier suite let through: the normalised-twice warning, the
soft-target class range, half-precision inputs computed in float32, and the normalisation built for
the batch's own dtype.
"""

import warnings

import pytest
import torch
from oracles import mixup_reference
from support import image_samples

from mixup_collate import MixupCollate

MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.3]


def scaled(samples, factor, offset=0.0):
    """The samples with their images mapped by ``x * factor + offset`` (in their own dtype)."""
    return [(image * factor + offset, label) for image, label in samples]


class TestNormalisedTwiceWarning:
    """mean/std normalise; float inputs outside [0, 1] were most likely normalised already."""

    def normalising(self):
        return MixupCollate(device="cpu", seed=0, mean=MEAN, std=STD)

    @pytest.mark.parametrize(("factor", "offset"), [(1.5, 0.5), (2.0, -1.0)], ids=["above one", "below zero"])
    def test_inputs_outside_the_unit_interval_warn(self, factor, offset):
        samples, _ = image_samples(6)
        with pytest.warns(UserWarning, match=r"normalised twice"):
            self.normalising()(scaled(samples, factor, offset)).finish()

    def test_inputs_inside_the_unit_interval_do_not(self):
        samples, _ = image_samples(6)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            self.normalising()(samples).finish()


class TestSoftTargetClassRange:
    @pytest.mark.parametrize("label", [3, 4, -1])
    def test_a_class_outside_range_is_named(self, label):
        samples = [(image, i % 3) for i, (image, _) in enumerate(image_samples(6)[0])]
        samples[4] = (samples[4][0], label)
        collate = MixupCollate(device="cpu", seed=0, soft_targets=True, num_classes=3)
        with pytest.raises(
            ValueError, match=rf"sample 4's target {label} is not a class index in \[0, num_classes=3\)"
        ):
            collate(samples).finish()

    def test_the_last_class_is_in_range(self):
        samples = [(image, 2) for image, _ in image_samples(6)[0]]
        x, target = MixupCollate(device="cpu", seed=0, soft_targets=True, num_classes=3)(samples)
        assert torch.equal(target, torch.tensor([[0.0, 0.0, 1.0]]).expand(6, 3))


def half_ulp(reference, dtype):
    """Half the spacing of ``dtype`` around each float64 value (the error of one correct rounding)."""
    info = torch.finfo(dtype)
    _, exponent = torch.frexp(reference)
    spacing = (torch.pow(2.0, (exponent - 1).double()) * info.eps).clamp(min=info.smallest_normal * info.eps)
    return spacing / 2


class TestHalfPrecisionInputsAreComputedInFloat32:
    """float16/bfloat16 inputs are mixed in float32 and rounded once: within half an ulp of the exact mix."""

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_mixup_is_the_exact_mix_rounded_once(self, kernel_path, dtype):
        samples, xs = image_samples(64, shape=(3, 16, 16), dtype=dtype)
        x, _, _, lam = batch = MixupCollate(0.4, device="cpu", seed=0)(samples)
        assert x.dtype == dtype
        reference = mixup_reference(xs, batch.perm, lam)
        # float32 arithmetic adds errors near 2**-24 relative; float16 or bfloat16 arithmetic, near its own ulp.
        slack = half_ulp(reference, dtype) + reference.abs() * 2.0**-20
        error = (x.double() - reference).abs()
        assert bool((error <= slack).all()), f"{int((error > slack).sum())} values off by up to {float(error.max())}"

    def test_normalised_half_inputs_too(self):
        samples, xs = image_samples(32, shape=(3, 8, 8), dtype=torch.float16)
        x, _, _, lam = batch = MixupCollate(0.4, device="cpu", seed=0, mean=MEAN, std=STD)(samples)
        scale = 1 / torch.tensor(STD, dtype=torch.float64).reshape(3, 1, 1)
        shift = -torch.tensor(MEAN, dtype=torch.float64).reshape(3, 1, 1) * scale
        reference = mixup_reference(xs, batch.perm, lam, scale, shift)
        # float32 errors scale with the terms before the shift cancels them, not with the (small) result.
        terms = mixup_reference(xs.abs(), batch.perm, lam, scale, shift.abs())
        slack = half_ulp(reference, torch.float16) + terms * 2.0**-20
        assert bool(((x.double() - reference).abs() <= slack).all())


class TestNormalisationFollowsEachBatchsDtype:
    """The normalisation constants are built for the dtype each batch is computed in, batch after batch."""

    def reference(self, xs, batch):
        scale = 1 / torch.tensor(STD, dtype=torch.float64).reshape(3, 1, 1)
        shift = -torch.tensor(MEAN, dtype=torch.float64).reshape(3, 1, 1) * scale
        return mixup_reference(xs, batch.perm, batch.lam, scale, shift)

    def test_a_float64_batch_after_a_float32_one_is_normalised_in_float64(self):
        collate = MixupCollate(0.4, device="cpu", seed=0, mean=MEAN, std=STD)
        collate(image_samples(8, dtype=torch.float32)[0]).finish()
        samples, xs = image_samples(8, dtype=torch.float64, seed=1)
        batch = collate(samples).finish()
        assert batch.x.dtype == torch.float64
        torch.testing.assert_close(batch.x, self.reference(xs, batch), rtol=1e-12, atol=1e-12)

    def test_changing_the_output_dtype_between_batches(self):
        collate = MixupCollate(0.4, device="cpu", seed=0, mean=MEAN, std=STD, dtype=torch.float32)
        collate(image_samples(8, dtype=torch.uint8)[0]).finish()
        collate.dtype = torch.float64
        samples, xs = image_samples(8, dtype=torch.uint8, seed=1)
        batch = collate(samples).finish()
        assert batch.x.dtype == torch.float64
        torch.testing.assert_close(batch.x, self.reference(xs.double() / 255, batch), rtol=1e-12, atol=1e-12)
