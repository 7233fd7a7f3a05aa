"""The demo's calibration: reliability bins and the expected calibration error, against hand-computed values,
synthetic predictors of known calibration, and a float64 per-sample formula."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mixup_collate.demo.calibration import BINS, Reliability, reliability, reliability_of_logits


def ece_reference(confidence, correct, bins):
    """ECE in float64, one sample at a time: bin ``k`` holds ``(k - 1) / M < c <= k / M`` (0 in the first)."""
    members = [[] for _ in range(bins)]
    for c, right in zip(confidence, correct):
        k = next(k for k in range(1, bins + 1) if c <= k / bins)
        members[k - 1].append((c, right))
    n = len(confidence)
    total = 0.0
    for bin_members in members:
        if bin_members:
            accuracy = sum(right for _, right in bin_members) / len(bin_members)
            mean_confidence = math.fsum(c for c, _ in bin_members) / len(bin_members)
            total += len(bin_members) / n * abs(accuracy - mean_confidence)
    return total


def calibrated_bins(confidences, per_bin):
    """``per_bin`` predictions at each confidence ``c``, exactly ``c * per_bin`` of them right: calibrated by design."""
    conf, correct = [], []
    for c in confidences:
        hits = round(c * per_bin)
        assert hits == c * per_bin
        conf += [c] * per_bin
        correct += [True] * hits + [False] * (per_bin - hits)
    return torch.tensor(conf, dtype=torch.float64), torch.tensor(correct)


class TestExpectedCalibrationError:
    def test_two_bins_by_hand(self):
        # (0, 0.5]: 0.2 wrong, 0.4 right -> accuracy 1/2, confidence 0.3, share 2/5: 2/5 * 0.2 = 0.08
        # (0.5, 1]: 0.6 right, 0.8 right, 0.9 wrong -> accuracy 2/3, confidence 2.3/3, share 3/5: 3/5 * 0.3/3 = 0.06
        bins = reliability(torch.tensor([0.2, 0.4, 0.6, 0.8, 0.9]), torch.tensor([False, True, True, True, False]), 2)
        assert bins.counts.tolist() == [2, 3] and bins.correct.tolist() == [1, 2]
        assert bins.accuracy.tolist() == pytest.approx([0.5, 2 / 3])
        assert bins.confidence.tolist() == pytest.approx([0.3, 2.3 / 3])
        assert bins.share.tolist() == [0.4, 0.6]
        assert bins.ece == pytest.approx(0.14, abs=1e-7)
        assert bins.mean_confidence == pytest.approx(0.58, abs=1e-7)
        assert bins.overall_accuracy == 0.6

    def test_a_confidence_on_a_bin_edge_goes_in_the_lower_bin_and_zero_in_the_first(self):
        bins = reliability(torch.tensor([0.0, 0.5, 0.5000001, 1.0], dtype=torch.float64), torch.ones(4, dtype=bool), 2)
        assert bins.counts.tolist() == [2, 2]

    def test_a_perfectly_calibrated_predictor_has_an_ece_of_zero(self):
        conf, correct = calibrated_bins([0.25, 0.5, 0.75, 0.9, 1.0], per_bin=20)
        bins = reliability(conf, correct)
        assert bins.ece == pytest.approx(0.0, abs=1e-12)
        assert bins.mean_confidence == pytest.approx(bins.overall_accuracy)

    def test_a_predictor_right_with_the_probability_it_states_has_an_ece_near_zero(self):
        g = torch.Generator().manual_seed(0)
        conf = 0.1 + 0.9 * torch.rand(200_000, generator=g, dtype=torch.float64)
        correct = torch.rand(200_000, generator=g, dtype=torch.float64) < conf
        assert reliability(conf, correct).ece < 0.01

    def test_an_overconfident_predictor_has_the_gap_between_confidence_and_accuracy_as_ece(self):
        # Right 60 % of the time everywhere but claiming 0.9: every prediction in one bin, ECE = 0.9 - 0.6.
        correct = torch.arange(100) < 60
        assert reliability(torch.full((100,), 0.9), correct).ece == pytest.approx(0.3, abs=1e-7)
        # Calibrated at 0.4, 0.6, 0.8 but claiming 0.2 more in each bin: ECE = 0.2.
        conf, correct = calibrated_bins([0.4, 0.6, 0.8], per_bin=10)
        assert reliability(conf + 0.2, correct).ece == pytest.approx(0.2, abs=1e-12)

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=60),
        st.integers(1, 20),
    )
    def test_matches_the_per_sample_float64_formula(self, samples, bins):
        conf = [c for c, _ in samples]
        correct = [right for _, right in samples]
        found = reliability(torch.tensor(conf, dtype=torch.float64), torch.tensor(correct), bins)
        assert found.ece == pytest.approx(ece_reference(conf, correct, bins), rel=1e-9, abs=1e-12)
        assert 0 <= found.ece <= 1
        assert found.total == len(samples) and found.mean_confidence == pytest.approx(math.fsum(conf) / len(conf))

    def test_the_confidence_of_logits_is_the_softmax_probability_of_the_argmax(self):
        g = torch.Generator().manual_seed(1)
        logits = 3 * torch.randn(300, 10, generator=g)
        labels = torch.randint(0, 10, (300,), generator=g)
        probs = logits.double().softmax(1)
        conf = probs.max(1).values.tolist()
        correct = (probs.argmax(1) == labels).tolist()
        found = reliability_of_logits(logits, labels)
        assert len(found.counts) == BINS
        assert found.ece == pytest.approx(ece_reference(conf, correct, BINS), rel=1e-9)
        assert found.overall_accuracy == sum(correct) / 300


class TestBinsAddUp:
    def test_pooled_bins_are_the_bins_of_all_predictions_at_once(self):
        g = torch.Generator().manual_seed(2)
        conf = torch.rand(500, generator=g, dtype=torch.float64)
        correct = torch.rand(500, generator=g) < 0.7
        parts = [reliability(conf[:100], correct[:100]), reliability(conf[100:], correct[100:])]
        pooled, whole = Reliability.pooled(parts), reliability(conf, correct)
        assert pooled.counts.equal(whole.counts) and pooled.correct.equal(whole.correct)
        assert pooled.confidence_sum.tolist() == pytest.approx(whole.confidence_sum.tolist(), rel=1e-12)

    def test_the_dict_for_results_json_round_trips_and_marks_empty_bins_none(self):
        bins = reliability(torch.tensor([0.95, 0.97, 0.5]), torch.tensor([True, False, True]))
        d = bins.as_dict()
        assert d["bin_accuracy"][BINS - 1] == 0.5 and d["bin_accuracy"][0] is None and d["bin_confidence"][0] is None
        assert d["edges"][0] == 0 and d["edges"][-1] == 1 and len(d["edges"]) == BINS + 1
        back = Reliability.from_dict(d)
        assert back.counts.equal(bins.counts) and back.correct.equal(bins.correct) and back.ece == bins.ece

    def test_pooling_bins_of_different_counts_is_refused(self):
        with pytest.raises(ValueError, match="same bin count"):
            Reliability.pooled([reliability(torch.tensor([0.5]), torch.tensor([True]), b) for b in (2, 3)])


class TestBadInput:
    @pytest.mark.parametrize(
        "conf, correct, bins, message",
        [
            (torch.tensor([0.5]), torch.tensor([True, False]), 15, r"confidence and correct .* got \(1,\) and \(2,\)"),
            (torch.empty(0), torch.empty(0, dtype=bool), 15, "non-zero length"),
            (torch.tensor([0.5]), torch.tensor([1]), 15, "correct must be a bool tensor"),
            (torch.tensor([1.5]), torch.tensor([True]), 15, r"confidence must lie in \[0, 1\]"),
            (torch.tensor([float("nan")]), torch.tensor([True]), 15, r"confidence must lie in \[0, 1\]"),
            (torch.tensor([0.5]), torch.tensor([True]), 0, "bins must be a positive int, got 0"),
        ],
    )
    def test_reliability_names_the_argument_at_fault(self, conf, correct, bins, message):
        with pytest.raises(ValueError, match=message):
            reliability(conf, correct, bins)

    def test_logits_of_the_wrong_shape_are_named(self):
        with pytest.raises(ValueError, match=r"logits must be \(N, C\) and labels \(N,\), got \(4,\) and \(4,\)"):
            reliability_of_logits(torch.zeros(4), torch.zeros(4, dtype=torch.int64))
