"""Dense targets: masks and per-pixel maps are mixed with their images, pixel for pixel, with a per-pixel lam."""

import warnings

import numpy as np
import pytest
import torch
from oracles import dense_mix_reference
from support import finished
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors

from mixup_collate import MixupCollate

MODES = {
    "mixup": {"alpha": 0.4},
    "cutmix": {"alpha": 0.0, "cutmix_alpha": 1.0},
    "switched": {"alpha": 0.4, "cutmix_alpha": 1.0},
    "switched, prob 0.6": {"alpha": 0.4, "cutmix_alpha": 1.0, "prob": 0.6},
    "cutmix per batch": {"alpha": 0.0, "cutmix_alpha": 1.0, "per_sample": False},
    "minmax unfolded": {"alpha": 0.0, "cutmix_minmax": (0.3, 0.9), "fold": False},
}


def segmentation_samples(n, shape=(3, 9, 12), mask_dtype=torch.uint8, classes=5, seed=0, void=255):
    """``n`` ``(uint8 image, mask)`` pairs with a void label on the border, as a segmentation dataset returns them."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)
    masks = torch.randint(0, classes, (n, *shape[-2:]), generator=g).to(mask_dtype)
    masks[:, 0, :] = void
    return [(images[i].clone(), masks[i].clone()) for i in range(n)], images, masks


class TestPerPixelFormula:
    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("seed", range(3))
    def test_inputs_are_the_per_pixel_mix_and_lam_is_the_kept_share(self, mode, seed):
        samples, images, masks = segmentation_samples(7, seed=seed)
        batch = finished(MixupCollate(**MODES[mode], dense_targets=True, device="cpu", seed=seed), samples)
        assert batch.lam.shape == (7, 9, 12) and batch.lam.dtype == torch.float32
        torch.testing.assert_close(batch.x.double(), dense_mix_reference(images, batch.perm, batch.lam) / 255)
        assert batch.y_a.dtype == torch.int64 and torch.equal(batch.y_a, masks.long())
        assert torch.equal(batch.y_b, masks.long()[batch.perm])

    @pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
    def test_normalisation_dtype_and_channels_last_apply_to_the_per_pixel_mix(self, dtype, tolerance):
        samples, images, _ = segmentation_samples(6, seed=4)
        mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
        collate = MixupCollate(
            alpha=0.4, cutmix_alpha=1.0, dense_targets=True, mean=mean, std=std, dtype=dtype, channels_last=True,
            device="cpu", seed=4,
        )  # fmt: skip
        batch = finished(collate, samples)
        assert batch.x.dtype == dtype and batch.x.is_contiguous(memory_format=torch.channels_last)
        m, s = (torch.tensor(v, dtype=torch.float64).reshape(1, 3, 1, 1) for v in (mean, std))
        want = (dense_mix_reference(images, batch.perm, batch.lam) / 255 - m) / s
        torch.testing.assert_close(batch.x.double(), want, atol=tolerance * 4, rtol=tolerance)

    @pytest.mark.parametrize("mode", MODES)
    def test_each_row_is_a_constant_lam_or_ones_with_one_zero_box(self, mode):
        samples, _, _ = segmentation_samples(16, seed=1)
        lam = finished(MixupCollate(**MODES[mode], dense_targets=True, device="cpu", seed=2), samples).lam
        for row in lam:
            values = row.unique()
            if len(values) == 1:
                continue
            assert set(values.tolist()) == {0.0, 1.0}, "a cut row holds only 0 (the box) and 1"
            rows, cols = (row == 0).any(1).nonzero().flatten(), (row == 0).any(0).nonzero().flatten()
            box = torch.zeros_like(row, dtype=torch.bool)
            box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
            assert torch.equal(box, row == 0), "the zeros form one rectangle"

    def test_image_and_mask_are_cut_by_the_same_box_pixel_for_pixel(self):
        # Sample i's image is the constant i: a pixel of x tells whose it is.
        n = 9
        samples = [(torch.full((3, 10, 14), float(i) / 255), torch.full((10, 14), i)) for i in range(n)]
        collate = MixupCollate(alpha=0.0, cutmix_alpha=1.0, dense_targets=True, cycle=True, device="cpu", seed=3)
        batch = finished(collate, samples)
        from_partner = batch.x[:, 0] * 255 != torch.arange(n, dtype=torch.float32).reshape(-1, 1, 1)
        assert bool(from_partner.any()), "some pixels were pasted"
        assert torch.equal(from_partner, batch.lam == 0)
        effective = torch.where(batch.lam == 1, batch.y_a, batch.y_b)
        assert torch.equal(effective.float(), (batch.x[:, 0] * 255).round()), "the mask follows the image exactly"

    def test_masks_are_never_blended(self):
        samples, _, masks = segmentation_samples(8)
        batch = finished(MixupCollate(alpha=1.0, cutmix_alpha=1.0, dense_targets=True, device="cpu", seed=0), samples)
        assert torch.equal(batch.y_a, masks.long()) and torch.equal(batch.y_b, masks.long()[batch.perm])

    def test_unmixed_batches_weigh_every_pixel_one(self):
        samples, images, masks = segmentation_samples(5)
        collate = MixupCollate(cutmix_alpha=1.0, dense_targets=True, enabled=False, device="cpu")
        batch = finished(collate, samples)
        assert torch.equal(batch.lam, torch.ones(5, 9, 12)) and torch.equal(batch.y_b, batch.y_a)
        torch.testing.assert_close(batch.x, images.float() / 255)

    def test_classification_lam_stays_per_sample(self):
        samples = [(torch.rand(3, 8, 8), i % 3) for i in range(6)]
        assert finished(MixupCollate(cutmix_alpha=1.0, device="cpu", seed=0), samples).lam.shape == (6,)


class TestFloatMaps:
    @pytest.mark.parametrize("shape", [(9, 12), (2, 9, 12)])
    def test_float_maps_stack_unmixed_or_mix_per_pixel_with_stack_y_false(self, shape):
        g = torch.Generator().manual_seed(0)
        maps = torch.rand((6, *shape), generator=g)
        samples = [(torch.rand(3, 9, 12, generator=g), maps[i]) for i in range(6)]
        kwargs = {"alpha": 0.4, "cutmix_alpha": 1.0, "dense_targets": True, "device": "cpu", "seed": 1}
        stacked = finished(MixupCollate(**kwargs), samples)
        assert torch.equal(stacked.y_a, maps) and torch.equal(stacked.y_b, maps[stacked.perm])
        mixed = finished(MixupCollate(**kwargs, stack_y=False), samples)
        assert torch.equal(mixed.y_a, mixed.y_b) and torch.equal(mixed.lam, stacked.lam)
        torch.testing.assert_close(mixed.y_a.double(), dense_mix_reference(maps, mixed.perm, mixed.lam))
        cut = mixed.lam == 0
        partner = maps[mixed.perm]
        if maps.ndim == 4:
            cut, partner, own = cut.unsqueeze(1).expand_as(maps), partner, maps
        else:
            own = maps
        assert torch.equal(mixed.y_a[cut], partner[cut]), "pasted pixels are copies"
        whole = (mixed.lam == 1).expand_as(maps) if maps.ndim == 3 else (mixed.lam == 1).unsqueeze(1).expand_as(maps)
        assert torch.equal(mixed.y_a[whole], own[whole])

    def test_float_maps_under_cutmix_without_dense_targets_warn_once_naming_it(self):
        samples = [(torch.rand(3, 6, 6), torch.rand(6, 6)) for _ in range(4)]
        collate = MixupCollate(cutmix_alpha=1.0, device="cpu", seed=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            finished(collate, samples)
            finished(collate, samples)
        assert len(caught) == 1 and "dense_targets=True" in str(caught[0].message)


class TestInputKinds:
    @pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
    def test_integer_masks_of_any_dtype_cross_as_they_are_and_arrive_as_int64(self, dtype):
        samples, _, masks = segmentation_samples(4, mask_dtype=dtype, void=0 if dtype == torch.uint8 else -1)
        pending = MixupCollate(dense_targets=True, device="cpu", seed=0)(samples)
        assert pending._stacked.y.dtype == dtype, "the mask crosses the process boundary in its own dtype"
        assert torch.equal(pending.finish().y_a, masks.long())

    @pytest.mark.parametrize("wrap", [np.asarray, tv_tensors.Mask, lambda m: np.asarray(m)[:, ::-1].copy()[:, ::-1]])
    def test_numpy_masks_and_tv_tensors_masks(self, wrap):
        samples, _, masks = segmentation_samples(4)
        wrapped = [(image, wrap(mask)) for image, mask in samples]
        batch = finished(MixupCollate(dense_targets=True, device="cpu", seed=0), wrapped)
        assert type(batch.y_a) is torch.Tensor and torch.equal(batch.y_a, masks.long())

    def test_dict_samples_and_stack_x(self):
        samples, images, masks = segmentation_samples(5)
        dicts = [{"image": image, "mask": mask} for image, mask in samples]
        collate = MixupCollate(dense_targets=True, stack_x=True, target_key="mask", device="cpu", seed=0)
        batch = finished(collate, dicts)
        assert batch.x.shape == (5, 2, 3, 9, 12) and batch.lam.shape == (5, 9, 12)
        assert torch.equal(batch.x[:, 1], batch.x[batch.perm, 0]) and torch.equal(batch.y_b, masks.long()[batch.perm])


class TestErrors:
    def test_a_mask_of_another_size_names_the_sample_and_both_shapes(self):
        samples, _, _ = segmentation_samples(4)
        samples[2] = (samples[2][0], torch.zeros(9, 11, dtype=torch.uint8))
        with pytest.raises(ValueError, match=r"sample 2's target has shape \(9, 11\).*\(9, 12\)"):
            finished(MixupCollate(dense_targets=True, device="cpu"), samples)

    def test_a_tv_tensors_mask_without_dense_targets_names_it(self):
        samples, _, _ = segmentation_samples(3)
        with pytest.raises(TypeError, match=r"dense_targets=True"):
            finished(MixupCollate(device="cpu"), [(image, tv_tensors.Mask(mask)) for image, mask in samples])

    def test_a_plain_mask_without_dense_targets_names_it(self):
        with pytest.raises(TypeError, match=r"sample 0's target.*dense_targets=True"):
            finished(MixupCollate(device="cpu"), segmentation_samples(3)[0])

    def test_integer_masks_with_stack_y_false_are_refused(self):
        with pytest.raises(TypeError, match="class-index masks.*stack_y=True"):
            finished(MixupCollate(dense_targets=True, stack_y=False, device="cpu"), segmentation_samples(3)[0])

    def test_soft_targets_are_refused_pointing_to_the_four_tuple(self):
        with pytest.raises(ValueError, match=r"mixup_cross_entropy\(logits, y_a, y_b, lam, ignore_index=...\)"):
            MixupCollate(dense_targets=True, soft_targets=True, num_classes=5)

    @pytest.mark.parametrize(
        "target, message",
        [
            (torch.zeros(2, 9, 12, dtype=torch.uint8), r"shape \(2, 9, 12\) and dtype torch.uint8"),
            (torch.zeros(9, 12, dtype=torch.bool), "dense_targets=True needs an integer"),
            (3, "target is a int; dense_targets=True needs"),
            (np.zeros((9, 12), dtype=np.uint64), "uint64 masks are not supported: convert them to int64"),
        ],
    )
    def test_targets_that_are_not_masks_or_maps_are_named(self, target, message):
        samples = [(torch.rand(3, 9, 12), target) for _ in range(3)]
        with pytest.raises((TypeError, ValueError), match=message):
            finished(MixupCollate(dense_targets=True, device="cpu"), samples)


class Segmentation(Dataset):
    """12 uint8 images with uint8 masks, module level so that spawned workers can import it."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.randint(0, 256, (3, 6, 8), dtype=torch.uint8, generator=g), torch.full(
            (6, 8), i, dtype=torch.uint8
        )


@pytest.mark.slow
class TestWorkers:
    def batches(self, num_workers, context=None):
        collate = MixupCollate(alpha=0.4, cutmix_alpha=1.0, dense_targets=True, device="cpu", seed=0)
        loader = DataLoader(
            Segmentation(), batch_size=5, collate_fn=collate, num_workers=num_workers,
            multiprocessing_context=context if num_workers else None,
        )  # fmt: skip
        seen = []
        for pending in loader:
            assert pending._stacked.y.dtype == torch.uint8, "masks cross from the workers as uint8"
            seen.append(tuple(pending) + (pending.perm,))
        return seen

    @pytest.mark.parametrize("context", ["fork", "spawn"])
    def test_workers_give_the_main_process_batches(self, context):
        expected = self.batches(0)
        for got, want in zip(self.batches(2, context), expected, strict=True):
            for u, v in zip(got, want):
                assert torch.equal(u, v)
