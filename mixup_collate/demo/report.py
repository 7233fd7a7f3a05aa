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

__all__ = ["format_table", "lam_summary", "summarize", "verdict", "write_json"]


def _stats(values: Sequence[float]) -> dict[str, Any]:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": list(values)}


def _mixed(summary: dict[str, dict]) -> str:
    """The name of the summary's mixed run (the one that is not "plain")."""
    (name,) = (run for run in summary if run != PLAIN)
    return name


def summarize(histories: list[dict]) -> dict[str, dict]:
    """Best and final validation accuracy and final validation loss of each run over seeds: mean, sample std, values.

    Keyed by run name, "plain" first, as in ``histories``.
    """
    return {
        run: {
            "best_val_acc": _stats([max(h[run]["val_acc"]) for h in histories]),
            "final_val_acc": _stats([h[run]["val_acc"][-1] for h in histories]),
            "final_val_loss": _stats([h[run]["val_loss"][-1] for h in histories]),
        }
        for run in run_names(histories[0])
    }


def format_table(summary: dict[str, dict]) -> str:
    """The terminal table: mean ± std over seeds (accuracy in %), one row per run, named as in ``summary``."""
    width = max(8, *map(len, summary))
    lines = [f"{'':{width}}{'best val acc':>18}{'final val acc':>18}{'final val loss':>18}"]
    for run in summary:
        s = summary[run]
        acc = [f"{100 * s[k]['mean']:.2f} ± {100 * s[k]['std']:.2f} %" for k in ("best_val_acc", "final_val_acc")]
        loss = f"{s['final_val_loss']['mean']:.3f} ± {s['final_val_loss']['std']:.3f}"
        lines.append(f"{run:{width}}{acc[0]:>18}{acc[1]:>18}{loss:>18}")
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

    ``lam`` goes in as a histogram; ``samples`` holds, per sample picture, what it shows (from :func:`plots.write_all`).
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
