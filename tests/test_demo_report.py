"""The demo's report: the summary over seeds, the table, and the verdict line for every kind of outcome.

The mixed run is named after its collate ("mixup", "cutmix", "mixup+cutmix"); the report names it so.
"""

import math

import pytest

from mixup_collate.demo.report import calibration_verdict, format_table, summarize, verdict


def summary(plain_acc, mixup_acc, plain_loss, mixup_loss, plain_std=0.0, mixup_std=0.0, name="mixup"):
    """A summary as ``summarize`` returns it, holding what ``verdict`` reads: final accuracy (mean, std), final loss.

    ``name`` is the mixed run's.
    """

    def run(acc, std, loss):
        return {"final_val_acc": {"mean": acc, "std": std}, "final_val_loss": {"mean": loss, "std": 0.0}}

    return {"plain": run(plain_acc, plain_std, plain_loss), name: run(mixup_acc, mixup_std, mixup_loss)}


def test_clear_gain_and_higher_loss_is_what_the_reference_describes():
    s = summary(0.9837, 0.9885, 0.055, 0.087, plain_std=0.0042, mixup_std=0.0045)
    assert verdict(s, 3) == (
        "Verdict: mixup raised final validation accuracy by +0.48 points (3 seeds) and raised validation loss "
        "(0.087 vs 0.055): as the reference describes."
    )


@pytest.mark.parametrize("plain_std, mixup_std", [(0.005, 0.02), (0.02, 0.005)], ids=["mixup-noisier", "plain-noisier"])
def test_a_gain_within_the_larger_std_is_not_clear(plain_std, mixup_std):
    s = summary(0.900, 0.915, 0.20, 0.30, plain_std=plain_std, mixup_std=mixup_std)
    assert verdict(s, 3) == (
        "Verdict: mixup raised final validation accuracy by +1.50 points (3 seeds, within the seed-to-seed std "
        "of 2.00) and raised validation loss (0.300 vs 0.200): the reference's higher loss but not a clear "
        "accuracy gain here."
    )


def test_a_gain_equal_to_the_std_is_not_clear():
    s = summary(0.5, 0.75, 0.20, 0.30, plain_std=0.25, mixup_std=0.25)
    assert 100 * (0.75 - 0.5) == 100 * 0.25  # exactly at the threshold in floating point
    assert verdict(s, 3) == (
        "Verdict: mixup raised final validation accuracy by +25.00 points (3 seeds, within the seed-to-seed std "
        "of 25.00) and raised validation loss (0.300 vs 0.200): the reference's higher loss but not a clear "
        "accuracy gain here."
    )


def test_a_clearly_lower_accuracy_is_no_gain():
    s = summary(0.95, 0.90, 0.20, 0.30, plain_std=0.01, mixup_std=0.01)
    assert verdict(s, 3) == (
        "Verdict: mixup lowered final validation accuracy by 5.00 points (3 seeds) and raised validation loss "
        "(0.300 vs 0.200): the reference's higher loss but not a clear accuracy gain here."
    )


def test_lower_accuracy_within_noise_and_lower_loss_is_unlike_the_reference():
    s = summary(0.95, 0.94, 0.30, 0.20, plain_std=0.02, mixup_std=0.01)
    assert verdict(s, 2) == (
        "Verdict: mixup lowered final validation accuracy by 1.00 points (2 seeds, within the seed-to-seed std "
        "of 2.00) and did not raise validation loss (0.200 vs 0.300): unlike the reference (higher accuracy, "
        "higher validation loss)."
    )


def test_one_seed_is_too_few_to_tell():
    s = summary(0.80, 0.90, 0.20, 0.30)
    assert verdict(s, 1) == (
        "Verdict: mixup raised final validation accuracy by +10.00 points (1 seed: too few to tell an effect from "
        "noise) and raised validation loss (0.300 vs 0.200): the reference's higher loss but not a clear accuracy "
        "gain here."
    )


@pytest.mark.parametrize("mixup_loss", [0.20, 0.25], ids=["lower", "equal"])
def test_a_clear_gain_without_higher_loss(mixup_loss):
    s = summary(0.80, 0.90, 0.25, mixup_loss, plain_std=0.01, mixup_std=0.01)
    assert verdict(s, 3) == (
        "Verdict: mixup raised final validation accuracy by +10.00 points (3 seeds) and did not raise validation "
        f"loss ({mixup_loss:.3f} vs 0.250): a clear accuracy gain but not the reference's higher loss."
    )


def test_unchanged_accuracy_says_so_without_a_noise_caveat():
    s = summary(0.90, 0.90, 0.20, 0.30, plain_std=0.01, mixup_std=0.01)
    assert verdict(s, 3) == (
        "Verdict: mixup left final validation accuracy unchanged (3 seeds) and raised validation loss "
        "(0.300 vs 0.200): the reference's higher loss but not a clear accuracy gain here."
    )


@pytest.mark.parametrize(
    "name, plain_acc, mixed_acc, words",
    [("cutmix", 0.80, 0.90, "raised final validation accuracy by +10.00 points"),
     ("mixup+cutmix", 0.90, 0.80, "lowered final validation accuracy by 10.00 points"),
     ("cutmix", 0.90, 0.90, "left final validation accuracy unchanged")],
)  # fmt: skip
def test_the_verdict_names_the_mixed_run(name, plain_acc, mixed_acc, words):
    s = summary(plain_acc, mixed_acc, 0.25, 0.30, plain_std=0.01, mixup_std=0.01, name=name)
    assert verdict(s, 3).startswith(f"Verdict: {name} {words} (3 seeds) and raised validation loss (0.300 vs 0.250)")


def history(val_acc, val_loss, ece=0.05, confidence=0.9):
    calibration = {"ece": ece, "mean_confidence": confidence}
    return {"train_loss": [1.0] * len(val_acc), "val_acc": val_acc, "val_loss": val_loss, "calibration": calibration}


def test_summarize_takes_best_and_final_epochs_and_the_sample_std_over_seeds():
    histories = [
        {"seed": 0, "plain": history([0.5, 0.8, 0.7], [1.0, 0.6, 0.5]), "mixup": history([0.6, 0.9], [0.9, 0.7])},
        {"seed": 1, "plain": history([0.4, 0.6, 0.9], [1.1, 0.7, 0.3]), "mixup": history([0.7, 0.8], [0.8, 0.9])},
    ]
    s = summarize(histories)
    assert s["plain"]["best_val_acc"]["values"] == [0.8, 0.9]
    assert s["plain"]["final_val_acc"]["values"] == [0.7, 0.9]
    assert s["mixup"]["final_val_loss"]["values"] == [0.7, 0.9]
    assert s["plain"]["final_val_acc"]["mean"] == pytest.approx(0.8)
    assert s["plain"]["final_val_acc"]["std"] == pytest.approx(abs(0.7 - 0.9) / math.sqrt(2))
    assert s["plain"]["final_ece"] == {"mean": 0.05, "std": 0.0, "values": [0.05, 0.05]}
    one = summarize(histories[:1])
    assert one["mixup"]["best_val_acc"] == {"mean": 0.9, "std": 0.0, "values": [0.9]}


def test_summarize_keeps_the_run_names_in_order():
    histories = [{"seed": 3, "plain": history([0.5], [1.0]), "cutmix": history([0.6], [0.9])}]
    s = summarize(histories)
    assert list(s) == ["plain", "cutmix"]
    assert s["cutmix"]["final_val_loss"]["values"] == [0.9]


def stats(mean, std):
    return {"mean": mean, "std": std}


def run(best, final, loss, ece=(0.0123, 0.0021), confidence=(0.9512, 0.0034)):
    return {
        "best_val_acc": stats(*best),
        "final_val_acc": stats(*final),
        "final_val_loss": stats(*loss),
        "final_ece": stats(*ece),
        "final_confidence": stats(*confidence),
    }


def test_table_layout():
    s = {
        "plain": run((0.9922, 0.0019), (0.9837, 0.0042), (0.055, 0.004)),
        "mixup": run((0.9922, 0.0019), (0.9885, 0.0045), (0.087, 0.010)),
    }
    s["mixup"]["final_ece"] = stats(0.0456, 0.0078)
    assert format_table(s).splitlines() == [
        "              best val acc     final val acc    final val loss         final ECE        final conf",
        "plain       99.22 ± 0.19 %    98.37 ± 0.42 %     0.055 ± 0.004     1.23 ± 0.21 %    95.12 ± 0.34 %",
        "mixup       99.22 ± 0.19 %    98.85 ± 0.45 %     0.087 ± 0.010     4.56 ± 0.78 %    95.12 ± 0.34 %",
    ]


def test_table_widens_the_name_column_for_a_long_run_name():
    s = {
        "plain": run((0.9922, 0.0019), (0.9837, 0.0042), (0.055, 0.004)),
        "mixup+cutmix": run((0.9911, 0.0010), (0.9870, 0.0030), (0.101, 0.012)),
    }
    assert format_table(s).splitlines() == [
        "                  best val acc     final val acc    final val loss         final ECE        final conf",
        "plain           99.22 ± 0.19 %    98.37 ± 0.42 %     0.055 ± 0.004     1.23 ± 0.21 %    95.12 ± 0.34 %",
        "mixup+cutmix    99.11 ± 0.10 %    98.70 ± 0.30 %     0.101 ± 0.012     1.23 ± 0.21 %    95.12 ± 0.34 %",
    ]


def calibrated(
    plain_ece, mixed_ece, plain_conf, mixed_conf, mixed_acc=0.99, plain_std=0.0, mixed_std=0.0, name="mixup"
):
    """A summary holding what ``calibration_verdict`` reads: final ECE (mean, std), mean confidence, final accuracy."""

    def one(ece, std, conf, acc):
        return {"final_ece": stats(ece, std), "final_confidence": stats(conf, 0.0), "final_val_acc": stats(acc, 0.0)}

    return {
        "plain": one(plain_ece, plain_std, plain_conf, 0.98),
        name: one(mixed_ece, mixed_std, mixed_conf, mixed_acc),
    }


class TestCalibrationVerdict:
    def test_a_clearly_lower_ece_of_plain_with_a_less_confident_mixup_below_its_accuracy(self):
        s = calibrated(0.0100, 0.0400, 0.9900, 0.9500, plain_std=0.002, mixed_std=0.005)
        assert calibration_verdict(s, 3) == (
            "Calibration: plain is better calibrated (final ECE 1.00 % vs mixup's 4.00 %, 3 seeds: a difference of "
            "3.00 points, above the seed-to-seed std of 0.50); mixup's predictions are less confident than plain's "
            "(mean confidence 95.00 % vs 99.00 %), below its accuracy of 99.00 %: under-confident."
        )

    @pytest.mark.parametrize("plain_std, mixed_std", [(0.01, 0.001), (0.001, 0.01)], ids=["plain", "mixed"])
    def test_a_lower_ece_within_the_larger_std_is_called_so(self, plain_std, mixed_std):
        s = calibrated(0.030, 0.025, 0.97, 0.995, plain_std=plain_std, mixed_std=mixed_std, name="cutmix")
        assert calibration_verdict(s, 3) == (
            "Calibration: cutmix is better calibrated (final ECE 2.50 % vs plain's 3.00 %, 3 seeds: a difference of "
            "0.50 points, within the seed-to-seed std of 1.00); cutmix's predictions are more confident than "
            "plain's (mean confidence 99.50 % vs 97.00 %), above its accuracy of 99.00 %: over-confident."
        )

    def test_a_difference_equal_to_the_std_is_within_it(self):
        s = calibrated(0.25, 0.5, 0.9, 0.9, mixed_acc=0.9, plain_std=0.25)
        assert "a difference of 25.00 points, within the seed-to-seed std of 25.00" in calibration_verdict(s, 3)

    def test_equal_calibration_and_confidence(self):
        s = calibrated(0.02, 0.02, 0.9, 0.9, mixed_acc=0.9, plain_std=0.01)
        assert calibration_verdict(s, 2) == (
            "Calibration: plain and mixup are equally calibrated (final ECE 2.00 % each, 2 seeds); mixup's "
            "predictions are as confident as plain's (mean confidence 90.00 % vs 90.00 %), equal to its accuracy "
            "of 90.00 %."
        )

    def test_one_seed_is_too_few_to_tell(self):
        s = calibrated(0.01, 0.04, 0.99, 0.95)
        assert calibration_verdict(s, 1).startswith(
            "Calibration: plain is better calibrated (final ECE 1.00 % vs mixup's 4.00 %, 1 seed: too few to tell an "
            "effect from noise); "
        )
