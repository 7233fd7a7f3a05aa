"""The demo's results: a summary over seeds, the terminal table, the verdict line and ``results.json``."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .training import PLAIN, run_names

__all__ = ["calibration_verdict", "format_table", "lam_summary", "summarize", "verdict", "write_json"]


def _stats(values: Sequence[float]) -> dict[str, Any]:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": list(values)}


def _mixed(summary: dict[str, dict]) -> str:
    """The name of the summary's mixed run (the one that is not "plain")."""
    (name,) = (run for run in summary if run != PLAIN)
    return name


def summarize(histories: list[dict]) -> dict[str, dict]:
    """Each run's best and final validation accuracy, final validation loss, and last-epoch ECE and mean confidence.

    Over seeds: mean, sample std, values. Keyed by run name, "plain" first, as in ``histories``.
    """
    return {
        run: {
            "best_val_acc": _stats([max(h[run]["val_acc"]) for h in histories]),
            "final_val_acc": _stats([h[run]["val_acc"][-1] for h in histories]),
            "final_val_loss": _stats([h[run]["val_loss"][-1] for h in histories]),
            "final_ece": _stats([h[run]["calibration"]["ece"] for h in histories]),
            "final_confidence": _stats([h[run]["calibration"]["mean_confidence"] for h in histories]),
        }
        for run in run_names(histories[0])
    }


def _percent(stats: dict[str, Any]) -> str:
    return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f} %"


def format_table(summary: dict[str, dict]) -> str:
    """The terminal table: mean ± std over seeds (accuracy, ECE and confidence in %), one row per run.

    Rows are named as in ``summary``; "final conf" is the mean confidence of the predicted class.
    """
    width = max(8, *map(len, summary))
    titles = ("best val acc", "final val acc", "final val loss", "final ECE", "final conf")
    lines = [f"{'':{width}}" + "".join(f"{title:>18}" for title in titles)]
    for run in summary:
        s = summary[run]
        loss = f"{s['final_val_loss']['mean']:.3f} ± {s['final_val_loss']['std']:.3f}"
        cells = [_percent(s["best_val_acc"]), _percent(s["final_val_acc"]), loss]
        cells += [_percent(s["final_ece"]), _percent(s["final_confidence"])]
        lines.append(f"{run:{width}}" + "".join(f"{cell:>18}" for cell in cells))
    return "\n".join(lines)


def verdict(summary: dict[str, dict], n_seeds: int) -> str:
    """One honest line: did the mixed run raise the final validation accuracy, did it raise the validation loss.

    The line names the mixed run ("mixup", "cutmix", ...). A difference counts as clear when it exceeds the
    larger seed-to-seed standard deviation (needs 2+ seeds).
    """
    name = _mixed(summary)
    plain, mixed = summary[PLAIN], summary[name]
    diff = 100 * (mixed["final_val_acc"]["mean"] - plain["final_val_acc"]["mean"])
    noise = 100 * max(plain["final_val_acc"]["std"], mixed["final_val_acc"]["std"])
    clear = n_seeds > 1 and abs(diff) > noise
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    if diff > 0:
        acc = f"{name} raised final validation accuracy by {diff:+.2f} points"
    elif diff < 0:
        acc = f"{name} lowered final validation accuracy by {-diff:.2f} points"
    else:
        acc = f"{name} left final validation accuracy unchanged"
    if n_seeds == 1:
        acc += " (1 seed: too few to tell an effect from noise)"
    else:
        acc += f" ({seeds})" if clear or diff == 0 else f" ({seeds}, within the seed-to-seed std of {noise:.2f})"
    lp, lm = plain["final_val_loss"]["mean"], mixed["final_val_loss"]["mean"]
    loss_up = lm > lp
    loss = f"{'raised' if loss_up else 'did not raise'} validation loss ({lm:.3f} vs {lp:.3f})"
    gain = clear and diff > 0
    if gain and loss_up:
        tail = "as the reference describes"
    elif loss_up:
        tail = "the reference's higher loss but not a clear accuracy gain here"
    elif gain:
        tail = "a clear accuracy gain but not the reference's higher loss"
    else:
        tail = "unlike the reference (higher accuracy, higher validation loss)"
    return f"Verdict: {acc} and {loss}: {tail}."


def calibration_verdict(summary: dict[str, dict], n_seeds: int) -> str:
    """One line on calibration at the last epoch: which run has the lower ECE, and is the difference clear.

    Clear, as in ``verdict``, means above the larger seed-to-seed std of the ECE (needs 2+ seeds). The
    line then compares the mixed run's mean confidence with plain's and with its own accuracy (under- or
    over-confident).
    """
    name = _mixed(summary)
    plain, mixed = summary[PLAIN], summary[name]
    ece = {run: 100 * summary[run]["final_ece"]["mean"] for run in (PLAIN, name)}
    diff = ece[name] - ece[PLAIN]
    noise = 100 * max(plain["final_ece"]["std"], mixed["final_ece"]["std"])
    if diff == 0:
        head = f"{PLAIN} and {name} are equally calibrated (final ECE {ece[PLAIN]:.2f} % each"
    else:
        better, worse = (name, PLAIN) if diff < 0 else (PLAIN, name)
        head = f"{better} is better calibrated (final ECE {ece[better]:.2f} % vs {worse}'s {ece[worse]:.2f} %"
    if n_seeds == 1:
        head += ", 1 seed: too few to tell an effect from noise)"
    elif diff == 0:
        head += f", {n_seeds} seeds)"
    else:
        side = "above" if abs(diff) > noise else "within"
        head += f", {n_seeds} seeds: a difference of {abs(diff):.2f} points, {side} the seed-to-seed std"
        head += f" of {noise:.2f})"
    conf_m, conf_p = 100 * mixed["final_confidence"]["mean"], 100 * plain["final_confidence"]["mean"]
    acc_m = 100 * mixed["final_val_acc"]["mean"]
    level = "as confident as" if conf_m == conf_p else f"{'less' if conf_m < conf_p else 'more'} confident than"
    if conf_m < acc_m:
        fit = f"below its accuracy of {acc_m:.2f} %: under-confident"
    elif conf_m > acc_m:
        fit = f"above its accuracy of {acc_m:.2f} %: over-confident"
    else:
        fit = f"equal to its accuracy of {acc_m:.2f} %"
    tail = f"{name}'s predictions are {level} {PLAIN}'s (mean confidence {conf_m:.2f} % vs {conf_p:.2f} %)"
    return f"Calibration: {head}; {tail}, {fit}."


def lam_summary(lams: Tensor, bins: int = 25) -> dict[str, Any]:
    """Counts of the drawn ``lam`` (1-D) on ``[0.5, 1]`` (the full draws are summarized, not stored)."""
    counts = torch.histc(lams.float(), bins=bins, min=0.5, max=1.0) if len(lams) else torch.zeros(bins)
    edges = torch.linspace(0.5, 1.0, bins + 1)
    mean = lams.mean().item() if len(lams) else 0.5
    return {"count": len(lams), "mean": mean, "edges": edges.tolist(), "counts": counts.tolist()}


def write_json(
    path: Path,
    config: dict[str, Any],
    histories: list[dict],
    summary: dict[str, dict],
    verdict_line: str,
    lams: Tensor,
    samples: dict[str, dict],
    elapsed_s: float,
) -> Path:
    """Write everything the run measured to ``path``; return the path.

    ``lam`` goes in as a histogram; ``samples`` holds, per sample picture, what it shows (from ``plots.write_all``).
    """
    results = {
        "config": config,
        "histories": histories,
        "summary": summary,
        "verdict": verdict_line,
        "lam": lam_summary(lams),
        "samples": samples,
        "elapsed_s": elapsed_s,
    }
    path.write_text(json.dumps(results, indent=2))
    return path
