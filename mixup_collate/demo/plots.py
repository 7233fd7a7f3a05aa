"""The demo's pictures: Mixup and CutMix training samples, the drawn ``lam`` against its density, validation curves,
and the reliability diagram with each run's confidence histogram.

A samples picture is a collate plus a title (``samples_picture``): ``first_batch`` draws one batch through the
collate and ``sample_grid`` draws any ``(x, y_a, y_b, lam)`` batch with its captions. Both sample pictures are
always drawn, from the same images and seed, whichever mixing the run trains with. matplotlib is imported
inside the functions (it is an optional extra) and only its Agg canvas is used, so no GUI backend is touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from mixup_collate import MixupCollate

from .calibration import Reliability
from .data import DemoData
from .training import PLAIN, SWITCH_PROB, run_names

__all__ = [
    "curves",
    "cutmix_samples",
    "first_batch",
    "folded_beta_pdf",
    "lam_histogram",
    "mixup_samples",
    "reliability_diagram",
    "sample_grid",
    "samples_picture",
    "write_all",
]

COLORS = {"plain": "tab:blue", "mixup": "tab:orange", "cutmix": "tab:green", "mixup+cutmix": "tab:red"}
# The concentrations a samples picture shows when the run trains without that method (0 on the command line).
PICTURE_ALPHA = 0.4
PICTURE_CUTMIX_ALPHA = 1.0


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    return path


def folded_beta_pdf(t: Tensor, alpha: float) -> Tensor:
    """Density of ``max(L, 1 - L)`` for ``L ~ Beta(alpha, alpha)`` on ``[0.5, 1]``: twice the Beta density."""
    log_beta = 2 * math.lgamma(alpha) - math.lgamma(2 * alpha)
    return 2 * torch.exp((alpha - 1) * (t.log() + (1 - t).log()) - log_beta)


def _short(name: str, limit: int = 14) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _caption(lam: float, a: str, b: str, two_lines: bool) -> str:
    """``0.70 x 3 + 0.30 x 7``, broken before the ``+`` for class names longer than a digit or two."""
    sep = "\n" if two_lines else " "
    return f"{lam:.2f} x {_short(a)}{sep}+ {1 - lam:.2f} x {_short(b)}"


def first_batch(ds: Dataset, collate: Callable, seed: int, count: int) -> Any:
    """The first batch of ``count`` samples of ``ds``, shuffled with ``seed``, through ``collate``."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(ds, batch_size=count, shuffle=True, generator=generator, collate_fn=collate)
    return next(iter(loader))


def sample_grid(path: Path, batch: Any, classes: list[str], title: str, cols: int = 6) -> Path:
    """A grid of mixed images, each captioned ``0.70 x 3 + 0.30 x 7``.

    ``batch`` is ``(x, y_a, y_b, lam)`` on the CPU: ``x`` float ``(N, C, H, W)`` in ``[0, 1]`` with 1 or 3
    channels, ``y_a``, ``y_b`` class indices into ``classes`` and ``lam`` the weight of ``y_a``, each ``(N,)``.
    """
    x, y_a, y_b, lam = batch
    rows = math.ceil(len(x) / cols)
    two_lines = max(len(c) for c in classes) > 2
    fig = _figure(2.0 * cols, (2.3 if two_lines else 2.15) * rows + 0.4)
    fig.suptitle(title)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= len(x):
            continue
        img = x[i].clamp(0, 1)
        img = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
        ax.imshow(img.numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(_caption(lam[i].item(), classes[y_a[i]], classes[y_b[i]], two_lines), fontsize=9)
    return _save(fig, path)


def samples_picture(
    path: Path, data: DemoData, collate: MixupCollate, seed: int, title: str, count: int = 24
) -> tuple[Path, dict[str, list]]:
    """Draw ``count`` training images through ``collate`` (shuffled with ``seed``) into a captioned grid.

    Returns the path and what each image shows, for ``results.json``: ``label_a`` (its own class),
    ``label_b`` (its partner's) and ``lam`` (the weight of ``label_a``), one entry per image.
    """
    batch = first_batch(data.train, collate, seed, count)
    shown = {
        "label_a": [data.classes[i] for i in batch.y_a.tolist()],
        "label_b": [data.classes[i] for i in batch.y_b.tolist()],
        "lam": batch.lam.tolist(),
    }
    return sample_grid(path, batch, data.classes, title), shown


def _unused(trained: bool) -> str:
    return "" if trained else ", not used in this run's training"


def mixup_samples(
    path: Path, data: DemoData, alpha: float, seed: int, trained: bool = True
) -> tuple[Path, dict[str, list]]:
    """Training images as ``MixupCollate(alpha, seed=seed)`` blends them, each captioned with labels and weights.

    ``trained`` False notes in the title that the run trains without Mixup. Returns what ``samples_picture`` does.
    """
    title = f"Mixed training samples (alpha = {alpha:g}{_unused(trained)}): weight x label + weight x label"
    return samples_picture(path, data, MixupCollate(alpha, device="cpu", seed=seed), seed, title)


def cutmix_samples(
    path: Path, data: DemoData, cutmix_alpha: float, seed: int, trained: bool = True
) -> tuple[Path, dict[str, list]]:
    """Training images with a box pasted from a partner by ``MixupCollate(0, cutmix_alpha=cutmix_alpha)``.

    Each image is captioned ``lam x label + (1 - lam) x partner's label``, ``lam`` the share of the image it
    keeps. ``trained`` False notes in the title that the run trains without CutMix. Returns what
    ``samples_picture`` does.
    """
    collate = MixupCollate(0, cutmix_alpha=cutmix_alpha, device="cpu", seed=seed)
    title = (
        f"CutMix training samples (cutmix_alpha = {cutmix_alpha:g}{_unused(trained)}): "
        "share kept x label + share pasted x partner's label"
    )
    return samples_picture(path, data, collate, seed, title)


def lam_histogram(path: Path, lams: Tensor, alpha: float, cutmix_alpha: float = 0.0) -> Path:
    """Histogram of the drawn ``lam`` (1-D, density) with the folded Beta(alpha, alpha) density of Mixup's part.

    A CutMix sample's ``lam`` is the share of its image it keeps, in whole pixels and with boxes clipped at the
    border: it has no closed-form density. With both on, the curve is Mixup's part of the histogram, the
    density times the share of samples blended (``1 - SWITCH_PROB``); with Mixup off there is no curve.
    """
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    heights = []
    if len(lams):
        heights, _, _ = ax.hist(lams.numpy(), bins=25, range=(0.5, 1.0), density=True, alpha=0.6, label="drawn lam")
    curve = []
    if alpha > 0:
        t = torch.linspace(0.5, 0.999, 500, dtype=torch.float64)
        share = 1 - SWITCH_PROB if cutmix_alpha > 0 else 1.0
        pdf = share * folded_beta_pdf(t, alpha)
        label = f"folded Beta({alpha:g}, {alpha:g}) density"
        ax.plot(
            t.numpy(), pdf.numpy(), color="black", label=label if share == 1 else f"Mixup's part: {share:g} x {label}"
        )
        curve = pdf[t <= 0.98].tolist()
    ax.set_ylim(0, 1.15 * max([*heights, *curve], default=1.0))
    ax.set_xlim(0.5, 1.0)
    if cutmix_alpha > 0:
        ax.set_xlabel("lam (weight of the unshuffled sample; under CutMix, the share of it kept)")
        what = "Mixup weights and CutMix kept shares" if alpha > 0 else "CutMix kept shares"
    else:
        ax.set_xlabel("lam (weight of the unshuffled sample)")
        what = "mixing weights"
    ax.set_title(f"{len(lams):,} {what} drawn while training")
    ax.legend(loc="upper left")
    return _save(fig, path)


def _band(ax: Any, runs: list[list[float]], label: str, scale: float = 1.0) -> None:
    values = torch.tensor(runs, dtype=torch.float64) * scale
    epochs = torch.arange(1, values.shape[1] + 1).numpy()
    marker = "o" if len(epochs) <= 10 else None
    ax.plot(epochs, values.mean(0).numpy(), color=COLORS[label], label=label, marker=marker)
    ax.fill_between(epochs, values.min(0).values.numpy(), values.max(0).values.numpy(), color=COLORS[label], alpha=0.2)


def curves(path: Path, histories: list[dict]) -> Path:
    """Validation accuracy and loss per epoch, plain vs the mixed run: mean over seeds with a min-max band."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(11, 4.2)
    acc_ax, loss_ax = fig.subplots(1, 2)
    runs = run_names(histories[0])
    for run in runs:
        _band(acc_ax, [h[run]["val_acc"] for h in histories], run, scale=100)
        _band(loss_ax, [h[run]["val_loss"] for h in histories], run)
    n = len(histories)
    acc_ax.set_title(f"Validation accuracy (mean, min-max over {n} seed{'s' * (n != 1)})")
    acc_ax.set_ylabel("accuracy (%)")
    loss_ax.set_title("Validation loss (plain cross-entropy)")
    loss_ax.set_ylabel("loss (log scale)")
    loss_ax.set_yscale("log")
    final = [h[r]["val_acc"][-1] * 100 for h in histories for r in runs]
    acc_ax.set_ylim(max(0.0, min(final) - 10), min(100.0, max(final) + 2))
    epochs = len(histories[0][PLAIN]["val_acc"])
    for ax in (acc_ax, loss_ax):
        ax.set_xlim(1, max(epochs, 2))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def reliability_diagram(path: Path, histories: list[dict]) -> Path:
    """Accuracy against mean confidence per bin for each run, over the share of predictions per bin.

    The bins of every seed's last-epoch validation predictions are pooled per run (``histories`` from
    ``run_experiment``); the legend gives each run's ECE as mean ± std over seeds. Top: the reliability
    curves and the diagonal (perfect calibration); bottom: each run's confidence histogram (log scale).
    """
    runs = run_names(histories[0])
    pooled = {run: Reliability.pooled(Reliability.from_dict(h[run]["calibration"]) for h in histories) for run in runs}
    fig = _figure(7.0, 7.6)
    curve_ax, share_ax = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.6))
    curve_ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1, label="perfectly calibrated")
    edges = pooled[PLAIN].edges
    width = (edges[1] - edges[0]).item() / len(runs)
    for i, run in enumerate(runs):
        bins = pooled[run]
        filled = bins.counts > 0
        ece = torch.tensor([h[run]["calibration"]["ece"] for h in histories], dtype=torch.float64) * 100
        spread = f" ± {ece.std().item():.2f}" if len(ece) > 1 else ""
        label = f"{run}: ECE {ece.mean().item():.2f}{spread} %"
        color = COLORS.get(run)
        curve_ax.plot(
            bins.confidence[filled].numpy(), bins.accuracy[filled].numpy(), marker="o", color=color, label=label
        )
        left = edges[:-1][filled] + i * width
        share_ax.bar(left.numpy(), bins.share[filled].numpy(), width=width, align="edge", color=color, label=run)
    n = len(histories)
    curve_ax.set_title(
        f"Reliability at the last epoch: validation predictions per confidence bin\n"
        f"({len(edges) - 1} bins, {n} seed{'s' * (n != 1)} pooled; ECE mean{' ± std' * (n > 1)} over seeds)"
    )
    curve_ax.set_ylabel("accuracy in the bin")
    curve_ax.set_ylim(0, 1.02)
    curve_ax.legend(loc="best")
    share_ax.set_yscale("log")
    share_ax.set_ylabel("share of predictions")
    share_ax.set_xlabel("confidence of the predicted class (top: mean in the bin; bottom: the bin)")
    share_ax.set_xlim(0, 1)
    share_ax.legend(loc="upper left")
    for ax in (curve_ax, share_ax):
        ax.set_xticks(edges[::3].tolist())
        ax.grid(alpha=0.3)
    return _save(fig, path)


def write_all(
    out: Path, data: DemoData, histories: list[dict], lams: Tensor, alpha: float, cutmix_alpha: float, seed: int
) -> tuple[list[Path], dict[str, dict]]:
    """Write the PNGs into ``out``: Mixup and CutMix samples drawn with ``seed``, ``lam``, the curves, reliability.

    The sample pictures use the run's ``alpha`` and ``cutmix_alpha``, or ``PICTURE_ALPHA`` and
    ``PICTURE_CUTMIX_ALPHA`` for a method the run leaves off (0). Returns the paths, and per sample picture
    its concentration, whether the run trains with it, and what it shows (see ``samples_picture``).
    """
    mixup_alpha = alpha if alpha > 0 else PICTURE_ALPHA
    box_alpha = cutmix_alpha if cutmix_alpha > 0 else PICTURE_CUTMIX_ALPHA
    mixed, mixed_shown = mixup_samples(out / "mixed_samples.png", data, mixup_alpha, seed, trained=alpha > 0)
    cut, cut_shown = cutmix_samples(out / "cutmix_samples.png", data, box_alpha, seed, trained=cutmix_alpha > 0)
    samples = {
        mixed.name: {"alpha": mixup_alpha, "trained": alpha > 0, **mixed_shown},
        cut.name: {"cutmix_alpha": box_alpha, "trained": cutmix_alpha > 0, **cut_shown},
    }
    paths = [
        mixed,
        cut,
        lam_histogram(out / "lam_histogram.png", lams, alpha, cutmix_alpha),
        curves(out / "curves.png", histories),
        reliability_diagram(out / "reliability.png", histories),
    ]
    return paths, samples
