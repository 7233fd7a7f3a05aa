"""mixup_cross_entropy and MixupLoss: equal to soft-target cross-entropy on mixed one-hot targets."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from mixup_collate import MixupLoss, mixup_cross_entropy


def soft_target_cross_entropy(logits, y_a, y_b, lam, smoothing=0.0):
    """The independent formula: cross-entropy against the mixed (and smoothed) one-hot target."""
    k = logits.shape[1]
    target = lam[:, None] * F.one_hot(y_a, k).double() + (1 - lam[:, None]) * F.one_hot(y_b, k).double()
    target = target * (1 - smoothing) + smoothing / k
    return -(target * torch.log_softmax(logits.double(), dim=1)).sum(1)


@st.composite
def mixed_batches(draw):
    b, k = draw(st.integers(1, 16)), draw(st.integers(1, 40))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    logits = torch.randn(b, k, generator=g, dtype=torch.float64) * draw(st.sampled_from([0.1, 1.0, 10.0]))
    y_a, y_b = torch.randint(0, k, (b,), generator=g), torch.randint(0, k, (b,), generator=g)
    lam = torch.rand(b, generator=g, dtype=torch.float64) * 0.5 + 0.5
    return logits, y_a, y_b, lam


@given(batch=mixed_batches(), smoothing=st.sampled_from([0.0, 0.1, 0.3]))
def test_equals_soft_target_cross_entropy(batch, smoothing):
    logits, y_a, y_b, lam = batch
    expected = soft_target_cross_entropy(logits, y_a, y_b, lam, smoothing)
    got = mixup_cross_entropy(logits, y_a, y_b, lam, label_smoothing=smoothing, reduction="none")
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(
        mixup_cross_entropy(logits, y_a, y_b, lam, label_smoothing=smoothing), expected.mean(), rtol=0, atol=1e-6
    )


def test_float32_logits_agree_to_1e_6_per_unit_loss():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 100, generator=g)
    y_a, y_b = torch.randint(0, 100, (64,), generator=g), torch.randint(0, 100, (64,), generator=g)
    lam = torch.rand(64, generator=g) * 0.5 + 0.5
    got = mixup_cross_entropy(logits, y_a, y_b, lam, label_smoothing=0.1)
    expected = soft_target_cross_entropy(logits, y_a, y_b, lam.double(), 0.1).mean()
    assert abs(got.item() - expected.item()) <= 1e-6 * max(1.0, expected.item())


def test_reductions():
    logits, y_a, y_b, lam = (
        torch.randn(5, 4),
        torch.tensor([0, 1, 2, 3, 0]),
        torch.tensor([1, 1, 0, 2, 3]),
        torch.rand(5),
    )
    per_sample = mixup_cross_entropy(logits, y_a, y_b, lam, reduction="none")
    assert per_sample.shape == (5,)
    torch.testing.assert_close(mixup_cross_entropy(logits, y_a, y_b, lam, reduction="sum"), per_sample.sum())
    torch.testing.assert_close(mixup_cross_entropy(logits, y_a, y_b, lam), per_sample.mean())
    with pytest.raises(ValueError, match="reduction"):
        mixup_cross_entropy(logits, y_a, y_b, lam, reduction="avg")


def test_plain_batch_is_ordinary_cross_entropy():
    logits, y = torch.randn(6, 5), torch.randint(0, 5, (6,))
    torch.testing.assert_close(mixup_cross_entropy(logits, y), F.cross_entropy(logits, y))
    torch.testing.assert_close(
        mixup_cross_entropy(logits, y, label_smoothing=0.2), F.cross_entropy(logits, y, label_smoothing=0.2)
    )


def test_same_class_pairs_keep_weight_one():
    logits, y = torch.randn(4, 6), torch.tensor([2, 2, 5, 5])
    partner = torch.tensor([1, 0, 3, 2])  # each sample is paired with the other one of its class
    lam = torch.tensor([0.6, 0.8, 0.5, 0.99])
    torch.testing.assert_close(
        mixup_cross_entropy(logits, y, y[partner], lam, reduction="none"),
        F.cross_entropy(logits, y, reduction="none"),
    )
    one_hot = F.one_hot(y, 6).float()
    torch.testing.assert_close(
        MixupLoss(nn.CrossEntropyLoss(), reduction="none")(logits, one_hot, one_hot[partner], lam),
        F.cross_entropy(logits, y, reduction="none"),
    )


def test_float_targets_take_the_linear_combination():
    logits = torch.randn(3, 4)
    y_a, y_b = torch.softmax(torch.randn(3, 4), 1), torch.softmax(torch.randn(3, 4), 1)
    lam = torch.tensor([0.5, 0.7, 1.0])
    target = lam[:, None] * y_a + (1 - lam[:, None]) * y_b
    torch.testing.assert_close(mixup_cross_entropy(logits, y_a, y_b, lam), F.cross_entropy(logits, target))


def test_segmentation_shaped_logits():
    logits, y_a, y_b = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4)), torch.randint(0, 3, (2, 4, 4))
    lam = torch.tensor([0.6, 0.9])
    expected = lam[:, None, None] * F.cross_entropy(logits, y_a, reduction="none") + (
        1 - lam[:, None, None]
    ) * F.cross_entropy(logits, y_b, reduction="none")
    torch.testing.assert_close(mixup_cross_entropy(logits, y_a, y_b, lam, reduction="none"), expected)


@pytest.mark.parametrize("bad", [torch.ones(3), torch.ones(4, 1), torch.ones(2, 2)])
def test_lam_of_the_wrong_shape_is_refused(bad):
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match=rf"lam has shape {tuple(bad.shape)}".replace("(", r"\(").replace(")", r"\)")):
        mixup_cross_entropy(logits, y, y, bad)
    with pytest.raises(ValueError, match="lam has shape"):
        MixupLoss(nn.MSELoss())(logits, y.float()[:, None].expand(4, 3), y.float()[:, None].expand(4, 3), bad)


def test_y_b_without_lam_is_refused():
    with pytest.raises(ValueError, match="y_b and lam together"):
        mixup_cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), torch.tensor([1, 0]))


def test_mixup_loss_with_cross_entropy_matches_the_functional():
    logits, y_a, y_b, lam = torch.randn(8, 5), torch.randint(0, 5, (8,)), torch.randint(0, 5, (8,)), torch.rand(8)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    torch.testing.assert_close(
        MixupLoss(criterion)(logits, y_a, y_b, lam), mixup_cross_entropy(logits, y_a, y_b, lam, label_smoothing=0.1)
    )


def test_mixup_loss_combines_two_per_sample_losses_of_any_criterion():
    weight = torch.tensor([1.0, 2.0, 0.5])
    criterion = nn.CrossEntropyLoss(weight=weight)
    logits, y_a, y_b, lam = torch.randn(6, 3), torch.randint(0, 3, (6,)), torch.randint(0, 3, (6,)), torch.rand(6)
    per = lam * F.cross_entropy(logits, y_a, weight=weight, reduction="none") + (1 - lam) * F.cross_entropy(
        logits, y_b, weight=weight, reduction="none"
    )
    torch.testing.assert_close(MixupLoss(criterion, reduction="sum")(logits, y_a, y_b, lam), per.sum())
    assert criterion.reduction == "mean", "the user's criterion must not be mutated"


def test_mixup_loss_mixes_float_targets_before_the_criterion():
    criterion = nn.MSELoss()
    out, y_a, y_b, lam = torch.randn(5), torch.randn(5), torch.randn(5), torch.rand(5)
    torch.testing.assert_close(MixupLoss(criterion)(out, y_a, y_b, lam), F.mse_loss(out, lam * y_a + (1 - lam) * y_b))
    bce = MixupLoss(nn.BCEWithLogitsLoss(), reduction="none")
    logits, t_a, t_b = torch.randn(5, 3), torch.randint(0, 2, (5, 3)).float(), torch.randint(0, 2, (5, 3)).float()
    expected = F.binary_cross_entropy_with_logits(
        logits, lam[:, None] * t_a + (1 - lam[:, None]) * t_b, reduction="none"
    )
    torch.testing.assert_close(bce(logits, t_a, t_b, lam), expected)


def test_mixup_loss_accepts_a_per_sample_callable_and_plain_batches():
    loss = MixupLoss(lambda out, y: F.cross_entropy(out, y, reduction="none"))
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    torch.testing.assert_close(loss(logits, y), F.cross_entropy(logits, y))
    torch.testing.assert_close(MixupLoss(nn.CrossEntropyLoss())(logits, y), F.cross_entropy(logits, y))


def test_mixup_loss_refuses_a_criterion_that_reduces():
    with pytest.raises(ValueError, match="per-sample losses"):
        MixupLoss(F.cross_entropy)(
            torch.randn(4, 3), torch.tensor([0, 1, 2, 1]), torch.tensor([1, 1, 2, 0]), torch.rand(4)
        )
