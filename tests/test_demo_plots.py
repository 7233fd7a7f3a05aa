"""The demo's pictures: the folded Beta density drawn over the ``lam`` histogram."""

import pytest
import torch

from mixup_collate.demo.plots import folded_beta_pdf

stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("alpha", [0.2, 0.4, 1.0, 3.0])
def test_folded_beta_pdf_is_twice_the_beta_density(alpha):
    t = torch.linspace(0.5, 0.999, 101, dtype=torch.float64)
    expected = 2 * stats.beta.pdf(t.numpy(), alpha, alpha)
    assert folded_beta_pdf(t, alpha).numpy() == pytest.approx(expected, rel=1e-10)


pytest.importorskip("matplotlib")

from mixup_collate.demo import plots  # noqa: E402
from mixup_collate.demo.data import DemoData, TensorPairs  # noqa: E402

N = 10


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plots would save, kept instead of written."""
    figures = []

    def keep(fig, path):
        figures.append(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    return figures


@pytest.fixture
def flat_images():
    """N 8x8 images, each one grey level (i + 1) / (N + 1) of its own class i, so every pixel names its image."""
    x = ((torch.arange(N, dtype=torch.float32) + 1) / (N + 1)).view(N, 1, 1, 1).expand(N, 1, 8, 8).contiguous()
    train = TensorPairs(x, torch.arange(N))
    return DemoData(train, train, [str(i) for i in range(N)], (1, 8, 8), "flat")


def image_of(value):
    """The index of the flat image whose grey level ``value`` is."""
    return round(value * (N + 1)) - 1


@pytest.mark.parametrize("trained", [True, False])
def test_cutmix_samples_are_captioned_with_both_labels_and_the_share_each_image_keeps(
    drawn, flat_images, tmp_path, trained
):
    path, shown = plots.cutmix_samples(tmp_path / "cutmix_samples.png", flat_images, 1.0, seed=0, trained=trained)
    assert path.name == "cutmix_samples.png"
    (fig,) = drawn
    (title,) = [text.get_text() for text in fig.texts]
    assert title.startswith("CutMix training samples (cutmix_alpha = 1")
    assert ("not used in this run's training" in title) is not trained
    assert len(shown["lam"]) == N
    cut = 0
    for ax, lam, a, b in zip(fig.axes, shown["lam"], shown["label_a"], shown["label_b"]):
        pixels = torch.as_tensor(ax.get_images()[0].get_array())
        own = flat_images.train.x[int(a)]
        images = {image_of(v) for v in pixels.unique().tolist()}
        assert int(a) in images and images <= {int(a), int(b)}, "every pixel is the image's or its partner's"
        # An image drawn as its own partner looks whole whatever it keeps; the shown lam stands for it.
        kept = (pixels == own).double().mean().item() if a != b else lam
        assert lam == kept
        assert ax.get_title() == f"{kept:.2f} x {a} + {1 - kept:.2f} x {b}"
        cut += kept < 1 and a != b
    assert cut >= N // 2
    assert not any(ax.get_images() for ax in fig.axes[N:])


@pytest.mark.parametrize(
    "alpha, cutmix_alpha, share, label",
    [
        (0.4, 0.0, 1.0, "folded Beta(0.4, 0.4) density"),
        (0.4, 1.0, 0.5, "Mixup's part: 0.5 x folded Beta(0.4, 0.4) density"),
        (0.0, 1.0, None, None),
    ],
    ids=["mixup", "mixup+cutmix", "cutmix"],
)
def test_lam_histogram_overlays_the_density_of_mixups_share(drawn, tmp_path, alpha, cutmix_alpha, share, label):
    """Mixup's weights follow the folded Beta density; CutMix's kept shares have none, and half the samples are cut."""
    lams = torch.linspace(0.5, 1.0, 64)
    plots.lam_histogram(tmp_path / "lam_histogram.png", lams, alpha, cutmix_alpha)
    ((ax,),) = [fig.axes for fig in drawn]
    assert len(ax.patches) == 25
    if share is None:
        assert not ax.lines and ax.get_title() == "64 CutMix kept shares drawn while training"
        return
    (line,) = ax.lines
    assert line.get_label() == label
    t = torch.as_tensor(line.get_xdata())
    expected = share * 2 * stats.beta.pdf(t.numpy(), alpha, alpha)
    assert line.get_ydata() == pytest.approx(expected, rel=1e-10)


def calibration_histories(seeds=2):
    """Per seed, the last-epoch bins of a "plain" run right 90 % of the time and an under-confident "mixup" run."""
    from mixup_collate.demo.calibration import reliability

    histories = []
    for seed in range(seeds):
        g = torch.Generator().manual_seed(seed)
        correct = torch.rand(400, generator=g) < 0.9
        plain = 0.7 + 0.3 * torch.rand(400, generator=g, dtype=torch.float64)
        mixup = 0.3 + 0.6 * torch.rand(400, generator=g, dtype=torch.float64)
        runs = {"plain": plain, "mixup": mixup}
        histories.append(
            {"seed": seed, **{run: {"calibration": reliability(c, correct).as_dict()} for run, c in runs.items()}}
        )
    return histories


class TestReliabilityDiagram:
    def test_the_picture_is_written(self, tmp_path):
        path = plots.reliability_diagram(tmp_path / "reliability.png", calibration_histories())
        assert path == tmp_path / "reliability.png" and path.stat().st_size > 10_000
        assert path.read_bytes().startswith(b"\x89PNG")

    def test_it_draws_the_pooled_bins_of_each_run_the_diagonal_and_each_bins_share(self, drawn, tmp_path):
        from mixup_collate.demo.calibration import Reliability

        histories = calibration_histories()
        plots.reliability_diagram(tmp_path / "reliability.png", histories)
        ((curve_ax, share_ax),) = [fig.axes for fig in drawn]
        diagonal, *curves = curve_ax.lines
        assert list(diagonal.get_xdata()) == [0, 1] and list(diagonal.get_ydata()) == [0, 1]
        labels = [text.get_text() for text in curve_ax.get_legend().get_texts()]
        assert labels[0] == "perfectly calibrated"
        bars = share_ax.containers
        assert len(curves) == len(bars) == 2
        for run, line, label, bar in zip(("plain", "mixup"), curves, labels[1:], bars):
            pooled = Reliability.pooled(Reliability.from_dict(h[run]["calibration"]) for h in histories)
            filled = pooled.counts > 0
            assert list(line.get_xdata()) == pytest.approx(pooled.confidence[filled].tolist())
            assert list(line.get_ydata()) == pytest.approx(pooled.accuracy[filled].tolist())
            ece = torch.tensor([h[run]["calibration"]["ece"] for h in histories], dtype=torch.float64) * 100
            assert label == f"{run}: ECE {ece.mean():.2f} ± {ece.std():.2f} %"
            heights = [patch.get_height() for patch in bar.patches]
            assert heights == pytest.approx(pooled.share[filled].tolist()) and sum(heights) == pytest.approx(1)
        assert share_ax.get_yscale() == "log"
