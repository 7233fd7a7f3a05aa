"""The mixup loss: one log_softmax and a gather, against two criterion calls and soft targets.

    python benchmarks/loss.py [--device cuda] [--dense-sizes 128 256]

For B = 256 and 10, 1000 and 32000 classes, times a forward and backward pass of
``mixup_cross_entropy`` against ``lam * CE(out, y_a) + (1 - lam) * CE(out, y_b)`` (two full criterion
calls, per-sample ``lam``) and against cross-entropy on mixed one-hot targets (building them included).

``--dense-sizes`` adds segmentation rows: B = 8, 21 classes (VOC), ``S x S`` masks with void pixels
(255) and a per-pixel CutMix ``lam`` ``(B, S, S)``; ``mixup_cross_entropy(..., ignore_index=255)`` against
two per-pixel criterion calls with the same ignore-aware mean, and against plain cross-entropy of the
pasted masks ``torch.where(lam == 1, y_a, y_b)`` (what a CutMix-only loop that cuts the masks computes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, interleaved, machine, pick_device, summary, table, torch_threads, write_json  # noqa: E402

from mixup_collate import mixup_cross_entropy  # noqa: E402


def two_calls(logits, y_a, y_b, lam):
    a = F.cross_entropy(logits, y_a, reduction="none")
    b = F.cross_entropy(logits, y_b, reduction="none")
    return (lam * a + (1 - lam) * b).mean()


def soft_targets(logits, y_a, y_b, lam):
    k = logits.shape[1]
    w = lam[:, None]
    target = w * F.one_hot(y_a, k).to(logits.dtype) + (1 - w) * F.one_hot(y_b, k).to(logits.dtype)
    return F.cross_entropy(logits, target)


CASES = {
    "mixup_cross_entropy": mixup_cross_entropy,
    "two criterion calls": two_calls,
    "soft one-hot targets": soft_targets,
}

DENSE_BATCH, DENSE_CLASSES, VOID = 8, 21, 255


def dense_two_calls(logits, y_a, y_b, lam):
    a = F.cross_entropy(logits, y_a, reduction="none", ignore_index=VOID)
    b = F.cross_entropy(logits, y_b, reduction="none", ignore_index=VOID)
    counted = lam * (y_a != VOID) + (1 - lam) * (y_b != VOID)
    return (lam * a + (1 - lam) * b).sum() / counted.sum()


def dense_pasted(logits, y_a, y_b, lam):
    return F.cross_entropy(logits, torch.where(lam == 1, y_a, y_b), ignore_index=VOID)


DENSE_CASES = {
    "mixup_cross_entropy": lambda logits, y_a, y_b, lam: mixup_cross_entropy(logits, y_a, y_b, lam, ignore_index=VOID),
    "two criterion calls": dense_two_calls,
    "CE of the pasted masks": dense_pasted,
}


def time_cases(cases, inputs, rounds: int, repeats: int, device: torch.device) -> dict:
    """Interleaved forward + backward times of each case on ``inputs`` (logits first, requiring grad)."""

    def step(fn):
        def go():
            for _ in range(repeats):
                fn(*inputs).backward()
                inputs[0].grad = None

        return go

    return interleaved({name: step(fn) for name, fn in cases.items()}, rounds, device)


def dense_inputs(size: int, device: torch.device) -> tuple:
    """Segmentation logits, two masks with void borders and a per-pixel CutMix lam (one box per sample)."""
    g = torch.Generator().manual_seed(0)
    shape = (DENSE_BATCH, size, size)
    logits = torch.randn(DENSE_BATCH, DENSE_CLASSES, size, size, generator=g)
    y_a, y_b = (torch.randint(0, DENSE_CLASSES, shape, generator=g) for _ in range(2))
    for y in (y_a, y_b):
        y[:, :2], y[:, :, -2:] = VOID, VOID
    lam = torch.ones(shape)
    lam[:, size // 4 : size // 2, size // 3 : 2 * size // 3] = 0
    return logits.to(device).requires_grad_(), y_a.to(device), y_b.to(device), lam.to(device)


def run(classes: list[int], batch: int, rounds: int, repeats: int, device: torch.device) -> list[dict]:
    results = []
    for k in classes:
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(batch, k, generator=g).to(device).requires_grad_()
        y_a = torch.randint(0, k, (batch,), generator=g).to(device)
        y_b = torch.randint(0, k, (batch,), generator=g).to(device)
        lam = (torch.rand(batch, generator=g) * 0.5 + 0.5).to(device)
        times = time_cases(CASES, (logits, y_a, y_b, lam), rounds, repeats, device)
        results += rows(times, repeats, {"classes": k})
    return results


def run_dense(sizes: list[int], rounds: int, repeats: int, device: torch.device) -> list[dict]:
    results = []
    for size in sizes:
        times = time_cases(DENSE_CASES, dense_inputs(size, device), rounds, repeats, device)
        results += rows(times, repeats, {"classes": DENSE_CLASSES, "shape": f"{DENSE_BATCH}x{size}x{size}"})
    return results


def rows(times: dict, repeats: int, key: dict) -> list[dict]:
    ref = summary(times["two criterion calls"])["median"]
    return [
        {
            **key,
            "case": name,
            "ms_per_step": summary(ts)["median"] / repeats * 1e3,
            "ratio_to_two_calls": summary(ts)["median"] / ref,
        }
        for name, ts in times.items()
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: steadier timings)")
    p.add_argument("--classes", type=int, nargs="+", default=[10, 1000, 32000])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--repeats", type=int, default=10, help="forward+backward steps per timed round")
    p.add_argument("--dense-sizes", type=int, nargs="*", default=[], help="segmentation rows: mask sides S")
    p.add_argument("--out", type=Path, default=RESULTS / "loss.json")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    with torch_threads(args.threads):
        results = run(args.classes, args.batch, args.rounds, args.repeats, device)
        results += run_dense(args.dense_sizes, args.rounds, args.repeats, device)
    lines = [
        [
            r.get("shape", f"{args.batch}"),
            r["classes"],
            r["case"],
            f"{r['ms_per_step']:.3f}",
            f"{r['ratio_to_two_calls']:.2f}",
        ]
        for r in results
    ]
    print(f"mixup loss, forward + backward, on {device} ({args.threads} thread(s))")
    print(table(["batch", "classes", "case", "ms per step", "x two calls"], lines))
    print(f"wrote {write_json(args.out, {'machine': machine(), 'device': str(device), 'results': results})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
