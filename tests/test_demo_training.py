"""The demo's experiment: the mixed run is named after its collate and trains on what that collate draws."""

import pytest
import torch

pytest.importorskip("sklearn")
pytest.importorskip("tqdm")

from mixup_collate.demo.data import load_digits_split  # noqa: E402
from mixup_collate.demo.training import Settings, mixing_name, run_experiment  # noqa: E402


@pytest.mark.parametrize(
    "alpha, cutmix_alpha, name", [(0.4, 0.0, "mixup"), (0.0, 1.0, "cutmix"), (0.4, 1.0, "mixup+cutmix")]
)
def test_the_mixed_run_is_named_after_what_its_collate_does(alpha, cutmix_alpha, name):
    assert mixing_name(alpha, cutmix_alpha) == name


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def kept_share_fraction(lams, pixels=8 * 8):
    """Among ``lam < 1``, the fraction that are whole-pixel shares ``k / pixels`` of an image: what CutMix draws.

    CutMix's shares are exact in float32; Mixup's continuous weights practically never hit one.
    """
    scaled = lams[lams < 1].double() * pixels
    return (scaled == scaled.round()).double().mean().item()


# Per configuration, the range of the fraction of CutMix samples in the training batches: none for Mixup,
# all for CutMix, and about SWITCH_PROB = 0.5 of them with both on.
@pytest.mark.parametrize(
    "alpha, cutmix_alpha, cut_low, cut_high",
    [(0.4, 0.0, 0.0, 0.0), (0.0, 1.0, 1.0, 1.0), (0.4, 1.0, 0.35, 0.65)],
    ids=["mixup", "cutmix", "mixup+cutmix"],
)
def test_the_mixed_run_trains_on_mixup_cutmix_or_both(digits, alpha, cutmix_alpha, cut_low, cut_high):
    settings = Settings(
        epochs=1,
        alpha=alpha,
        cutmix_alpha=cutmix_alpha,
        batch_size=64,
        lr=3e-3,
        weight_decay=5e-4,
        seeds=[0],
        device=torch.device("cpu"),
        max_batches=3,
    )
    with torch.random.fork_rng(devices=[]):  # run_experiment seeds the global RNG
        (history,), lams = run_experiment(digits, settings)
    assert list(history) == ["seed", "plain", mixing_name(alpha, cutmix_alpha)]
    assert lams.shape == (3 * 64,) and bool(((lams >= 0.5) & (lams <= 1)).all())
    assert cut_low <= kept_share_fraction(lams) <= cut_high


def test_evaluate_bins_the_softmax_confidence_of_every_validation_prediction(digits):
    from torch.utils.data import DataLoader

    from mixup_collate.demo.calibration import reliability
    from mixup_collate.demo.model import build_cnn
    from mixup_collate.demo.training import evaluate

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_cnn(1, 10, 8).eval()
    loader = DataLoader(digits.val, batch_size=128)  # several batches: the bins cover all of them
    loss, acc, bins = evaluate(model, loader, torch.device("cpu"))
    x = torch.stack([digits.val[i][0] for i in range(len(digits.val))])
    y = torch.tensor([digits.val[i][1] for i in range(len(digits.val))])
    with torch.no_grad():
        probs = model(x).double().softmax(1)
    expected = reliability(probs.max(1).values, probs.argmax(1) == y)
    assert bins.counts.equal(expected.counts) and bins.correct.equal(expected.correct)
    assert bins.ece == pytest.approx(expected.ece, rel=1e-6) and bins.overall_accuracy == acc
