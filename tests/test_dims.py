"""CutMix regions over any sample dimensions (``cutmix_dims``): clips, spectrograms, waveforms and sequences.

Every batch is checked against float64 oracles: the pixels against a region pasted row by row, ``lam`` against
the region's volume, dense targets against the same region, normalisation against ``channel_dim``.
"""

import math

import pytest
import torch
from oracles import mixed_cross_entropy_reference, mixup_reference, paste_reference
from torch.utils.data import DataLoader, Dataset

from mixup_collate import MixupCollate, mixup_cross_entropy
from mixup_collate.params import BLENDED, CUT

B = 6

# (sample shape, cutmix_dims): a clip's block, a run of frames, a spectrogram's time and frequency, a waveform's
# segment, a sequence's span, and the default over a clip (one box for every frame).
LAYOUTS = [
    ((4, 3, 6, 5), (-4, -2, -1)),
    ((5, 2, 4, 3), (-4,)),
    ((1, 12, 21), (-1,)),
    ((2, 9, 16), (-2,)),
    ((2, 51), (-1,)),
    ((30,), (-1,)),
    ((4, 3, 6, 5), (-2, -1)),
]


def samples_of(shape, dtype=torch.float32, seed=0, targets=None):
    """``B`` samples whose values say which sample they are (so a pasted element shows its source)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(B):
        x = torch.rand(shape, generator=g) * 0.5 + 10 * i
        x = torch.randint(0, 250, shape, generator=g, dtype=torch.uint8) if dtype == torch.uint8 else x
        out.append((x, i if targets is None else targets(i, g)))
    return out


def batch_and_params(samples, **settings):
    """A finished batch and the draws it was made with (the same seed drawn again on a twin)."""
    collate = MixupCollate(device="cpu", seed=3, **settings)
    twin = MixupCollate(device="cpu", seed=3, **settings)
    return collate(samples).finish(), twin.draw(twin(samples)._stacked)


def inputs(samples):
    return torch.stack([s[0] for s in samples])


class TestRegions:
    @pytest.mark.parametrize("shape, dims", LAYOUTS)
    def test_cut_rows_hold_the_partners_region_and_blended_rows_the_mixup_formula(self, shape, dims):
        samples = samples_of(shape)
        batch, params = batch_and_params(samples, alpha=0.8, cutmix_alpha=1.0, cutmix_dims=dims)
        assert params.dims == dims
        x, perm = inputs(samples), params.perm.tolist()
        regions = params.boxes.tolist() if params.boxes is not None else [[0, 0] * len(dims)] * B
        cut = paste_reference(x, perm, regions, dims)
        blended = mixup_reference(x, perm, params.lam)
        for i, mode in enumerate(params.mode.tolist()):
            expected = cut[i] if mode == CUT else blended[i] if mode == BLENDED else x[i].double()
            torch.testing.assert_close(batch.x[i].double(), expected, rtol=1e-6, atol=1e-5)
        assert {CUT, BLENDED} <= set(params.mode.tolist()), "both kinds of row are checked"

    @pytest.mark.parametrize("shape, dims", LAYOUTS)
    def test_lam_is_the_share_of_the_sample_a_cut_row_keeps(self, shape, dims):
        samples = samples_of(shape)
        batch, params = batch_and_params(samples, alpha=0, cutmix_alpha=1.0, cutmix_dims=dims)
        regions = params.boxes.double()
        volume = (regions[:, 1::2] - regions[:, 0::2]).prod(1)
        total = math.prod(shape[d] for d in dims)
        torch.testing.assert_close(batch.lam.double(), 1 - volume / total, rtol=0, atol=2**-24)
        changed = (batch.x != inputs(samples)).flatten(1).double().mean(1)
        own_is_partner = params.perm == torch.arange(B)
        torch.testing.assert_close(changed[~own_is_partner], (1 - batch.lam.double())[~own_is_partner])

    def test_correct_lam_false_gives_the_drawn_weight(self):
        samples = samples_of((2, 51))
        corrected, params = batch_and_params(samples, alpha=0, cutmix_alpha=1.0, cutmix_dims=(-1,))
        drawn, _ = batch_and_params(samples, alpha=0, cutmix_alpha=1.0, cutmix_dims=(-1,), correct_lam=False)
        assert torch.equal(drawn.x, corrected.x) and not torch.equal(drawn.lam, corrected.lam)

    def test_minmax_regions_lie_inside_the_sample_and_fold_bounds_their_volume(self):
        samples = samples_of((4, 3, 6, 5))
        batch, params = batch_and_params(samples, alpha=0, cutmix_minmax=(0.4, 0.75), cutmix_dims=(-4, -2, -1))
        r = params.boxes
        assert bool((r[:, 0::2] >= 0).all()) and bool((r[:, 1::2] <= torch.tensor([4, 6, 5])).all())
        sides = r[:, 1::2] - r[:, 0::2]
        assert bool((sides >= torch.tensor([1, 2, 2])).all()), "floor(size * 0.4) at least, per dimension"
        with pytest.raises(ValueError, match=r"cutmix_minmax=\(0.4, 0.8\) allows boxes covering up to 0.51.*0.794"):
            MixupCollate(0, cutmix_minmax=(0.4, 0.8), cutmix_dims=(-4, -2, -1))
        MixupCollate(0, cutmix_minmax=(0.4, 0.8), cutmix_dims=(-4, -2, -1), fold=False)

    def test_a_temporal_cut_pastes_whole_frames(self):
        samples = samples_of((8, 3, 6, 5))
        batch, params = batch_and_params(samples, alpha=0, cutmix_alpha=1.0, cutmix_dims=(-4,))
        own = inputs(samples)
        for i in range(B):
            start, stop = params.boxes[i].tolist()
            pasted = (batch.x[i] != own[i]).flatten(1).all(1)
            if params.perm[i] != i:
                assert pasted.tolist() == [start <= t < stop for t in range(8)]

    def test_uint8_clips_cross_as_bytes_and_pasted_values_are_exact(self):
        samples = samples_of((4, 3, 6, 5), dtype=torch.uint8)
        batch, params = batch_and_params(samples, alpha=0, cutmix_alpha=1.0, cutmix_dims=(-4, -2, -1))
        expected = paste_reference(inputs(samples), params.perm.tolist(), params.boxes.tolist(), (-4, -2, -1)) / 255
        torch.testing.assert_close(batch.x.double(), expected, rtol=0, atol=1e-7)

    def test_batchwise_draws_share_one_region(self):
        samples = samples_of((1, 12, 21))
        _, params = batch_and_params(samples, alpha=0, cutmix_alpha=1.0, cutmix_dims=(-1,), per_sample=False)
        assert len({tuple(r) for r in params.boxes.tolist()}) == 1


def per_frame_masks(i, g):
    return torch.randint(0, 4, (4, 6, 5), generator=g)


def per_step_labels(i, g):
    return torch.randint(0, 3, (21,), generator=g)


class TestDenseTargets:
    @pytest.mark.parametrize(
        "shape, dims, targets",
        [((4, 3, 6, 5), (-4, -2, -1), per_frame_masks), ((1, 12, 21), (-1,), per_step_labels)],
    )
    def test_targets_shaped_like_the_cut_dimensions_are_cut_by_the_same_region(self, shape, dims, targets):
        samples = samples_of(shape, targets=targets)
        batch, params = batch_and_params(
            samples, alpha=0.8, cutmix_alpha=1.0, cutmix_dims=dims, dense_targets=True, prob=0.9
        )
        sizes = tuple(shape[d] for d in dims)
        assert batch.lam.shape == (B, *sizes)
        y = torch.stack([s[1] for s in samples])
        assert torch.equal(batch.y_a, y) and torch.equal(batch.y_b, y[params.perm])
        regions = params.boxes.tolist() if params.boxes is not None else [[0, 0] * len(dims)] * B
        for i, mode in enumerate(params.mode.tolist()):
            if mode == CUT:
                expected = torch.ones(sizes, dtype=torch.float64)
                index = tuple(slice(a, b) for a, b in zip(regions[i][0::2], regions[i][1::2]))
                expected[index] = 0
            else:
                expected = torch.full(sizes, float(params.lam[i]) if mode == BLENDED else 1.0, dtype=torch.float64)
            assert torch.equal(batch.lam[i].double(), expected), f"sample {i}"
            assert batch.lam[i].double().mean().item() == pytest.approx(float(params.lam[i]), abs=1e-6)
        assert CUT in params.mode.tolist()

    def test_the_loss_weighs_each_frame_by_its_own_lam(self):
        samples = samples_of((1, 12, 21), targets=per_step_labels)
        batch, _ = batch_and_params(samples, alpha=0, cutmix_alpha=1.0, cutmix_dims=(-1,), dense_targets=True)
        logits = torch.randn(B, 3, 21, generator=torch.Generator().manual_seed(0))
        expected = mixed_cross_entropy_reference(logits.double(), batch.y_a, batch.y_b, batch.lam.double())
        torch.testing.assert_close(mixup_cross_entropy(logits, batch.y_a, batch.y_b, batch.lam).double(), expected)

    def test_float_maps_mix_per_element_with_stack_y_false(self):
        samples = samples_of((1, 12, 21), targets=lambda i, g: torch.rand(2, 21, generator=g))
        batch, params = batch_and_params(
            samples, alpha=0.8, cutmix_alpha=1.0, cutmix_dims=(-1,), dense_targets=True, stack_y=False
        )
        y = torch.stack([s[1] for s in samples]).double()
        w = batch.lam.double()[:, None]
        torch.testing.assert_close(batch.y_a.double(), w * y + (1 - w) * y[params.perm], rtol=1e-6, atol=1e-6)

    def test_class_index_targets_keep_one_lam_per_sample(self):
        batch, _ = batch_and_params(samples_of((4, 3, 6, 5)), alpha=0, cutmix_alpha=1.0, cutmix_dims=(-4,))
        assert batch.lam.shape == (B,)

    def test_another_dense_shape_is_refused_naming_the_sample_and_the_expected_shape(self):
        samples = samples_of((4, 3, 6, 5), targets=per_frame_masks)
        samples[2] = (samples[2][0], torch.zeros(6, 5, dtype=torch.int64))
        with pytest.raises(ValueError, match=r"sample 2's target has shape \(6, 5\).*\(4, 6, 5\)"):
            MixupCollate(0, cutmix_alpha=1.0, cutmix_dims=(-4, -2, -1), dense_targets=True, device="cpu")(samples)


class TestChannelDim:
    def test_mean_and_std_apply_along_the_named_channel_dimension(self):
        samples = samples_of((4, 3, 6, 5), dtype=torch.uint8)
        mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
        collate = MixupCollate(mean=mean, std=std, channel_dim=-3, enabled=False, device="cpu")
        x = collate(samples).finish().x
        m, s = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
        expected = (inputs(samples).double() / 255 - m[:, None, None]) / s[:, None, None]
        torch.testing.assert_close(x.double(), expected, rtol=1e-6, atol=1e-6)

    def test_pytorchvideos_dict_clips_channels_first_as_the_page_shows(self):
        # pytorchvideo's datasets give {"video": (C, T, H, W), "label": ..., "video_name": ...}.
        g = torch.Generator().manual_seed(0)
        clips = torch.randint(0, 256, (B, 3, 4, 6, 5), dtype=torch.uint8, generator=g)
        samples = [{"video": clips[i], "label": i % 3, "video_name": f"v{i}"} for i in range(B)]
        mean, std = (0.45, 0.4, 0.35), (0.225, 0.25, 0.2)
        settings = dict(cutmix_alpha=1.0, cutmix_dims=(-3, -2, -1), input_key="video", target_key="label")
        settings |= dict(mean=mean, std=std, channel_dim=-4)
        batch, params = batch_and_params(samples, alpha=0, **settings)
        m, s = (torch.tensor(v, dtype=torch.float64).view(3, 1, 1, 1) for v in (mean, std))
        cut = paste_reference(clips, params.perm.tolist(), params.boxes.tolist(), (-3, -2, -1))
        torch.testing.assert_close(batch.x.double(), (cut / 255 - m) / s, rtol=1e-6, atol=1e-5)
        assert batch.extras["video_name"] == [f"v{i}" for i in range(B)]

    def test_without_it_three_values_meet_the_frame_axis_and_the_error_says_what_to_name(self):
        samples = samples_of((4, 3, 6, 5), dtype=torch.uint8)
        with pytest.raises(ValueError, match=r"mean/std have 3 values.*4 channels in dim 1.*channel_dim"):
            MixupCollate(mean=(0.5,) * 3, std=(0.2,) * 3, device="cpu")(samples).finish()

    def test_a_channel_dim_outside_the_samples_is_refused_by_name(self):
        with pytest.raises(ValueError, match=r"channel_dim=-4 is outside the samples' shape \(3, 6, 5\)"):
            MixupCollate(channel_dim=-4, device="cpu")(samples_of((3, 6, 5))).finish()


class TestErrors:
    @pytest.mark.parametrize("value", [(), (0,), (1, -1), (-1, -2), (-2, -2), (-1.0,), "(-1,)", -1, None])
    def test_malformed_cutmix_dims_are_refused_at_construction(self, value):
        with pytest.raises(ValueError, match="cutmix_dims must be a tuple of one or more negative sample dimensions"):
            MixupCollate(0, cutmix_alpha=1.0, cutmix_dims=value)

    @pytest.mark.parametrize("shape, dims", [((2, 51), (-3, -1)), ((30,), (-2,)), ((1, 12, 21), (-4,))])
    def test_dims_beyond_the_samples_rank_are_refused_at_the_first_batch(self, shape, dims):
        collate = MixupCollate(0, cutmix_alpha=1.0, cutmix_dims=dims, device="cpu")
        with pytest.raises(
            ValueError, match=rf"cutmix_dims={dims}.*shape {shape}".replace("(", r"\(").replace(")", r"\)")
        ):
            collate(samples_of(shape)).finish()

    def test_the_default_on_sequences_says_to_name_the_dimension(self):
        with pytest.raises(ValueError, match=r"two spatial dimensions.*cutmix_dims.*\(30,\)"):
            MixupCollate(0, cutmix_alpha=1.0, device="cpu")(samples_of((30,))).finish()

    def test_box_targets_need_the_image_dimensions(self):
        with pytest.raises(ValueError, match=r"box_targets=True.*cutmix_dims=\(-1,\)"):
            MixupCollate(box_targets=True, cutmix_dims=(-1,))

    def test_cutmix_dims_are_fixed_after_the_first_batch(self):
        collate = MixupCollate(0, cutmix_alpha=1.0, cutmix_dims=(-1,), device="cpu")
        collate(samples_of((2, 51))).finish()
        with pytest.raises(ValueError, match="cutmix_dims cannot change after the collate's first batch"):
            collate.cutmix_dims = (-2, -1)


class Clips(Dataset):
    """Module level, so that spawned workers can import it."""

    def __init__(self):
        self.samples = samples_of((4, 3, 6, 5), dtype=torch.uint8, targets=per_frame_masks) * 2

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def clip_batches(workers, state=None):
    collate = MixupCollate(0.8, cutmix_alpha=1.0, cutmix_dims=(-4, -2, -1), dense_targets=True, device="cpu", seed=5)
    if state is not None:
        collate.load_state_dict(state)
    loader = DataLoader(Clips(), batch_size=4, num_workers=workers, collate_fn=collate)
    return [tuple(t.clone() for t in batch) for batch in loader], collate


class TestReproducibility:
    def test_the_same_seed_gives_the_same_batches_for_any_number_of_workers(self):
        alone, _ = clip_batches(0)
        with_workers, _ = clip_batches(2)
        for a, b in zip(alone, with_workers, strict=True):
            assert all(torch.equal(u, v) for u, v in zip(a, b))

    def test_a_saved_state_resumes_the_same_draws(self):
        collate = MixupCollate(0, cutmix_alpha=1.0, cutmix_dims=(-1,), device="cpu", seed=2)
        samples = samples_of((1, 12, 21))
        collate(samples).finish()
        state = collate.state_dict()
        expected = collate(samples).finish()
        resumed = MixupCollate(0, cutmix_alpha=1.0, cutmix_dims=(-1,), device="cpu", seed=2)
        resumed.load_state_dict(state)
        got = resumed(samples).finish()
        assert torch.equal(got.x, expected.x) and torch.equal(got.lam, expected.lam)
