"""Settings: every knob is validated where it is set, at construction and at assignment, naming the argument."""

import copy
import pickle

import numpy as np
import pytest
import torch
from support import detection_samples, finished, image_samples

from mixup_collate import MixupCollate
from mixup_collate.settings import KNOBS, Settings

# (knob, a value it refuses, the message naming it): one bad value of each kind per knob.
BAD_VALUES = [
    ("alpha", -0.5, "alpha must be a finite number"),
    ("alpha", "0.4", "alpha must be a finite number"),
    ("cutmix_alpha", float("nan"), "cutmix_alpha must be a finite number"),
    ("cutmix_minmax", 0.5, r"cutmix_minmax must be \(lo, hi\)"),
    ("cutmix_minmax", (0.1, 0.2, 0.3), r"cutmix_minmax must be \(lo, hi\)"),
    ("switch_prob", 1.5, r"switch_prob must be a number in \[0, 1\]"),
    ("prob", 2, r"prob must be a number in \[0, 1\]"),
    ("prob", None, r"prob must be a number in \[0, 1\]"),
    ("soft_targets", "no", "soft_targets must be True or False"),
    ("dense_targets", 1, "dense_targets must be True or False"),
    ("box_targets", "yes", "box_targets must be True or False"),
    ("box_min_visibility", 1.2, r"box_min_visibility must be a number in \[0, 1\]"),
    ("cutmix_dims", (-1, -2), r"cutmix_dims must be a tuple of one or more negative sample dimensions.*increasing"),
    ("channel_dim", 1, r"channel_dim must be None .* or a negative dimension"),
    ("channel_dim", 0, r"channel_dim must be None .* or a negative dimension"),
    ("box_target_keys", ("boxes", "masks"), "box_target_keys must include 'boxes' and 'labels'.*no 'labels'"),
    ("correct_lam", None, "correct_lam must be True or False"),
    ("num_classes", 2.5, "num_classes must be a positive int"),
    ("label_smoothing", 1.5, r"label_smoothing must be a number in \[0, 1\]"),
    ("label_smoothing", float("nan"), r"label_smoothing must be a number in \[0, 1\]"),
    ("prob", float("nan"), r"prob must be a number in \[0, 1\]"),
    ("switch_prob", float("nan"), r"switch_prob must be a number in \[0, 1\]"),
    ("std", 0, "std values must be > 0"),
    ("std", [0.2, -0.1, 0.3], "std values must be > 0"),
    ("input_key", None, "input_key must be a dict key"),
    ("off_epoch", -1, "off_epoch must be a non-negative int"),
    ("enabled", "no", "enabled must be True or False"),
    ("per_sample", None, "per_sample must be True or False"),
    ("fold", 1, "fold must be True or False"),
    ("cycle", "yes", "cycle must be True or False"),
    ("stack_x", None, "stack_x must be True or False"),
    ("stack_y", 0, "stack_y must be True or False"),
    ("dtype", "float16x", "dtype must be a floating dtype"),
    ("dtype", torch.int64, "dtype must be a floating dtype"),
    ("dtype", torch.float8_e4m3fn, "dtype must be a floating dtype"),
    ("mean", [float("inf")], "mean must be a finite number"),
    ("std", "abc", "std must be a finite number"),
    ("channels_last", "no", "channels_last must be True or False"),
    ("input_key", ["image"], "input_key must be a dict key"),
    ("target_key", {}, "target_key must be a dict key"),
    ("extras", "path", "extras must be True, False or a list of the fields to keep"),
    ("extras", None, "extras must be True, False or a list of the fields to keep"),
    ("box_fields", "track", "box_fields must be a list of a detection target's keys"),
    ("extras_to_device", None, "extras_to_device must be True or False"),
]


class TestEveryKnobIsValidatedWhereItIsSet:
    def test_the_table_covers_every_knob(self):
        assert {knob for knob, _, _ in BAD_VALUES} == set(KNOBS)

    @pytest.mark.parametrize("knob, value, message", BAD_VALUES)
    def test_at_construction(self, knob, value, message):
        with pytest.raises(ValueError, match=message):
            MixupCollate(device="cpu", **{knob: value})

    @pytest.mark.parametrize("knob, value, message", BAD_VALUES)
    def test_at_assignment_and_the_old_value_stays(self, knob, value, message):
        collate = MixupCollate(device="cpu")
        before = getattr(collate, knob)
        with pytest.raises(ValueError, match=message):
            setattr(collate, knob, value)
        assert getattr(collate, knob) == before

    def test_values_are_normalised(self):
        collate = MixupCollate(np.float32(0.5), prob=np.float64(1.0), num_classes=np.int64(3), device="cpu")
        collate.dtype = "torch.bfloat16"
        collate.mean, collate.std = torch.tensor([0.5, 0.25, 0.125], dtype=torch.float64), np.float64(0.2)
        collate.cutmix_minmax = [0.2, 0.5]
        assert type(collate.alpha) is float and type(collate.prob) is float and type(collate.num_classes) is int
        assert collate.dtype is torch.bfloat16 and collate.mean == (0.5, 0.25, 0.125) and collate.std == (0.2,)
        assert collate.cutmix_minmax == (0.2, 0.5)

    @pytest.mark.parametrize("dtype", ["float16", torch.float16])
    def test_an_assigned_dtype_applies_from_the_next_batch(self, dtype):
        samples, _ = image_samples(4)
        collate = MixupCollate(device="cpu", seed=0)
        assert finished(collate, samples).x.dtype == torch.float32
        collate.dtype = dtype
        assert finished(collate, samples).x.dtype == torch.float16


class TestCombinationsAreCheckedTogether:
    def test_a_combination_that_cannot_work_is_refused_at_construction(self):
        with pytest.raises(ValueError, match="alpha=0 turns Mixup off"):
            MixupCollate(alpha=0)

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"cutmix_minmax": (0.2, 0.5)}, "correct_lam=False.*with cutmix_minmax no lam is drawn"),
            ({"cutmix_alpha": 1.0, "dense_targets": True}, "correct_lam=False.*dense_targets=True lam is per pixel"),
        ],
    )
    def test_correct_lam_false_needs_a_drawn_lam(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            MixupCollate(correct_lam=False, **kwargs)

    def test_box_target_keys_needs_box_targets(self):
        with pytest.raises(ValueError, match="box_target_keys .* needs box_targets=True"):
            MixupCollate(box_target_keys=("boxes", "labels"))

    def test_an_evaluation_collate_needs_no_mixing_settings(self):
        samples, xs = image_samples(4)
        collate = MixupCollate(alpha=0, enabled=False, device="cpu")
        assert torch.equal(finished(collate, samples).x, xs)
        collate.enabled = True
        with pytest.raises(ValueError, match="alpha=0 turns Mixup off"):
            finished(collate, samples)

    def test_single_assignments_may_pass_through_an_odd_combination_in_either_order(self):
        samples, _ = image_samples(4, shape=(3, 8, 8))
        for order in (("alpha", "cutmix_alpha"), ("cutmix_alpha", "alpha")):
            collate = MixupCollate(device="cpu", seed=0)
            for name in order:
                setattr(collate, name, {"alpha": 0, "cutmix_alpha": 1.0}[name])
            assert finished(collate, samples).x.shape == (4, 3, 8, 8)

    def test_an_odd_combination_left_in_place_is_named_at_the_next_batch(self):
        collate = MixupCollate(device="cpu")
        collate.alpha = 0
        with pytest.raises(ValueError, match="alpha=0 turns Mixup off.*collate.update"):
            finished(collate, image_samples(3)[0])

    def test_update_changes_several_knobs_at_once_all_or_nothing(self):
        collate = MixupCollate(device="cpu")
        collate.update(alpha=0, cutmix_alpha=1.0)
        assert collate.alpha == 0 and collate.cutmix_alpha == 1.0
        with pytest.raises(ValueError, match="alpha=0 turns Mixup off"):
            collate.update(cutmix_alpha=0)
        with pytest.raises(ValueError, match="prob must be"):
            collate.update(alpha=0.3, prob=3)
        with pytest.raises(TypeError, match="unknown setting 'alhpa'; did you mean 'alpha'"):
            collate.update(alhpa=0.3)
        assert collate.alpha == 0 and collate.cutmix_alpha == 1.0 and collate.prob == 1.0


class TestTheFoldBound:
    """With ``fold=True`` a CutMix box covers at most half a sample: ``hi ** k <= 0.5``, the bound included."""

    @pytest.mark.parametrize("dims", [(-1,), (-2, -1), (-3, -2, -1)])
    def test_the_exact_boundary_value_is_accepted_and_anything_above_refused(self, dims):
        k = len(dims)
        bound = 0.5 ** (1 / k)
        collate = MixupCollate(alpha=0, cutmix_minmax=(0.1, bound), cutmix_dims=dims, device="cpu")
        assert collate.cutmix_minmax == (0.1, bound)
        with pytest.raises(ValueError, match=r"fold=True keeps at least half"):
            MixupCollate(alpha=0, cutmix_minmax=(0.1, bound + 1e-6), cutmix_dims=dims)


class TestSettingsTravelWithTheCollate:
    def test_repr_shows_the_settings(self):
        collate = MixupCollate(0.3, cutmix_alpha=1.0, device="cpu", seed=9)
        collate.prob = 0.5
        for name, value in collate.settings.items().items():
            assert f"{name}={value!r}" in repr(collate)

    @pytest.mark.parametrize("make_copy", [copy.copy, copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))])
    def test_copies_carry_equal_but_separate_settings(self, make_copy):
        collate = MixupCollate(0.3, dtype="float16", mean=0.5, std=0.25, device="cpu")
        twin = make_copy(collate)
        assert twin.settings == collate.settings and twin.settings is not collate.settings
        twin.alpha = 1.0
        assert collate.alpha == 0.3

    def test_a_pickled_settings_value_is_validated_again(self):
        settings = Settings(alpha=0.3)
        state = settings.__getstate__() | {"prob": 7}
        with pytest.raises(ValueError, match="prob must be"):
            Settings.__new__(Settings).__setstate__(state)


class TestTheDeviceIsCheckedWhereItIsGiven:
    @pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
    @pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda", 0)])
    def test_a_gpu_this_machine_lacks_is_named(self, device):
        with pytest.raises(ValueError, match=r"device='cuda(:0)?', but this process sees 0 CUDA device"):
            MixupCollate(device=device)

    def test_a_name_that_is_no_device_is_named(self):
        with pytest.raises(ValueError, match="device must be a torch.device.*device='gpu'"):
            MixupCollate(device="gpu")


class TestStructureIsFixedFromTheFirstBatch:
    def test_structural_settings_refuse_a_change_after_the_first_batch(self):
        collate = MixupCollate(device="cpu", num_classes=10)
        collate.soft_targets = True  # before the first batch: any change
        collate.soft_targets = False
        pending = collate(image_samples(4)[0])
        for name, value in [("soft_targets", True), ("dense_targets", True), ("input_key", "x"), ("target_key", "y")]:
            with pytest.raises(ValueError, match=f"{name} cannot change after the collate's first batch"):
                setattr(collate, name, value)
        collate.target_key = "label"  # the same value is no change
        assert len(pending) == 4 and len(tuple(pending)) == 4, "len() and unpacking agree"

    def test_mixing_settings_still_change_between_epochs(self):
        collate = MixupCollate(device="cpu", seed=0)
        collate(image_samples(4)[0]).finish()
        collate.alpha, collate.prob, collate.dtype, collate.enabled = 0.8, 0.5, "bfloat16", False
        assert collate(image_samples(4)[0]).finish().x.dtype == torch.bfloat16

    @pytest.mark.parametrize(
        "name, value", [("box_target_keys", ("boxes", "labels")), ("extras", ["path"]), ("box_fields", ["track"])]
    )
    def test_detection_keys_and_extras_are_structural_too(self, name, value):
        collate = MixupCollate(device="cpu", box_targets=name != "extras")
        samples = [{"image": x, "label": y, "path": str(i)} for i, (x, y) in enumerate(image_samples(4)[0])]
        if name != "extras":
            samples = detection_samples(counts=[1] * 4)
        collate(samples)
        with pytest.raises(ValueError, match=f"{name} cannot change after the collate's first batch"):
            setattr(collate, name, value)

    def test_detection_keys_in_another_order_are_no_change(self):
        collate = MixupCollate(device="cpu", box_targets=True, box_target_keys=["labels", "boxes", "image_id"])
        collate(detection_samples(counts=[1] * 4))
        collate.update(box_target_keys=("boxes", "image_id", "labels"))
        collate.box_target_keys = ["image_id", "labels", "boxes"]

    @pytest.mark.parametrize(
        "kwargs, change, fix",
        [
            ({"alpha": 0, "cutmix_alpha": 1.0, "cutmix_dims": (-4, -2, -1)}, {}, {"cutmix_dims": (-2, -1)}),
            ({"dense_targets": True}, {"box_targets": True}, {"box_targets": False}),
            ({"dense_targets": True}, {"soft_targets": True}, {"soft_targets": False}),
        ],
    )
    def test_a_refused_first_batch_fixes_nothing_so_the_fix_its_error_names_works(self, kwargs, change, fix):
        samples = [(torch.rand(3, 8, 8), torch.rand(8, 8) if kwargs.get("dense_targets") else i) for i in range(4)]
        collate = MixupCollate(device="cpu", seed=0, **kwargs)
        for name, value in change.items():
            setattr(collate, name, value)  # single assignments: the combination is checked at the next batch
        for _ in range(2):  # the refusal repeats: nothing was fixed by the first
            with pytest.raises(ValueError):
                finished(collate, samples)
        collate.update(**fix)
        assert finished(collate, samples).x.shape == (4, 3, 8, 8)

    def test_a_copy_of_a_used_collate_may_be_set_up_anew(self):
        collate = MixupCollate(device="cpu", num_classes=10)
        collate(image_samples(4)[0])
        evaluation = copy.deepcopy(collate)
        evaluation.soft_targets = True
        assert len(evaluation(image_samples(4)[0])) == 2


class TestUpdate:
    """``collate.update(...)`` changes several settings atomically, before and after the first batch."""

    def test_after_the_first_batch_it_changes_the_next_batches(self):
        samples, xs = image_samples(8, shape=(3, 16, 16))
        collate = MixupCollate(alpha=0.4, device="cpu", seed=0)
        finished(collate, samples)
        collate.update(alpha=0, cutmix_alpha=1.0)
        assert (collate.alpha, collate.cutmix_alpha) == (0.0, 1.0)
        batch = finished(collate, samples)
        own, partner = batch.x == xs, batch.x == xs[batch.perm]
        assert bool((own | partner).all()), "CutMix now: every pixel is copied, none blended"
        assert bool((~own).any()), "and boxes were pasted"

    def test_after_the_first_batch_a_structural_change_is_refused_by_name_and_nothing_changes(self):
        samples, _ = image_samples(8)
        collate = MixupCollate(alpha=0.4, device="cpu", seed=0)
        finished(collate, samples)
        with pytest.raises(ValueError, match="soft_targets cannot change after the collate's first batch"):
            collate.update(alpha=0.8, soft_targets=True, num_classes=10)
        assert collate.alpha == 0.4 and collate.soft_targets is False


class TestMisspeltSettings:
    """A name that is not a setting is refused at assignment, naming the closest one (timm's names too)."""

    @pytest.mark.parametrize(
        "name, closest",
        [("swtich_prob", "switch_prob"), ("mixup_alpha", "alpha"), ("cutmix_prob", "prob"), ("mix_prob", "prob")],
    )
    def test_assignment_names_the_closest_setting(self, name, closest):
        collate = MixupCollate(device="cpu")
        with pytest.raises(AttributeError, match=f"unknown setting '{name}'; did you mean '{closest}'"):
            setattr(collate, name, 0.2)
        assert not hasattr(collate, name)

    @pytest.mark.parametrize(
        "name, closest", [("cutmix_alfa", "cutmix_alpha"), ("mixup_alpha", "alpha"), ("devcie", "device")]
    )
    def test_the_constructor_names_the_closest_setting(self, name, closest):
        with pytest.raises(TypeError, match=f"unknown setting '{name}'; did you mean '{closest}'"):
            MixupCollate(**{name: 1.0})

    def test_the_collates_own_attributes_are_still_assigned(self):
        collate = MixupCollate(device="cpu")
        collate.mixup_enabled = False
        collate.alpha = 0.8
        assert (collate.enabled, collate.alpha) == (False, 0.8)


class TestLabelSmoothingMeansTheSameEverywhere:
    """The collate and the loss take label smoothing in [0, 1] and refuse the rest with the same errors."""

    @pytest.mark.parametrize("value, error", [(1.5, ValueError), (-0.1, ValueError), ("0.1", TypeError)])
    def test_refused_alike(self, value, error):
        from mixup_collate import mixup_cross_entropy

        with pytest.raises(error, match=r"label_smoothing must be a number in \[0, 1\]"):
            MixupCollate(soft_targets=True, num_classes=3, label_smoothing=value)
        with pytest.raises(error, match=r"label_smoothing must be a number in \[0, 1\]"):
            mixup_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), label_smoothing=value)

    def test_one_is_accepted_by_both(self):
        from mixup_collate import mixup_cross_entropy

        assert MixupCollate(soft_targets=True, num_classes=3, label_smoothing=1.0).label_smoothing == 1.0
        assert bool(mixup_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), label_smoothing=1.0).isfinite())
