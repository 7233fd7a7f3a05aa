"""Shared by the benchmarks: interleaved timing, device choice, and writing results."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def pick_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    cases: dict[Hashable, Callable[..., object]],
    rounds: int,
    device: torch.device,
    warmup: int = 2,
    setups: dict[Hashable, Callable[[], object]] | None = None,
) -> dict[Hashable, list[float]]:
    """Time every case once per round, in turn (A B C ... A B C ...), after ``warmup`` untimed rounds.

    Returns ``{name: [seconds per round]}``. Interleaving spreads slow drifts (thermal, other load)
    over all cases instead of penalising whichever ran last. A case named in ``setups`` is called
    with the result of its setup, made untimed just before it (e.g. a fresh input it consumes).
    """
    setups = setups or {}
    times: dict[Hashable, list[float]] = {name: [] for name in cases}
    for r in range(warmup + rounds):
        for name, fn in cases.items():
            args = (setups[name](),) if name in setups else ()
            sync(device)
            start = time.perf_counter()
            fn(*args)
            sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def source() -> str | None:
    """The measured code's commit, ``-dirty`` when the working tree differs (``None`` outside a git checkout)."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=RESULTS.parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def machine() -> dict[str, object]:
    info: dict[str, object] = {
        "source": source(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "load_avg_1_5_15min": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    return path


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch's CPU ops on ``count`` threads inside the block; the caller's count is restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _one_box(lam: float, height: int, width: int, generator: torch.Generator | None) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of a box with sides ``sqrt(1 - lam)`` of the image's, centred on a uniform
    pixel and clipped at the border: the box of the in-loop references, one per batch."""
    cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
    cy, cx = (
        int(torch.randint(0, height, (), generator=generator)),
        int(torch.randint(0, width, (), generator=generator)),
    )
    return max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height), max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)


def batch_cutmix(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None):
    """CutMix for segmentation the way composer applies it in the loop: one box for the whole batch.

    ``x`` ``(B, C, H, W)`` and the masks ``y`` ``(B, H, W)`` get the same box pasted from ``x[perm]`` and
    ``y[perm]`` (in place); the box covers ``1 - lam`` of the image, ``lam ~ Beta(1, 1)``, centred on a
    uniform pixel and clipped at the border. Returns ``(x, y)``, the loop then trains on the cut masks.
    """
    batch, height, width = y.shape
    lam = float(torch.rand((), generator=generator))  # Beta(1, 1) is uniform
    perm = torch.randperm(batch, generator=generator).to(x.device)
    top, bottom, left, right = _one_box(lam, height, width, generator)
    x[:, :, top:bottom, left:right] = x[perm, :, top:bottom, left:right]
    y[:, top:bottom, left:right] = y[perm, top:bottom, left:right]
    return x, y


def flipped_clip_cutmix(x: torch.Tensor, y: torch.Tensor, num_classes: int, generator: torch.Generator | None = None):
    """Video CutMix the way pytorchvideo applies it in the loop: one ``(H, W)`` box, the batch flipped as partners.

    ``x`` ``(B, ..., H, W)`` gets one box pasted from ``x.flip(0)`` into every frame (in place); the box covers
    ``1 - lam`` of the frame, ``lam ~ Beta(1, 1)``, centred on a uniform pixel and clipped; the labels become
    ``lam * one_hot(y) + (1 - lam) * one_hot(y.flip(0))`` with ``lam`` corrected to the clipped box.
    """
    height, width = x.shape[-2:]
    lam = float(torch.rand((), generator=generator))  # Beta(1, 1) is uniform
    top, bottom, left, right = _one_box(lam, height, width, generator)
    x[..., top:bottom, left:right] = x.flip(0)[..., top:bottom, left:right]
    lam = 1 - (bottom - top) * (right - left) / (height * width)
    one_hot = torch.nn.functional.one_hot(y, num_classes).float()
    return x, lam * one_hot + (1 - lam) * one_hot.flip(0)
