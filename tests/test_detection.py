"""Box targets (``box_targets=True``): each sample's boxes follow its mixed image, checked against a float64 oracle."""

import pickle

import pytest
import torch
from oracles import cut_regions, detection_reference
from support import H, W, detection_samples, finished
from torch.utils.data import DataLoader, Dataset

from mixup_collate import MixupCollate
from mixup_collate.batch import DetectionBatch
from mixup_collate.detection import mix_box_targets, pack_targets
from mixup_collate.params import BLENDED, CUT, UNMIXED


def expected(samples, batch, params, v):
    targets = [(s[1]["boxes"].double().tolist(), s[1]["labels"].tolist()) for s in samples]
    regions = params.boxes.tolist() if params.boxes is not None else [[0, 0, 0, 0]] * len(samples)
    return detection_reference(targets, params.perm.tolist(), params.lam.tolist(), params.mode.tolist(), regions, v)


def batch_and_params(samples, **kwargs):
    """A finished batch and the parameters it was drawn with (the same seed drawn again on a twin)."""
    collate = MixupCollate(box_targets=True, device="cpu", seed=kwargs.pop("seed", 0), **kwargs)
    twin = MixupCollate(box_targets=True, device="cpu", seed=collate.seed, **kwargs)
    stacked = twin(samples)._stacked
    return finished(collate, samples), twin.draw(stacked)


def assert_matches_reference(batch, params, samples, v):
    for i, (target, (boxes, labels, weights)) in enumerate(zip(batch.targets, expected(samples, batch, params, v))):
        got = target["boxes"].double()
        assert got.shape == (len(boxes), 4), f"sample {i}: {got.tolist()} against {boxes}"
        if boxes:
            torch.testing.assert_close(got, torch.tensor(boxes, dtype=torch.float64), rtol=0, atol=1e-5)
        assert target["labels"].tolist() == labels, f"sample {i}"
        torch.testing.assert_close(target["weights"].double(), torch.tensor(weights, dtype=torch.float64))
        assert target["weights"].dtype == torch.float32 and target["boxes"].dtype == torch.float32


class TestContract:
    def test_the_batch_unpacks_as_images_and_a_list_of_target_dicts(self):
        samples = detection_samples()
        batch = finished(MixupCollate(alpha=0.4, box_targets=True, device="cpu", seed=0), samples)
        assert isinstance(batch, DetectionBatch)
        x, targets = batch
        assert x.shape == (8, 3, H, W) and x.dtype == torch.float32 and len(targets) == 8
        assert batch.lam.shape == (8,) and batch.lam.dtype == torch.float32 and batch.perm.shape == (8,)
        for i, target in enumerate(targets):
            assert {"boxes", "labels", "weights", "iscrowd", "image_id"} <= set(target)
            assert target["image_id"] == i, "per-image fields stay the sample's own"
            assert len(target["iscrowd"]) == len(target["boxes"]) == len(target["weights"])

    def test_a_pending_detection_batch_has_two_fields_and_pickles_finished(self):
        batch = MixupCollate(alpha=0.4, box_targets=True, device="cpu", seed=0)(detection_samples())
        assert len(batch) == 2
        restored = pickle.loads(pickle.dumps(batch))
        assert torch.equal(restored.x, batch.x) and len(restored.targets) == 8

    @pytest.mark.parametrize("kind", ["XYXY", "XYWH", "CXCYWH"])
    def test_bounding_boxes_in_any_format_come_back_as_xyxy_bounding_boxes(self, kind):
        tv_tensors = pytest.importorskip("torchvision.tv_tensors")
        from torchvision.ops import box_convert

        samples = detection_samples(counts=[2] * 8)
        plain = finished(MixupCollate(alpha=0.4, box_targets=True, device="cpu", seed=0), samples)
        for _, target in samples:
            converted = box_convert(target["boxes"], "xyxy", kind.lower())
            target["boxes"] = tv_tensors.BoundingBoxes(converted, format=kind, canvas_size=(H, W))
        batch = finished(MixupCollate(alpha=0.4, box_targets=True, device="cpu", seed=0), samples)
        for got, want in zip(batch.targets, plain.targets):
            assert type(got["boxes"]).__name__ == "BoundingBoxes" and got["boxes"].format.name == "XYXY"
            assert tuple(got["boxes"].canvas_size) == (H, W)
            torch.testing.assert_close(got["boxes"].as_subclass(torch.Tensor), want["boxes"], rtol=0, atol=1e-4)
        assert type(plain.targets[0]["boxes"]) is torch.Tensor

    def test_per_box_fields_cross_packed_one_tensor_per_field(self):
        samples = detection_samples(counts=[1, 0, 3, 2])
        packed = pack_targets([t for _, t in samples], (H, W))
        assert packed.counts == [1, 0, 3, 2] and packed.boxes.shape == (6, 4)
        assert set(packed.fields) == {"labels", "iscrowd"} and packed.fields["labels"].shape == (6,)


class TestMixupRows:
    @pytest.mark.parametrize("seed", range(4))
    def test_own_boxes_then_the_partners_weighted_lam_and_one_minus_lam(self, seed):
        samples = detection_samples(seed=seed)
        batch, params = batch_and_params(samples, alpha=0.4, seed=seed)
        assert bool((params.mode == BLENDED).all())
        assert_matches_reference(batch, params, samples, 0.1)


class TestCutMixRows:
    @pytest.mark.parametrize("visibility", [0.0, 0.1, 0.5, 1.0])
    @pytest.mark.parametrize("seed", range(6))
    def test_boxes_are_clipped_dropped_and_gained_as_the_oracle_says(self, seed, visibility):
        samples = detection_samples(seed=seed)
        batch, params = batch_and_params(samples, alpha=0, cutmix_alpha=1.0, box_min_visibility=visibility, seed=seed)
        assert bool((params.mode == CUT).all())
        assert_matches_reference(batch, params, samples, visibility)

    def test_no_box_without_area_and_images_without_boxes_work_both_ways(self):
        samples = detection_samples(counts=[0, 3, 0, 4, 0, 2, 1, 0], seed=3)
        for seed in range(10):
            batch, params = batch_and_params(samples, alpha=0.8, cutmix_alpha=1.0, box_min_visibility=0.0, seed=seed)
            assert_matches_reference(batch, params, samples, 0.0)
            for target in batch.targets:
                b = target["boxes"]
                assert bool(((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all())

    def test_masks_and_images_are_cut_by_the_same_region_pixel_for_pixel(self, paste_path):
        samples = detection_samples(masks=True, counts=[3] * 8, seed=1)
        batch, params = batch_and_params(samples, alpha=0, cutmix_alpha=1.0, box_min_visibility=0.0, seed=2)
        images = torch.stack([s[0] for s in samples]).float()
        pixels = (batch.x * 255).round()  # uint8 in, scaled by 1/255: the bytes come back exactly
        regions = cut_regions(pixels, images, images[params.perm])  # where each image took its partner's pixels
        for i, target in enumerate(batch.targets):
            j, region = int(params.perm[i]), regions[i]
            own, theirs = samples[i][1]["masks"], samples[j][1]["masks"]
            top, bottom, left, right = params.boxes[i].tolist()
            inside = [k for k, b in enumerate(samples[j][1]["boxes"].tolist())
                      if min(b[2], right) > max(b[0], left) and min(b[3], bottom) > max(b[1], top)]  # fmt: skip
            shown = [k for k, b in enumerate(samples[i][1]["boxes"].tolist())
                     if not (left <= b[0] and b[2] <= right and top <= b[1] and b[3] <= bottom)]  # fmt: skip
            want = [own[k] & ~region for k in shown] + [theirs[k] & region for k in inside] if j != i else list(own)
            assert target["masks"].dtype == torch.bool and len(target["masks"]) == len(want)
            for k, (got, mask) in enumerate(zip(target["masks"], want)):
                assert torch.equal(got, mask), f"sample {i}, mask {k}"


def mixed_by_hand(targets, perm, lam, mode, regions=None, min_visibility=0.1, size=(H, W), **pack):
    """``mix_box_targets`` on given draws: ``regions`` as ``(top, bottom, left, right)`` rows."""
    regions = None if regions is None else torch.tensor(regions, dtype=torch.int64)
    packed, mode = pack_targets(targets, size, **pack), torch.tensor(mode, dtype=torch.uint8)
    return mix_box_targets(
        packed, torch.tensor(perm), torch.tensor(lam), mode, regions, torch.device("cpu"), min_visibility
    )


def box_target(*boxes, **fields):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.arange(len(boxes)) + 1, **fields}


class TestWhatTheImageShows:
    @pytest.mark.parametrize("visibility", [0.0, 0.1, 1.0])
    def test_an_own_box_the_pasted_region_covers_whole_is_gone_at_any_min_visibility(self, visibility):
        targets = [box_target([2.0, 2, 8, 8], [20, 10, 28, 20]), box_target([1.0, 1, 3, 3])]
        out = mixed_by_hand(targets, [1, 0], [0.5, 1.0], [CUT, UNMIXED], [[0, 12, 0, 12], [0, 0, 0, 0]], visibility)
        assert out[0]["boxes"].tolist() == [[20, 10, 28, 20], [1, 1, 3, 3]], "the covered own box is gone"
        assert out[0]["labels"].tolist() == [2, 1] and out[0]["weights"].tolist() == [1, 1]

    def test_a_partner_box_outside_the_region_is_gone_at_min_visibility_zero(self):
        targets = [box_target([20.0, 10, 28, 20]), box_target([1.0, 1, 3, 3], [14, 14, 18, 18])]
        out = mixed_by_hand(targets, [1, 0], [0.5, 1.0], [CUT, UNMIXED], [[0, 12, 0, 12], [0, 0, 0, 0]], 0.0)
        assert out[0]["boxes"].tolist() == [[20, 10, 28, 20], [1, 1, 3, 3]]

    def test_the_part_of_a_box_outside_the_image_is_not_visible_and_boxes_come_back_inside_it(self):
        # [-20, 4, 6, 10]: only [0, 4, 6, 10] is in the image; the region covers that part, so nothing of it shows.
        targets = [box_target([-20.0, 4, 6, 10], [10, 2, 40, 30]), box_target([1.0, 1, 3, 3])]
        cut = mixed_by_hand(targets, [1, 0], [0.5, 1.0], [CUT, UNMIXED], [[0, 12, 0, 8], [0, 0, 0, 0]], 0.0)
        assert cut[0]["boxes"].tolist() == [[10, 2, W, H], [1, 1, 3, 3]] and cut[0]["labels"].tolist() == [2, 1]
        blended = mixed_by_hand(targets, [1, 0], [0.75, 0.75], [BLENDED, BLENDED])
        assert blended[0]["boxes"].tolist() == [[0, 4, 6, 10], [10, 2, W, H], [1, 1, 3, 3]]
        assert blended[1]["boxes"].tolist() == [[1, 1, 3, 3], [0, 4, 6, 10], [10, 2, W, H]]

    @pytest.mark.parametrize("visibility", [0.0, 0.3])
    @pytest.mark.parametrize("seed", range(4))
    def test_boxes_reaching_outside_the_image_match_the_oracle_on_their_part_inside(self, seed, visibility):
        samples = detection_samples(seed=seed)
        for _, target in samples:
            target["boxes"] = target["boxes"] * 1.4 - 4  # some edges leave the image on every side
        batch, params = batch_and_params(samples, alpha=0.8, cutmix_alpha=1.0, box_min_visibility=visibility, seed=seed)
        targets = [(t["boxes"].double().tolist(), t["labels"].tolist()) for _, t in samples]
        regions = params.boxes.tolist() if params.boxes is not None else [[0, 0, 0, 0]] * len(samples)
        want = detection_reference(targets, params.perm.tolist(), params.lam.tolist(), params.mode.tolist(), regions,
                                   visibility, size=(H, W))  # fmt: skip
        for i, (target, (boxes, labels, weights)) in enumerate(zip(batch.targets, want)):
            assert target["boxes"].shape == (len(boxes), 4), f"sample {i}"
            if boxes:
                torch.testing.assert_close(target["boxes"].double(), torch.tensor(boxes).double(), rtol=0, atol=1e-5)
            assert target["labels"].tolist() == labels
            torch.testing.assert_close(target["weights"].double(), torch.tensor(weights, dtype=torch.float64))
            b = target["boxes"]
            assert bool(((b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= W) & (b[:, 3] <= H)).all())


class TestTheTargetsOwnWeights:
    @pytest.mark.parametrize(
        "kwargs", [{"alpha": 0.8}, {"alpha": 0, "cutmix_alpha": 1.0}, {"alpha": 0.8, "cutmix_alpha": 1.0, "prob": 0.6}]
    )
    @pytest.mark.parametrize("seed", range(3))
    def test_per_box_weights_are_multiplied_by_the_mixing_weights(self, seed, kwargs):
        samples = detection_samples(seed=seed)
        g = torch.Generator().manual_seed(seed)
        for _, target in samples:
            target["weights"] = torch.rand(len(target["boxes"]), generator=g, dtype=torch.float64) + 0.5
        batch, params = batch_and_params(samples, **kwargs, seed=seed)
        targets = [(t["boxes"].double().tolist(), t["labels"].tolist(), t["weights"].tolist()) for _, t in samples]
        regions = params.boxes.tolist() if params.boxes is not None else [[0, 0, 0, 0]] * len(samples)
        want = detection_reference(
            targets, params.perm.tolist(), params.lam.tolist(), params.mode.tolist(), regions, 0.1
        )
        for target, (boxes, _, weights) in zip(batch.targets, want):
            assert target["weights"].dtype == torch.float32 and len(boxes) == len(target["weights"])
            torch.testing.assert_close(target["weights"].double(), torch.tensor(weights, dtype=torch.float64))


class TestPerImageAndPerBoxFields:
    def test_torchvisions_and_detrs_per_image_fields_stay_the_samples_own_whatever_their_length(self):
        targets = [box_target([1.0, 1, 5, 5], image_id=torch.tensor([7]), size=torch.tensor([H, W])),
                   box_target([2.0, 2, 6, 6], [8, 8, 12, 12], image_id=torch.tensor([9]), size=torch.tensor([H, W]),
                              orig_size=torch.tensor([480, 640]))]  # fmt: skip
        targets[0]["orig_size"] = torch.tensor([300, 400])
        out = mixed_by_hand(targets, [1, 0], [0.75, 0.75], [BLENDED, BLENDED])
        assert [t["image_id"].tolist() for t in out] == [[7], [9]]
        assert [t["size"].tolist() for t in out] == [[H, W], [H, W]]
        assert [t["orig_size"].tolist() for t in out] == [[300, 400], [480, 640]]
        assert len(out[0]["boxes"]) == 3

    def test_image_ids_of_one_element_are_taken_with_any_box_counts(self):
        samples = detection_samples(counts=[1, 3, 0, 2])
        for i, (_, target) in enumerate(samples):
            target["image_id"] = torch.tensor([i])
        batch = finished(MixupCollate(alpha=0.8, box_targets=True, device="cpu", seed=0), samples)
        assert [t["image_id"].tolist() for t in batch.targets] == [[0], [1], [2], [3]]

    def test_a_custom_per_box_field_is_mixed_with_its_boxes_when_named(self):
        samples = detection_samples(counts=[2, 1, 3, 2])
        for _, target in samples:
            target["track"] = target["labels"] * 100
        batch = finished(MixupCollate(alpha=0.8, box_targets=True, box_fields=["track"], device="cpu", seed=0), samples)
        for target in batch.targets:
            assert target["track"].tolist() == (target["labels"] * 100).tolist()
        unnamed = finished(MixupCollate(alpha=0.8, box_targets=True, device="cpu", seed=0), samples)
        assert [torch.equal(t["track"], s[1]["track"]) for t, s in zip(unnamed.targets, samples)] == [True] * 4

    def test_per_box_fields_listed_in_another_order_are_taken(self):
        samples = detection_samples(counts=[2, 1, 3, 2])
        samples[2] = (samples[2][0], dict(reversed(list(samples[2][1].items()))))
        batch = finished(MixupCollate(alpha=0.8, box_targets=True, device="cpu", seed=0), samples)
        assert all(len(t["iscrowd"]) == len(t["labels"]) == len(t["boxes"]) for t in batch.targets)


class TestUnmixedRows:
    def test_unmixed_samples_keep_their_target_once_with_weight_one(self):
        samples = detection_samples(seed=5)
        batch, params = batch_and_params(samples, alpha=0.8, cutmix_alpha=1.0, prob=0.5, seed=4)
        assert bool((params.mode == UNMIXED).any())
        assert_matches_reference(batch, params, samples, 0.1)
        for i in (params.mode == UNMIXED).nonzero().flatten().tolist():
            assert torch.equal(batch.targets[i]["boxes"], samples[i][1]["boxes"])
            assert bool((batch.targets[i]["weights"] == 1).all())

    def test_an_evaluation_collate_returns_every_target_unmixed(self):
        samples = detection_samples()
        batch = finished(MixupCollate(box_targets=True, enabled=False, device="cpu"), samples)
        for (_, target), got in zip(samples, batch.targets):
            assert torch.equal(got["boxes"], target["boxes"]) and bool((got["weights"] == 1).all())

    def test_a_sample_paired_with_itself_keeps_its_target_once(self):
        samples = detection_samples(b=1, counts=[3])
        for kwargs in ({"alpha": 0.4}, {"alpha": 0, "cutmix_alpha": 1.0}):
            batch = finished(MixupCollate(box_targets=True, device="cpu", seed=0, **kwargs), samples)
            assert torch.equal(batch.targets[0]["boxes"], samples[0][1]["boxes"])
            assert batch.targets[0]["weights"].tolist() == [1.0, 1.0, 1.0]


class TestErrors:
    @pytest.mark.parametrize(
        "change, message",
        [
            (lambda t: t.pop("boxes"), r"sample 2's target has no 'boxes'"),
            (lambda t: t.pop("labels"), r"sample 2's target has no 'labels'"),
            (lambda t: t.update(boxes=torch.zeros(2, 5)), r"sample 2's target 'boxes' must have shape \(N, 4\)"),
            (lambda t: t.update(iscrowd=torch.zeros(7)), r"sample 2's target 'iscrowd' has shape \(7,\).*3 boxes"),
            (lambda t: t.update(labels=torch.zeros(2, dtype=torch.int64)), r"sample 2's target 'labels'"),
            (
                lambda t: t.update(boxes=torch.tensor([[5.0, 5, 5, 9]] * 3)),
                r"sample 2's target 'boxes' has box 0 .*no area",
            ),
            (
                lambda t: t.update(boxes=torch.tensor([[1.0, 1, 4, 4], [1, 1, 4, 4], [-9, 2, 0, 6]])),
                r"sample 2's target 'boxes' has box 2 = \[-9.0, 2.0, 0.0, 6.0\].*no area inside the 24x30 image",
            ),
            (
                lambda t: t["boxes"].__setitem__((1, 2), float("nan")),
                r"sample 2's target 'boxes' has a NaN or infinite.*box 1",
            ),
            (
                lambda t: t["boxes"].__setitem__((0, 3), float("inf")),
                r"sample 2's target 'boxes' has a NaN or infinite.*box 0",
            ),
            (
                lambda t: t["boxes"].__setitem__((2, 0), -float("inf")),
                r"sample 2's target 'boxes' has a NaN or infinite.*box 2",
            ),
            (
                lambda t: t.update(labels=torch.tensor([1.0, 2.0, 3.0])),
                r"sample 2's target 'labels' must be \(3,\) integers",
            ),
            (
                lambda t: t.update(masks=torch.zeros(3, H, W + 1, dtype=torch.bool)),
                r"sample 2's target 'masks' has shape",
            ),
            (lambda t: t.update(weights=torch.ones(3, 2)), r"sample 2's target 'weights' must be \(3,\) real numbers"),
            (lambda t: t.update(weights=torch.ones(1)), r"sample 2's target 'weights' has shape \(1,\).*3 boxes"),
            (lambda t: t.update(weights=0.5), r"sample 2's target 'weights' must be a tensor"),
            (
                lambda t: t.update(iscrowd=t["iscrowd"].int()),
                r"sample 2's per-box field 'iscrowd' is torch.int32.*sample 0's is torch.int64",
            ),
        ],
    )
    def test_a_malformed_target_names_the_sample_and_the_field(self, change, message):
        samples = detection_samples(counts=[3] * 4, masks=True)
        change(samples[2][1])
        with pytest.raises(ValueError, match=message):
            MixupCollate(box_targets=True, device="cpu")(samples)

    @pytest.mark.parametrize("name", ["area", "iscrowd", "keypoints", "masks"])
    def test_torchvisions_per_box_keys_of_another_length_are_refused_in_every_sample(self, name):
        # A crop that drops boxes but keeps these (the detection reference's lsj crop keeps area and iscrowd) makes
        # every sample's field stale: by name they are per-box, never per-image, so the collate says so.
        samples = detection_samples(counts=[2] * 4)
        for _, target in samples:
            target[name] = {"masks": torch.zeros(3, H, W), "keypoints": torch.zeros(3, 17, 3)}.get(name, torch.zeros(3))
        with pytest.raises(ValueError, match=rf"sample 0's target {name!r} has shape \(3,.*2 boxes.*box_target_keys"):
            MixupCollate(box_targets=True, device="cpu")(samples)

    def test_box_target_keys_keeps_only_the_keys_named(self):
        samples = detection_samples(counts=[2, 0, 3, 1])
        for _, target in samples:
            target["area"] = torch.zeros(len(target["boxes"]) + 1)  # stale after a crop that dropped a box
        collate = MixupCollate(box_targets=True, box_target_keys=("boxes", "labels", "image_id"), device="cpu", seed=1)
        batch = finished(collate, samples)
        assert all(set(t) == {"boxes", "labels", "weights", "image_id"} for t in batch.targets)
        assert [t["image_id"] for t in batch.targets] == [0, 1, 2, 3]

    def test_images_of_different_sizes_name_the_sample_both_sizes_and_the_fix(self):
        samples = detection_samples(counts=[1] * 4)
        samples[3] = (torch.zeros(3, H + 2, W, dtype=torch.uint8), samples[3][1])
        with pytest.raises(
            ValueError,
            match=rf"sample 3's image is \({H + 2}, {W}\) but sample 0's is \({H}, {W}\).*one image size per batch",
        ):
            MixupCollate(box_targets=True, device="cpu")(samples)

    @pytest.mark.parametrize(
        "other, named",
        [
            ({"soft_targets": True, "num_classes": 3}, "soft_targets=True"),
            ({"dense_targets": True}, "dense_targets=True"),
            ({"stack_x": True}, "stack_x=True"),
            ({"stack_y": False}, "stack_y=False"),
        ],  # fmt: skip
    )
    def test_box_targets_with_another_target_form_is_refused_naming_both(self, other, named):
        with pytest.raises(ValueError, match=f"box_targets=True.*{named}"):
            MixupCollate(box_targets=True, **other)

    @pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "0.2"])
    def test_box_min_visibility_is_a_probability(self, value):
        with pytest.raises(ValueError, match=r"box_min_visibility must be a number in \[0, 1\]"):
            MixupCollate(box_targets=True, box_min_visibility=value)


class Shapes(Dataset):
    """Module level, so that spawned workers can import it."""

    def __init__(self):
        self.samples = detection_samples(b=12, masks=True, seed=7)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def loader_batches(workers, context=None):
    collate = MixupCollate(alpha=0.8, cutmix_alpha=1.0, box_targets=True, device="cpu", seed=3)
    loader = DataLoader(
        Shapes(), batch_size=4, num_workers=workers, collate_fn=collate, multiprocessing_context=context
    )
    return [batch.finish() for batch in loader]


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_give_the_batches_the_main_process_makes(context):
    want, got = loader_batches(0), loader_batches(2, context)
    for a, b in zip(want, got, strict=True):
        assert torch.equal(a.x, b.x) and torch.equal(a.perm, b.perm)
        for s, t in zip(a.targets, b.targets):
            assert s.keys() == t.keys()
            for key in s:
                assert torch.equal(s[key], t[key]) if isinstance(s[key], torch.Tensor) else s[key] == t[key], key


def test_numpy_targets_are_taken():
    samples = [(img.numpy(), {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in t.items()})
               for img, t in detection_samples(counts=[2] * 4)]  # fmt: skip
    batch = finished(MixupCollate(alpha=0.4, box_targets=True, device="cpu", seed=0), samples)
    same = finished(MixupCollate(alpha=0.4, box_targets=True, device="cpu", seed=0), detection_samples(counts=[2] * 4))
    for got, want in zip(batch.targets, same.targets):
        assert torch.equal(got["boxes"], want["boxes"]) and torch.equal(got["labels"], want["labels"])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "kwargs", [{"alpha": 0.8, "cutmix_alpha": 1.0, "prob": 0.8}, {"alpha": 0, "cutmix_alpha": 1.0}]
)
def test_on_cuda_the_batch_is_the_cpus(kwargs):
    samples = detection_samples(masks=True, seed=4)
    on_cpu = finished(MixupCollate(box_targets=True, device="cpu", seed=0, **kwargs), samples)
    on_gpu = finished(MixupCollate(box_targets=True, device="cuda", seed=0, **kwargs), samples)
    assert on_gpu.x.device.type == "cuda"
    torch.testing.assert_close(on_gpu.x.cpu(), on_cpu.x, rtol=1e-6, atol=1e-6)
    for got, want in zip(on_gpu.targets, on_cpu.targets):
        assert got["boxes"].device.type == "cuda" and got["masks"].device.type == "cuda"
        for key in ("boxes", "labels", "weights", "masks", "iscrowd"):
            assert torch.equal(got[key].cpu(), want[key]), key
