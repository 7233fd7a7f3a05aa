"""mixup_cross_entropy and MixupLoss compute exactly what the wrapped criterion computes.

The mixed form is checked against independent float64 oracles (tests/oracles.py: cross-entropy against the
lam-mixed, smoothed one-hot targets, built without any gather, with lam per sample or per pixel); with
``lam = 1``, in the plain form, and for a batch cut by CutMix only it must equal the criterion itself, to
1e-6 in float64. One class per contract: ``pytest -k TestDensePerPixel`` selects one.
"""

import collections
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from oracles import mix_reference, mixed_cross_entropy_reference, soft_target_cross_entropy
from support import CUDA
from torch import nn
from torch.overrides import TorchFunctionMode

from mixup_collate import MixupLoss, mixup_cross_entropy

SHAPES = {"(B,C)": (6, 5), "(B,C,H,W)": (3, 5, 4, 3)}
CLASS_WEIGHT = torch.tensor([0.5, 2.0, 1.0, 3.0, 0.25], dtype=torch.float64)
REDUCTIONS = ["mean", "sum", "none"]


def close(got, expected, atol=1e-6):
    torch.testing.assert_close(got, expected, rtol=0, atol=atol, equal_nan=True, check_dtype=False)


def labelled_batch(shape, ignore_index=-100, seed=0, ignored=True):
    """float64 logits and two label maps in which (if ``ignored``) some positions carry ``ignore_index``."""
    g = torch.Generator().manual_seed(seed)
    b, c, *spatial = shape
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    y_a, y_b = (torch.randint(0, c, (b, *spatial), generator=g) for _ in range(2))
    if ignored:
        y_a.view(-1)[::3] = ignore_index
        y_b.view(-1)[1::4] = ignore_index
    lam = torch.rand(b, generator=g, dtype=torch.float64)
    return logits, y_a, y_b, lam


def cut_lam(b, h, w, seed=0):
    """A per-pixel lam as CutMix makes it: 1 outside one box per sample, 0 inside (float64 ``(B, H, W)``)."""
    g = torch.Generator().manual_seed(seed)
    lam = torch.ones(b, h, w, dtype=torch.float64)
    for i in range(b):
        top, left = (int(torch.randint(0, n - 1, (), generator=g)) for n in (h, w))
        lam[i, top : top + 2 + i % 2, left : left + 2] = 0
    return lam


@st.composite
def mixed_batches(draw, per_pixel):
    """Class-index batches of any size, with ignored labels, class weights, and lam per sample or per pixel."""
    b, c = draw(st.integers(1, 8)), draw(st.integers(1, 12))
    spatial = draw(st.sampled_from([(), (3,), (2, 3)]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    logits = torch.randn(b, c, *spatial, generator=g, dtype=torch.float64) * scale
    ignore_index = draw(st.sampled_from([-100, 0, 255]))
    dropped = draw(st.sampled_from([0.0, 0.3, 1.0]))

    def labels():
        y = torch.randint(0, c, (b, *spatial), generator=g)
        return torch.where(torch.rand(y.shape, generator=g) < dropped, ignore_index, y)

    weight = torch.rand(c, generator=g, dtype=torch.float64) + 0.1 if draw(st.booleans()) else None
    lam = torch.rand(b, *(spatial if per_pixel else ()), generator=g, dtype=torch.float64)
    if per_pixel and draw(st.booleans()):
        lam = (lam < 0.5).double()  # a CutMix-like 0/1 map
    return logits, labels(), labels(), lam, weight, ignore_index


class _Count(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", ""))
        return func(*args, **(kwargs or {}))


class TestFormula:
    """The mixed loss equals the criterion's own per-element loss, weighted by lam, reduced as it reduces."""

    @pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
    @pytest.mark.parametrize("weighted", [False, True], ids=["no-weight", "weight"])
    @pytest.mark.parametrize("ignore_index", [-100, 0, 255])
    @pytest.mark.parametrize("smoothing", [0.0, 0.1])
    @pytest.mark.parametrize("reduction", REDUCTIONS)
    def test_equals_cross_entropy_in_every_configuration(self, shape, weighted, ignore_index, smoothing, reduction):
        logits, y_a, y_b, lam = labelled_batch(shape, ignore_index)
        weight = CLASS_WEIGHT if weighted else None
        kw = {"weight": weight, "ignore_index": ignore_index, "label_smoothing": smoothing, "reduction": reduction}
        criterion = nn.CrossEntropyLoss(**kw)
        expected = criterion(logits, y_a)
        loss = MixupLoss(criterion)
        close(loss(logits, y_a), expected)
        close(loss(logits, y_a, y_b, torch.ones_like(lam)), expected)
        close(mixup_cross_entropy(logits, y_a, **kw), F.cross_entropy(logits, y_a, **kw))
        close(mixup_cross_entropy(logits, y_a, y_b, 1.0, **kw), expected)
        oracle = mixed_cross_entropy_reference(logits, y_a, y_b, lam, **kw)
        close(loss(logits, y_a, y_b, lam), oracle)
        close(mixup_cross_entropy(logits, y_a, y_b, lam, **kw), oracle)

    @pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
    @pytest.mark.parametrize("weighted", [False, True], ids=["no-weight", "weight"])
    @pytest.mark.parametrize("ignore_index", [-100, 0, 255])
    @pytest.mark.parametrize("reduction", REDUCTIONS)
    def test_equals_nll_loss_in_every_configuration(self, shape, weighted, ignore_index, reduction):
        logits, y_a, y_b, lam = labelled_batch(shape, ignore_index)
        logp = torch.log_softmax(logits, dim=1)
        kw = {"weight": CLASS_WEIGHT if weighted else None, "ignore_index": ignore_index, "reduction": reduction}
        criterion = nn.NLLLoss(**kw)
        loss = MixupLoss(criterion)
        close(loss(logp, y_a), criterion(logp, y_a))
        close(loss(logp, y_a, y_b, torch.ones_like(lam)), criterion(logp, y_a))
        close(loss(logp, y_a, y_b, lam), mixed_cross_entropy_reference(logp, y_a, y_b, lam, log_probs=True, **kw))

    @given(
        batch=mixed_batches(per_pixel=False),
        smoothing=st.sampled_from([0.0, 0.1, 0.3, 1.0]),
        reduction=st.sampled_from(REDUCTIONS),
    )
    def test_mixed_form_equals_the_float64_oracle(self, batch, smoothing, reduction):
        logits, y_a, y_b, lam, weight, ignore_index = batch
        kw = {"weight": weight, "ignore_index": ignore_index, "label_smoothing": smoothing, "reduction": reduction}
        expected = mixed_cross_entropy_reference(logits, y_a, y_b, lam, **kw)
        close(mixup_cross_entropy(logits, y_a, y_b, lam, **kw), expected)
        close(MixupLoss(nn.CrossEntropyLoss(**kw))(logits, y_a, y_b, lam), expected)

    def test_same_class_pairs_keep_the_loss_of_their_class(self):
        logits, y = torch.randn(4, 6, dtype=torch.float64), torch.tensor([2, 2, 5, 5])
        partner = torch.tensor([1, 0, 3, 2])
        lam = torch.tensor([0.6, 0.8, 0.5, 0.99], dtype=torch.float64)
        expected = F.cross_entropy(logits, y, reduction="none", label_smoothing=0.1)
        close(mixup_cross_entropy(logits, y, y[partner], lam, 0.1, reduction="none"), expected)
        one_hot = F.one_hot(y, 6).double()
        loss = MixupLoss(nn.CrossEntropyLoss(label_smoothing=0.1), reduction="none")
        close(loss(logits, one_hot, one_hot[partner], lam), expected)

    @pytest.mark.parametrize("smoothing", [0.0, 0.1])
    @pytest.mark.parametrize("per_pixel", [False, True], ids=["lam-(B,)", "lam-(B,H,W)"])
    def test_one_log_softmax_and_one_gather_for_both_targets(self, smoothing, per_pixel):
        logits, y_a, y_b, lam = labelled_batch((3, 5, 4, 3), ignore_index=255)
        lam = cut_lam(3, 4, 3) if per_pixel else lam
        with _Count() as count:
            mixup_cross_entropy(logits, y_a, y_b, lam, smoothing, weight=CLASS_WEIGHT, ignore_index=255)
        assert count.names.count("log_softmax") == 1
        assert count.names.count("gather") == 1


Targets = collections.namedtuple("Targets", "y_a y_b lam")


class TestTargetForms:
    """The target is y alone, y_a, y_b, lam, or one (y_a, y_b, lam) triple; anything else is a TypeError."""

    @pytest.mark.parametrize("pack", [tuple, list, lambda t: Targets(*t)], ids=["tuple", "list", "namedtuple"])
    def test_the_target_can_be_one_y_a_y_b_lam_triple(self, pack):
        logits, y_a, y_b, lam = labelled_batch((6, 5))
        expected = mixup_cross_entropy(logits, y_a, y_b, lam)
        close(mixup_cross_entropy(logits, pack((y_a, y_b, lam))), expected)
        close(MixupLoss()(logits, pack((y_a, y_b, lam))), expected)
        out, t_a, t_b = torch.randn(3, 6, 2, dtype=torch.float64)
        close(MixupLoss(nn.MSELoss())(out, pack((t_a, t_b, lam))), F.mse_loss(out, torch.lerp(t_b, t_a, lam[:, None])))

    @pytest.mark.parametrize(
        ("target", "message"),
        [
            ([torch.tensor([0, 1])], "list must hold 3 items"),
            ((torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.ones(2)), r"pass batch\[1:\]"),
            ({"y": torch.tensor([0, 1])}, "got dict"),
            (3, "got int"),
        ],
        ids=["list-of-one", "whole-batch", "dict", "int"],
    )
    def test_a_target_that_is_neither_a_tensor_nor_a_triple_is_a_type_error(self, target, message):
        logits = torch.randn(2, 3)
        with pytest.raises(TypeError, match=message):
            mixup_cross_entropy(logits, target)
        with pytest.raises(TypeError, match=message):
            MixupLoss()(logits, target)

    def test_a_triple_and_separate_y_b_lam_together_are_refused(self):
        y = torch.tensor([0, 1])
        with pytest.raises(TypeError, match="not both"):
            mixup_cross_entropy(torch.randn(2, 3), (y, y, 1.0), y, 1.0)


class TestArguments:
    """Bad arguments get clear errors naming the argument; what F.cross_entropy accepts is accepted."""

    @pytest.mark.parametrize(
        ("call", "error", "message"),
        [
            (lambda x, y: mixup_cross_entropy(x, y, reduction="avg"), ValueError, "reduction must be one of"),
            (lambda x, y: mixup_cross_entropy(x, y, reduction=None), ValueError, "reduction must be one of"),
            (lambda x, y: MixupLoss(reduction="batchmean"), ValueError, "reduction must be one of"),
            (
                lambda x, y: mixup_cross_entropy(x, y, label_smoothing=1.5),
                ValueError,
                r"label_smoothing must be a number in \[0, 1\]",
            ),
            (lambda x, y: mixup_cross_entropy(x, y, label_smoothing="0.1"), TypeError, "label_smoothing must be a"),
            (lambda x, y: mixup_cross_entropy(x, y, label_smoothing=None), TypeError, "label_smoothing must be a"),
            (lambda x, y: mixup_cross_entropy(x, y, label_smoothing=True), TypeError, "label_smoothing must be a"),
            (
                lambda x, y: MixupLoss(nn.CrossEntropyLoss(label_smoothing="0.1")),
                TypeError,
                "label_smoothing must be a",
            ),
            (
                lambda x, y: mixup_cross_entropy(x, y, weight=torch.ones(4)),
                ValueError,
                r"weight must be a floating \(3,\)",
            ),
            (
                lambda x, y: mixup_cross_entropy(x, y, weight=torch.ones(3, dtype=torch.long)),
                ValueError,
                "weight must be",
            ),
            (lambda x, y: mixup_cross_entropy(x, y, ignore_index=1.0), TypeError, "ignore_index must be an int"),
            (lambda x, y: mixup_cross_entropy(x, y, ignore_index="1"), TypeError, "ignore_index must be an int"),
            (lambda x, y: MixupLoss(nn.NLLLoss(ignore_index=None)), TypeError, "ignore_index must be an int"),
            (lambda x, y: mixup_cross_entropy(x[0], y), ValueError, r"logits must be a floating \(B, C\)"),
            (
                lambda x, y: mixup_cross_entropy(x, y[:3]),
                ValueError,
                r"have shape \(3,\); logits \(4, 3\) need \(4,\)",
            ),
            (lambda x, y: mixup_cross_entropy(x, y == 1), ValueError, "integer class indices, got torch.bool"),
            (lambda x, y: mixup_cross_entropy(x, y, y), ValueError, "y_b and lam together"),
            (lambda x, y: mixup_cross_entropy(x, y, y[:2], 0.5), ValueError, "y_b has"),
            (lambda x, y: mixup_cross_entropy(x, y, x[:, 0], 0.5), ValueError, "both class indices or both float"),
            (lambda x, y: mixup_cross_entropy(x, x[:, :2]), ValueError, "must match logits"),
            (lambda x, y: mixup_cross_entropy(x, x.to("meta")), ValueError, "float targets are on meta"),
            (lambda x, y: mixup_cross_entropy(x, y, y, "0.5"), TypeError, "lam must be"),
            (lambda x, y: mixup_cross_entropy(x, y, y, torch.ones(4, dtype=torch.cfloat)), TypeError, "lam must be"),
            (lambda x, y: MixupLoss(3), TypeError, "criterion must be"),
        ],
    )
    def test_bad_arguments_get_clear_errors(self, call, error, message):
        with pytest.raises(error, match=message):
            call(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))

    @pytest.mark.parametrize("bad", [torch.ones(3), torch.ones(4, 1), torch.ones(2, 2)])
    def test_lam_of_the_wrong_shape_is_refused(self, bad):
        logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
        with pytest.raises(
            ValueError, match=rf"lam has shape {tuple(bad.shape)}".replace("(", r"\(").replace(")", r"\)")
        ):
            mixup_cross_entropy(logits, y, y, bad)
        t = y.float()[:, None].expand(4, 3)
        with pytest.raises(ValueError, match="lam has shape"):
            MixupLoss(nn.MSELoss())(logits, t, t, bad)

    def test_numpy_numbers_are_accepted_as_f_cross_entropy_accepts_them(self):
        logits, y_a, y_b, lam = labelled_batch((6, 5), ignore_index=1)
        kw = {"ignore_index": np.int64(1), "label_smoothing": np.float32(0.25)}
        expected = F.cross_entropy(logits, y_a, **kw)
        close(mixup_cross_entropy(logits, y_a, **kw), expected)
        close(mixup_cross_entropy(logits, y_a, y_b, np.float64(1.0), **kw), expected)
        close(
            MixupLoss(nn.CrossEntropyLoss(**kw))(logits, y_a, y_b, lam),
            mixup_cross_entropy(logits, y_a, y_b, lam, **kw),
        )
        logp = logits.log_softmax(1)
        close(MixupLoss(nn.NLLLoss(ignore_index=np.int64(1)))(logp, y_a), F.nll_loss(logp, y_a, ignore_index=1))


class TestReductions:
    """The reduction is the criterion's own unless given; "mean" is the criterion's kind of mean."""

    @pytest.mark.parametrize("reduction", ["sum", "none"])
    def test_the_criterions_own_reduction_is_respected(self, reduction):
        logits, y_a, y_b, lam = labelled_batch((6, 5))
        criterion = nn.CrossEntropyLoss(reduction=reduction)
        close(MixupLoss(criterion)(logits, y_a, y_b, 1.0), criterion(logits, y_a))
        mse = nn.MSELoss(reduction=reduction)
        out, t = torch.randn(6, 2), torch.randn(6, 2)
        close(MixupLoss(mse)(out, t, t.flip(0), 1.0), mse(out, t))
        expected = mixed_cross_entropy_reference(logits, y_a, y_b, lam, reduction="mean")
        close(MixupLoss(criterion, reduction="mean")(logits, y_a, y_b, lam), expected)
        assert MixupLoss(lambda out, y: F.cross_entropy(out, y, reduction="none")).reduction == "mean"


class TestIgnoreIndexAndWeights:
    """ignore_index and class weights count in the loss and in the mean's denominator as F.cross_entropy counts."""

    def test_ignore_index_and_class_weights_normalise_the_mean_as_the_criterion_does(self):
        """The issue's reproduction: ignore_index was dropped, and a weighted mean divided by B."""
        g = torch.Generator().manual_seed(7)
        logits = torch.randn(8, 4, generator=g, dtype=torch.float64) * 3
        y = torch.tensor([0, 1, 0, 2, 3, 0, 1, 2])
        ignoring = nn.CrossEntropyLoss(ignore_index=0)
        close(MixupLoss(ignoring)(logits, y), ignoring(logits, y))
        close(MixupLoss(ignoring)(logits, y, y.roll(1), 1.0), ignoring(logits, y))
        weighted = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 4.0, 0.5, 2.0], dtype=torch.float64))
        close(MixupLoss(weighted)(logits, y, y.roll(1), 1.0), weighted(logits, y))
        lam = torch.rand(8, generator=g, dtype=torch.float64)
        per_sample = MixupLoss(weighted, reduction="sum")(logits, y, y.roll(1), lam)
        mass = (lam * weighted.weight[y] + (1 - lam) * weighted.weight[y.roll(1)]).sum()
        close(MixupLoss(weighted)(logits, y, y.roll(1), lam), per_sample / mass)

    def test_void_label_255_is_ignored_not_an_index_error(self):
        logits, y_a, y_b, lam = labelled_batch((2, 3, 4, 4), ignore_index=255)
        criterion = nn.CrossEntropyLoss(ignore_index=255)
        close(MixupLoss(criterion)(logits, y_a, y_b, torch.ones(2)), criterion(logits, y_a))
        per_pixel = mixup_cross_entropy(logits, y_a, y_b, lam, ignore_index=255, reduction="none")
        assert per_pixel.shape == (2, 4, 4)
        assert torch.all(per_pixel[(y_a == 255) & (y_b == 255)] == 0)

    def test_ignored_positions_contribute_zero_even_with_minus_inf_logits(self):
        logits = torch.randn(4, 3, dtype=torch.float64)
        logits[:2] = float("-inf")
        logits[:2, 1] = 0.0  # padding rows: only class 1 is possible, and they carry the void label
        y = torch.tensor([255, 255, 0, 2])
        for smoothing in (0.0, 0.2):
            expected = F.cross_entropy(logits, y, ignore_index=255, label_smoothing=smoothing)
            assert torch.isfinite(expected)
            close(mixup_cross_entropy(logits, y, y, 0.7, smoothing, ignore_index=255), expected)

    @pytest.mark.parametrize("bad", [-1, 5, 255])
    def test_a_class_index_out_of_range_is_a_value_error_on_the_cpu(self, bad):
        logits, y = torch.randn(4, 5), torch.tensor([0, 1, bad, 2])
        with pytest.raises(ValueError, match=rf"y_a\[2\] is class index {bad}, outside 0..4"):
            mixup_cross_entropy(logits, y, y.flip(0), torch.rand(4))
        with pytest.raises(ValueError, match=rf"y\[2\] is class index {bad}"):
            MixupLoss()(logits, y)

    def test_class_weights_follow_the_logits_device_and_dtype(self):
        logits, y_a, y_b, lam = labelled_batch((6, 3))
        weight = torch.tensor([1.0, 2.0, 0.5])  # float32, logits float64
        expected = F.cross_entropy(logits, y_a, weight=weight.double())
        close(mixup_cross_entropy(logits, y_a, weight=weight), expected)
        close(MixupLoss(nn.CrossEntropyLoss(weight=weight))(logits, y_a, y_b, 1.0), expected)
        soft = torch.softmax(logits.flip(0), dim=1)
        close(mixup_cross_entropy(logits, soft, weight=weight), F.cross_entropy(logits, soft, weight=weight.double()))
        in_float32 = MixupLoss(nn.CrossEntropyLoss(weight=weight)).double()(logits.half(), y_a, y_b, lam)
        assert in_float32.dtype == torch.float32


class TestFloatTargets:
    """Float (probability) targets are mixed linearly, then F.cross_entropy with its semantics for them."""

    def test_label_smoothing_applies_to_float_targets(self):
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(6, 5, generator=g, dtype=torch.float64)
        y_a, y_b = torch.softmax(torch.randn(2, 6, 5, generator=g, dtype=torch.float64), dim=2)
        lam, weight = torch.rand(6, generator=g, dtype=torch.float64), CLASS_WEIGHT
        mixed = lam[:, None] * y_a + (1 - lam[:, None]) * y_b
        smoothed = soft_target_cross_entropy(logits, mixed * 0.8 + 0.2 / 5, weight).mean()
        assert (soft_target_cross_entropy(logits, mixed, weight).mean() - smoothed).abs() > 1e-2
        close(mixup_cross_entropy(logits, y_a, y_b, lam, 0.2, weight=weight), smoothed)
        close(MixupLoss(nn.CrossEntropyLoss(weight=weight, label_smoothing=0.2))(logits, y_a, y_b, lam), smoothed)

    def test_float_targets_follow_cross_entropy_with_probabilities(self):
        g = torch.Generator().manual_seed(1)
        logits = torch.randn(2, 5, 3, 3, generator=g, dtype=torch.float64)
        y_a, y_b = torch.softmax(torch.randn(2, 2, 5, 3, 3, generator=g, dtype=torch.float64), dim=2)
        lam = torch.tensor([0.3, 0.9], dtype=torch.float64)
        mixed = torch.lerp(y_b, y_a, lam[:, None, None, None])
        for reduction in REDUCTIONS:
            criterion = nn.CrossEntropyLoss(weight=CLASS_WEIGHT, label_smoothing=0.1, reduction=reduction)
            close(MixupLoss(criterion)(logits, y_a, y_b, lam), criterion(logits, mixed))
            close(MixupLoss(criterion)(logits, y_a), criterion(logits, y_a))
        with pytest.raises(ValueError, match="ignore_index=255 applies to class-index targets only"):
            mixup_cross_entropy(logits, y_a, y_b, lam, ignore_index=255)
        with pytest.raises(ValueError, match="ignore_index=0"):
            MixupLoss(nn.CrossEntropyLoss(ignore_index=0))(logits, y_a)


def _plain_mean_cases():
    g = torch.Generator().manual_seed(3)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def signs(*shape):
        return (rand(*shape) < 0.5).double() * 2 - 1

    x = randn(6, 4)
    margins = torch.tensor([[1, 2, -1, 0], [3, -1, 0, 0], [0, 1, 2, 3]] * 2)
    return {
        "L1Loss": (nn.L1Loss(), x, randn(6, 4), randn(6, 4)),
        "MSELoss": (nn.MSELoss(), x, randn(6, 4), randn(6, 4)),
        "SmoothL1Loss": (nn.SmoothL1Loss(beta=0.5), x, randn(6, 4), randn(6, 4)),
        "HuberLoss": (nn.HuberLoss(delta=0.5), x, randn(6, 4), randn(6, 4)),
        "BCELoss": (nn.BCELoss(weight=rand(4)), x.sigmoid(), rand(6, 4), rand(6, 4)),
        "BCEWithLogitsLoss": (nn.BCEWithLogitsLoss(weight=rand(4), pos_weight=3 * rand(4)), x, rand(6, 4), rand(6, 4)),
        "SoftMarginLoss": (nn.SoftMarginLoss(), x, signs(6, 4), signs(6, 4)),
        "MultiLabelSoftMarginLoss": (nn.MultiLabelSoftMarginLoss(weight=rand(4)), x, rand(6, 4), rand(6, 4)),
        "MultiMarginLoss": (
            nn.MultiMarginLoss(p=2, margin=0.7, weight=rand(4)),
            x,
            torch.randint(0, 4, (6,), generator=g),
            torch.randint(0, 4, (6,), generator=g),
        ),
        "MultiLabelMarginLoss": (nn.MultiLabelMarginLoss(), x, margins, margins.roll(1, 0)),
        "HingeEmbeddingLoss": (nn.HingeEmbeddingLoss(), x, signs(6, 4), signs(6, 4)),
        "PoissonNLLLoss": (nn.PoissonNLLLoss(), x, 3 * rand(6, 4), 3 * rand(6, 4)),
        "KLDivLoss-batchmean": (
            nn.KLDivLoss(reduction="batchmean"),
            x.log_softmax(1),
            randn(6, 4).softmax(1),
            randn(6, 4).softmax(1),
        ),
        "KLDivLoss-log_target": (
            nn.KLDivLoss(reduction="sum", log_target=True),
            x.log_softmax(1),
            randn(6, 4).log_softmax(1),
            randn(6, 4).log_softmax(1),
        ),
    }


PLAIN_MEAN = _plain_mean_cases()


class _OwnForward(nn.CrossEntropyLoss):
    def forward(self, input, target):
        return super().forward(input, target) * 2


class _SameForward(nn.CrossEntropyLoss):
    pass


class _ThirdParty(nn.Module):
    def __init__(self):
        super().__init__()
        self.reduction = "mean"

    def forward(self, input, target):
        return F.cross_entropy(input, target, reduction=self.reduction)


class _Tempered(nn.Module):
    """A trainable criterion: per-sample cross-entropy of temperature-scaled logits."""

    def __init__(self):
        super().__init__()
        self.log_t = nn.Parameter(torch.zeros(()))

    def forward(self, logits, y):
        return F.cross_entropy(logits / self.log_t.exp(), y, reduction="none")


class TestMixupLossCriteria:
    """MixupLoss reproduces each criterion it accepts exactly, refuses the others, and never changes the caller's."""

    @pytest.mark.parametrize("name", PLAIN_MEAN.keys())
    def test_losses_with_a_plain_mean_equal_the_criterion(self, name):
        criterion, out, y_a, y_b = PLAIN_MEAN[name]
        lam = torch.linspace(0.1, 1.0, out.shape[0], dtype=torch.float64)
        loss = MixupLoss(criterion)
        close(loss(out, y_a), criterion(out, y_a))
        close(loss(out, y_a, y_b, torch.ones_like(lam)), criterion(out, y_a))
        if y_a.is_floating_point():
            w = lam[:, None]
            log_target = getattr(criterion, "log_target", False)
            mixed = (w * y_a.exp() + (1 - w) * y_b.exp()).log() if log_target else w * y_a + (1 - w) * y_b
            expected = criterion(out, mixed)
        else:
            per_sample = copy.deepcopy(criterion)
            per_sample.reduction = "none"
            expected = (lam * per_sample(out, y_a) + (1 - lam) * per_sample(out, y_b)).mean()
        close(loss(out, y_a, y_b, lam), expected)

    @pytest.mark.parametrize(
        "criterion",
        [nn.CTCLoss(), nn.GaussianNLLLoss(), nn.MarginRankingLoss(), _OwnForward(), _ThirdParty()],
        ids=lambda c: type(c).__name__,
    )
    def test_losses_it_cannot_reproduce_are_refused_at_construction(self, criterion):
        with pytest.raises(ValueError, match=f"cannot reproduce {type(criterion).__name__}'s reduction exactly"):
            MixupLoss(criterion)

    def test_a_subclass_that_keeps_forward_is_computed_by_the_formula(self):
        logits, y_a, y_b, lam = labelled_batch((6, 5), ignore_index=1)
        criterion = _SameForward(ignore_index=1, weight=CLASS_WEIGHT)
        close(MixupLoss(criterion)(logits, y_a, y_b, 1.0), criterion(logits, y_a))

    def test_a_trainable_criterion_exposes_its_parameters_and_stays_unchanged(self):
        criterion = _Tempered()
        loss = MixupLoss(criterion).double()
        assert [p.shape for p in loss.parameters()] == [torch.Size([])]
        assert criterion.log_t.dtype == torch.float32
        logits, y_a, y_b, lam = labelled_batch((6, 5))
        loss(logits, y_a, y_b, lam).backward()
        assert loss.criterion.log_t.grad is not None and criterion.log_t.grad is None

    def test_a_callable_returning_per_sample_losses_is_combined_and_reduced(self):
        loss = MixupLoss(lambda out, y: F.cross_entropy(out, y, reduction="none"))
        logits, y_a, y_b, lam = labelled_batch((6, 5), ignored=False)
        close(loss(logits, y_a), F.cross_entropy(logits, y_a))
        close(
            loss(logits, y_a, y_b, lam), mixed_cross_entropy_reference(logits, y_a, y_b, lam, reduction="none").mean()
        )

    def test_a_criterion_that_reduces_is_refused(self):
        with pytest.raises(ValueError, match="per-sample losses"):
            MixupLoss(F.cross_entropy)(torch.randn(4, 3), torch.tensor([0, 1, 2, 1]), torch.tensor([1, 1, 2, 0]), 0.5)

    def test_nll_loss_refuses_float_targets(self):
        with pytest.raises(ValueError, match="nn.NLLLoss takes class-index targets"):
            MixupLoss(nn.NLLLoss())(torch.randn(2, 3).log_softmax(1), torch.rand(2, 3))

    def test_the_callers_criterion_never_changes(self):
        weight = torch.tensor([1.0, 2.0, 0.5])
        criterion = nn.CrossEntropyLoss(weight=weight, reduction="sum")
        loss = MixupLoss(criterion).double()
        assert criterion.weight is weight and criterion.weight.dtype == torch.float32
        assert criterion.reduction == "sum"
        assert loss.criterion.weight.dtype == torch.float64
        loss.to(torch.float16)
        assert criterion.weight is weight and criterion.weight.dtype == torch.float32
        bce = nn.BCEWithLogitsLoss(pos_weight=torch.ones(3))
        MixupLoss(bce).double()
        assert bce.pos_weight.dtype == torch.float32 and bce.reduction == "mean"


DENSE = (3, 5, 4, 6)  # (B, C, H, W)
PER_ELEMENT = {
    "MSELoss": nn.MSELoss(),
    "L1Loss": nn.L1Loss(reduction="sum"),
    "SmoothL1Loss": nn.SmoothL1Loss(beta=0.5, reduction="none"),
    "BCEWithLogitsLoss": nn.BCEWithLogitsLoss(pos_weight=torch.tensor(2.0, dtype=torch.float64)),
}


class TestDensePerPixel:
    """lam per pixel, (B, *D): every element weighs its own targets; CutMix-only batches are plain cross-entropy."""

    @given(
        batch=mixed_batches(per_pixel=True),
        smoothing=st.sampled_from([0.0, 0.1, 1.0]),
        reduction=st.sampled_from(REDUCTIONS),
    )
    def test_per_pixel_lam_equals_the_float64_oracle(self, batch, smoothing, reduction):
        logits, y_a, y_b, lam, weight, ignore_index = batch
        kw = {"weight": weight, "ignore_index": ignore_index, "label_smoothing": smoothing, "reduction": reduction}
        expected = mixed_cross_entropy_reference(logits, y_a, y_b, lam, **kw)
        close(mixup_cross_entropy(logits, y_a, y_b, lam, **kw), expected)
        close(MixupLoss(nn.CrossEntropyLoss(**kw))(logits, y_a, y_b, lam), expected)
        logp, nll = logits.log_softmax(1), {"weight": weight, "ignore_index": ignore_index, "reduction": reduction}
        oracle = mixed_cross_entropy_reference(logp, y_a, y_b, lam, log_probs=True, **nll)
        close(MixupLoss(nn.NLLLoss(**nll))(logp, y_a, y_b, lam), oracle)

    def test_per_pixel_formula_is_lam_times_the_criterions_pixel_losses(self):
        logits, y_a, y_b, _ = labelled_batch(DENSE, ignore_index=255)
        lam = torch.rand(DENSE[0], *DENSE[2:], dtype=torch.float64)
        kw = {"weight": CLASS_WEIGHT, "ignore_index": 255, "label_smoothing": 0.1}
        l_a, l_b = (F.cross_entropy(logits, y, reduction="none", **kw) for y in (y_a, y_b))
        got = mixup_cross_entropy(logits, y_a, y_b, lam, reduction="none", **kw)
        close(got, lam * l_a + (1 - lam) * l_b)
        mass = lam * CLASS_WEIGHT[y_a.clamp(max=4)] * (y_a != 255) + (1 - lam) * CLASS_WEIGHT[y_b.clamp(max=4)] * (
            y_b != 255
        )
        close(mixup_cross_entropy(logits, y_a, y_b, lam, **kw), (lam * l_a + (1 - lam) * l_b).sum() / mass.sum())

    @pytest.mark.parametrize("weighted", [False, True], ids=["no-weight", "weight"])
    @pytest.mark.parametrize("smoothing", [0.0, 0.1])
    @pytest.mark.parametrize("reduction", REDUCTIONS)
    def test_a_batch_cut_by_cutmix_only_is_cross_entropy_of_the_pasted_masks(self, weighted, smoothing, reduction):
        logits, y_a, y_b, _ = labelled_batch(DENSE, ignore_index=255)
        lam = cut_lam(DENSE[0], *DENSE[2:])
        lam[1] = 1.0  # an unmixed row
        kw = {"weight": CLASS_WEIGHT if weighted else None, "ignore_index": 255, "label_smoothing": smoothing}
        expected = F.cross_entropy(logits, torch.where(lam == 1, y_a, y_b), reduction=reduction, **kw)
        close(mixup_cross_entropy(logits, y_a, y_b, lam, reduction=reduction, **kw), expected)
        close(MixupLoss(nn.CrossEntropyLoss(reduction=reduction, **kw))(logits, y_a, y_b, lam), expected)

    def test_the_partners_minus_inf_log_probability_under_a_zero_lam_counts_nothing(self):
        """A model may give -inf to impossible classes: the side CutMix did not keep must not turn it into NaN."""
        logits, y_a, y_b, _ = labelled_batch((2, 5, 4, 4), ignored=False)
        lam = cut_lam(2, 4, 4)
        y_b = torch.where(lam == 0, (y_a + 1) % 5, y_b)
        impossible = F.one_hot(y_a, 5).movedim(-1, 1).bool() & (lam == 0).unsqueeze(1)  # y_a where it is pasted over
        logits = logits.masked_fill(impossible, float("-inf"))
        pasted = torch.where(lam == 1, y_a, y_b)
        for reduction in REDUCTIONS:
            expected = F.cross_entropy(logits, pasted, reduction=reduction)
            assert torch.isfinite(expected).all()
            close(mixup_cross_entropy(logits, y_a, y_b, lam, reduction=reduction), expected)

    @pytest.mark.parametrize("reduction", REDUCTIONS)
    def test_lam_per_sample_and_the_same_lam_per_pixel_give_the_same_loss(self, reduction):
        logits, y_a, y_b, lam = labelled_batch(DENSE, ignore_index=255)
        per_pixel = lam[:, None, None].expand(DENSE[0], *DENSE[2:])
        kw = {"weight": CLASS_WEIGHT, "ignore_index": 255, "label_smoothing": 0.1, "reduction": reduction}
        close(mixup_cross_entropy(logits, y_a, y_b, per_pixel, **kw), mixup_cross_entropy(logits, y_a, y_b, lam, **kw))
        soft_a, soft_b = torch.softmax(torch.randn(2, *DENSE, dtype=torch.float64), dim=2)
        close(
            mixup_cross_entropy(logits, soft_a, soft_b, per_pixel, reduction=reduction),
            mixup_cross_entropy(logits, soft_a, soft_b, lam, reduction=reduction),
        )
        maps_a, maps_b = torch.randn(2, *DENSE, dtype=torch.float64)
        mse = MixupLoss(nn.MSELoss(reduction=reduction))
        close(mse(logits, maps_a, maps_b, per_pixel), mse(logits, maps_a, maps_b, lam))

    def test_segmentation_lam_is_per_sample_and_broadcast_over_pixels(self):
        logits, y_a, y_b = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4)), torch.randint(0, 3, (2, 4, 4))
        lam = torch.tensor([0.6, 0.9])
        expected = lam[:, None, None] * F.cross_entropy(logits, y_a, reduction="none") + (
            1 - lam[:, None, None]
        ) * F.cross_entropy(logits, y_b, reduction="none")
        torch.testing.assert_close(mixup_cross_entropy(logits, y_a, y_b, lam, reduction="none"), expected)

    @pytest.mark.parametrize("reduction", REDUCTIONS)
    def test_float_probability_maps_mix_per_pixel(self, reduction):
        g = torch.Generator().manual_seed(4)
        logits = torch.randn(DENSE, generator=g, dtype=torch.float64)
        y_a, y_b = torch.softmax(torch.randn(2, *DENSE, generator=g, dtype=torch.float64), dim=2)
        lam = torch.rand(DENSE[0], *DENSE[2:], generator=g, dtype=torch.float64)
        target = mix_reference(y_a, y_b, lam)
        per_pixel = soft_target_cross_entropy(logits, target * 0.9 + 0.1 / DENSE[1], CLASS_WEIGHT)
        expected = {"none": per_pixel, "sum": per_pixel.sum(), "mean": per_pixel.mean()}[reduction]
        kw = {"weight": CLASS_WEIGHT, "label_smoothing": 0.1, "reduction": reduction}
        close(mixup_cross_entropy(logits, y_a, y_b, lam, **kw), expected)
        close(MixupLoss(nn.CrossEntropyLoss(**kw))(logits, y_a, y_b, lam), expected)

    @pytest.mark.parametrize("name", PER_ELEMENT.keys())
    @pytest.mark.parametrize("channels", [(), (2,)], ids=["(B,H,W)-maps", "(B,K,H,W)-maps"])
    def test_per_element_losses_on_float_maps_weigh_each_element_by_its_pixels_lam(self, name, channels):
        criterion = PER_ELEMENT[name]
        g = torch.Generator().manual_seed(5)
        shape = (DENSE[0], *channels, *DENSE[2:])
        out, y_a, y_b = torch.randn(3, *shape, generator=g, dtype=torch.float64)
        if name == "BCEWithLogitsLoss":
            y_a, y_b = y_a.sigmoid(), y_b.sigmoid()
        lam = torch.rand(DENSE[0], *DENSE[2:], generator=g, dtype=torch.float64)
        close(MixupLoss(criterion)(out, y_a, y_b, lam), criterion(out, mix_reference(y_a, y_b, lam)))
        cut = cut_lam(DENSE[0], *DENSE[2:])
        per_element = copy.deepcopy(criterion)
        per_element.reduction = "none"
        w = cut.unsqueeze(1) if channels else cut
        weighted = w * per_element(out, y_a) + (1 - w) * per_element(out, y_b)
        expected = {"none": weighted, "sum": weighted.sum(), "mean": weighted.mean()}[criterion.reduction]
        close(MixupLoss(criterion)(out, y_a, y_b, cut), expected)

    def test_per_pixel_losses_of_class_indices_are_combined_per_pixel(self):
        logits, y_a, y_b, _ = labelled_batch(DENSE, ignored=False)
        lam = torch.rand(DENSE[0], *DENSE[2:], dtype=torch.float64)
        loss = MixupLoss(lambda out, y: F.cross_entropy(out, y, reduction="none"), reduction="none")
        close(loss(logits, y_a, y_b, lam), mixed_cross_entropy_reference(logits, y_a, y_b, lam, reduction="none"))

    @pytest.mark.parametrize(
        "bad", [(3, 4), (3, 6, 4), (3, 1, 4, 6), (3, 4, 7), (2, 4, 6)], ids=lambda s: "lam" + str(s).replace(" ", "")
    )
    def test_lam_that_is_not_per_sample_or_per_pixel_is_refused_naming_the_shapes(self, bad):
        logits, y_a, y_b, _ = labelled_batch(DENSE)
        shapes = rf"lam has shape \({', '.join(map(str, bad))}\) but the targets have shape \(3, 4, 6\)"
        with pytest.raises(ValueError, match=shapes):
            mixup_cross_entropy(logits, y_a, y_b, torch.ones(bad))
        soft = torch.softmax(logits, 1)
        with pytest.raises(ValueError, match=r"lam has shape .* the targets have shape \(3, 5, 4, 6\)"):
            mixup_cross_entropy(logits, soft, soft, torch.ones(bad))
        with pytest.raises(ValueError, match="lam has shape"):
            MixupLoss(nn.MSELoss())(logits, soft, soft, torch.ones(bad))
        per_pixel = MixupLoss(lambda out, y: F.cross_entropy(out, y, reduction="none"))
        with pytest.raises(ValueError, match=r"lam has shape .* the per-sample losses have shape \(3, 4, 6\)"):
            per_pixel(logits, y_a, y_b, torch.ones(bad))


class TestPrecision:
    """Half-precision outputs: the loss is computed in float32, and lam is never rounded to half precision."""

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_half_precision_logits_are_computed_in_float32(self, dtype):
        g = torch.Generator().manual_seed(0)
        logits = (torch.randn(64, 1000, generator=g) * 8).to(dtype)
        log_probs = logits.float().log_softmax(1).to(dtype)  # nn.NLLLoss's input, in half precision too
        y_a, y_b = torch.randint(0, 1000, (64,), generator=g), torch.randint(0, 1000, (64,), generator=g)
        lam = torch.rand(64, generator=g)
        weight = torch.rand(1000, generator=g) + 0.5
        exact = mixed_cross_entropy_reference(logits, y_a, y_b, lam, weight=weight, reduction="none")
        tolerance = 1e-5 * exact.abs().max().item()
        logp, w, lam_h = logits.log_softmax(1), weight.to(dtype), lam.to(dtype)  # what a half-precision loss computes
        in_half = -(
            lam_h * logp.gather(1, y_a[:, None])[:, 0] * w[y_a]
            + (1 - lam_h) * logp.gather(1, y_b[:, None])[:, 0] * w[y_b]
        )
        assert (in_half.double() - exact).abs().max() > 10 * tolerance, (
            "the tolerance must reject a half-precision loss"
        )
        cases = [
            (MixupLoss(nn.CrossEntropyLoss(weight=weight), reduction="none")(logits, y_a, y_b, lam), exact),
            (mixup_cross_entropy(logits, y_a, y_b, lam, weight=weight, reduction="none"), exact),
            (
                MixupLoss(nn.NLLLoss(weight=weight), reduction="none")(log_probs, y_a, y_b, lam),
                mixed_cross_entropy_reference(
                    log_probs, y_a, y_b, lam, weight=weight, reduction="none", log_probs=True
                ),
            ),
        ]
        for loss, expected in cases:
            assert loss.dtype == torch.float32
            close(loss, expected, atol=tolerance)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    @pytest.mark.parametrize("per_pixel", [False, True], ids=["lam-(B,)", "lam-(B,H,W)"])
    def test_mixup_loss_mixes_float_targets_with_lam_unrounded(self, dtype, per_pixel):
        """The target a criterion sees is lam * y_a + (1 - lam) * y_b in the targets' float32, whatever the outputs."""
        g = torch.Generator().manual_seed(1)
        out = torch.randn(64, 2, 3, 3, generator=g).to(dtype)
        y_a, y_b = torch.rand(2, 64, 2, 3, 3, generator=g)
        lam = torch.rand(64, *((3, 3) if per_pixel else ()), generator=g)
        seen = []

        def criterion(out, target):
            seen.append(target)
            return (out.float() - target).square()

        MixupLoss(criterion)(out, y_a, y_b, lam)
        assert seen[0].dtype == torch.float32
        close(seen[0], mix_reference(y_a, y_b, lam), atol=1e-6 * 2)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_mixup_loss_combines_half_precision_losses_with_lam_unrounded(self, dtype):
        g = torch.Generator().manual_seed(2)
        out = (torch.randn(64, 10, generator=g) * 4).to(dtype)
        y_a, y_b = torch.randint(0, 10, (2, 64), generator=g)
        lam = torch.rand(64, generator=g)

        def criterion(out, y):  # a per-sample loss in the outputs' half precision
            return -out.gather(1, y[:, None])[:, 0]

        l_a, l_b = (criterion(out, y).double() for y in (y_a, y_b))
        expected = lam.double() * l_a + (1 - lam.double()) * l_b
        got = MixupLoss(criterion, reduction="none")(out, y_a, y_b, lam)
        assert got.dtype == torch.float32
        close(got, expected, atol=1e-6 * expected.abs().max().item())
        close(MixupLoss(criterion)(out, y_a, y_b, lam), expected.mean(), atol=1e-6 * expected.abs().max().item())


@pytest.mark.slow  # inductor compiles for seconds
class TestCompile:
    """torch.compile(fullgraph=True) traces the loss as one graph, with the eager numbers; eager keeps its checks.

    One compiled call: with a cold inductor cache it compiles C++ kernels in worker processes (tens of CPU
    seconds on two cores), hence ``slow``.
    """

    @pytest.mark.slow
    def test_fullgraph_inductor_on_the_cpu_gives_the_eager_loss(self):
        logits, y_a, y_b, _ = labelled_batch((2, 5, 4, 3), ignore_index=255)
        lam = torch.rand(2, 4, 3, dtype=torch.float64)
        kw = {"weight": CLASS_WEIGHT, "ignore_index": 255}
        compiled = torch.compile(mixup_cross_entropy, fullgraph=True, backend="inductor")
        got = compiled(logits, y_a, y_b, lam, 0.1, **kw)
        close(got, mixup_cross_entropy(logits, y_a, y_b, lam, 0.1, **kw))
        close(got, mixed_cross_entropy_reference(logits, y_a, y_b, lam, label_smoothing=0.1, **kw))
        y_a[0, 0, 0] = 7
        with pytest.raises(ValueError, match=r"y_a\[0, 0, 0\] is class index 7, outside 0..4"):
            mixup_cross_entropy(logits, y_a, y_b, lam, 0.1, **kw)


class TestCuda:
    """On an accelerator the loss never synchronises with the host, and gives the CPU's numbers."""

    @CUDA
    @pytest.mark.cuda
    @pytest.mark.parametrize("per_pixel", [False, True], ids=["lam-(B,)", "lam-(B,H,W)"])
    def test_no_host_synchronisation_on_cuda(self, per_pixel):
        logits, y_a, y_b, lam = labelled_batch((4, 5, 8, 8), ignore_index=255)
        lam = cut_lam(4, 8, 8) if per_pixel else lam
        logits, y_a, y_b, lam = (t.cuda() for t in (logits, y_a, y_b, lam))
        logits.requires_grad_()
        criterion = nn.CrossEntropyLoss(weight=CLASS_WEIGHT, ignore_index=255, label_smoothing=0.1)
        loss = MixupLoss(criterion).cuda()
        previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")
        try:
            value = loss(logits, y_a, y_b, lam)
            plain = loss(logits, y_a)
        finally:
            torch.cuda.set_sync_debug_mode(previous)
        value.backward()
        assert torch.isfinite(logits.grad).all()
        cpu = [t.detach().cpu() for t in (logits, y_a, y_b, lam)]
        oracle = mixed_cross_entropy_reference(*cpu, weight=CLASS_WEIGHT, ignore_index=255, label_smoothing=0.1)
        close(value.cpu(), oracle)
        close(plain.cpu(), criterion(cpu[0], cpu[1]))
