"""The demo's pictures: mixed training samples, the drawn ``lam`` against its density, validation curves.

A mixed-samples picture is a collate plus a title: ``first_batch`` draws one batch through the collate and
``sample_grid`` draws any ``(x, y_a, y_b, lam)`` batch with its captions, so another mixing collate gets its
picture from the same two functions. matplotlib is imported inside the functions (it is an optional extra)
and only its Agg canvas is used, so no GUI backend is touched.
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

from .data import DemoData

__all__ = ["curves", "first_batch", "folded_beta_pdf", "lam_histogram", "mixup_samples", "sample_grid", "write_all"]

COLORS = {"plain": "tab:blue", "mixup": "tab:orange"}


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


def mixup_samples(path: Path, data: DemoData, alpha: float, seed: int, count: int = 24) -> Path:
    """Training images as ``MixupCollate(alpha, seed=seed)`` mixes them, each captioned with labels and weights."""
    batch = first_batch(data.train, MixupCollate(alpha, device="cpu", seed=seed), seed, count)
    title = f"Mixed training samples (alpha = {alpha:g}): weight x label + weight x label"
    return sample_grid(path, batch, data.classes, title)


def lam_histogram(path: Path, lams: Tensor, alpha: float) -> Path:
    """Histogram of the drawn ``lam`` (1-D, density) with the folded Beta(alpha, alpha) density overlaid."""
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    heights = []
    if len(lams):
        heights, _, _ = ax.hist(lams.numpy(), bins=25, range=(0.5, 1.0), density=True, alpha=0.6, label="drawn lam")
    t = torch.linspace(0.5, 0.999, 500, dtype=torch.float64)
    pdf = folded_beta_pdf(t, alpha)
    ax.plot(t.numpy(), pdf.numpy(), color="black", label=f"folded Beta({alpha:g}, {alpha:g}) density")
    top = max([*heights, *pdf[t <= 0.98].tolist()])
    ax.set_ylim(0, 1.15 * top)
    ax.set_xlim(0.5, 1.0)
    ax.set_xlabel("lam (weight of the unshuffled sample)")
    ax.set_ylabel("density")
    ax.set_title(f"{len(lams):,} mixing weights drawn while training")
    ax.legend(loc="upper left")
    return _save(fig, path)


def _band(ax: Any, runs: list[list[float]], label: str, scale: float = 1.0) -> None:
    values = torch.tensor(runs, dtype=torch.float64) * scale
    epochs = torch.arange(1, values.shape[1] + 1).numpy()
    marker = "o" if len(epochs) <= 10 else None
    ax.plot(epochs, values.mean(0).numpy(), color=COLORS[label], label=label, marker=marker)
    ax.fill_between(epochs, values.min(0).values.numpy(), values.max(0).values.numpy(), color=COLORS[label], alpha=0.2)


def curves(path: Path, histories: list[dict]) -> Path:
    """Validation accuracy and loss per epoch, plain vs mixup: mean over seeds with a min-max band."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(11, 4.2)
    acc_ax, loss_ax = fig.subplots(1, 2)
    for run in COLORS:
        _band(acc_ax, [h[run]["val_acc"] for h in histories], run, scale=100)
        _band(loss_ax, [h[run]["val_loss"] for h in histories], run)
    n = len(histories)
    acc_ax.set_title(f"Validation accuracy (mean, min-max over {n} seed{'s' * (n != 1)})")
    acc_ax.set_ylabel("accuracy (%)")
    loss_ax.set_title("Validation loss (plain cross-entropy)")
    loss_ax.set_ylabel("loss (log scale)")
    loss_ax.set_yscale("log")
    final = [h[r]["val_acc"][-1] * 100 for h in histories for r in COLORS]
    acc_ax.set_ylim(max(0.0, min(final) - 10), min(100.0, max(final) + 2))
    epochs = len(histories[0]["plain"]["val_acc"])
    for ax in (acc_ax, loss_ax):
        ax.set_xlim(1, max(epochs, 2))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def write_all(out: Path, data: DemoData, histories: list[dict], lams: Tensor, alpha: float, seed: int) -> list[Path]:
    """Write the PNGs into ``out``: the samples mixed with ``alpha`` and ``seed``, ``lam``, the curves; their paths."""
    return [
        mixup_samples(out / "mixed_samples.png", data, alpha, seed),
        lam_histogram(out / "lam_histogram.png", lams, alpha),
        curves(out / "curves.png", histories),
    ]
