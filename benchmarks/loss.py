"""The mixup loss: one log_softmax and a gather, against two criterion calls and soft targets.

    python benchmarks/loss.py [--device cuda]

For B = 256 and 10, 1000 and 32000 classes, times a forward and backward pass of
``mixup_cross_entropy`` against ``lam * CE(out, y_a) + (1 - lam) * CE(out, y_b)`` (two full criterion
calls, per-sample ``lam``) and against cross-entropy on mixed one-hot targets (building them included).
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


def run(classes: list[int], batch: int, rounds: int, repeats: int, device: torch.device) -> list[dict]:
    results = []
    for k in classes:
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(batch, k, generator=g).to(device).requires_grad_()
        y_a = torch.randint(0, k, (batch,), generator=g).to(device)
        y_b = torch.randint(0, k, (batch,), generator=g).to(device)
        lam = (torch.rand(batch, generator=g) * 0.5 + 0.5).to(device)

        def step(fn, inputs=(logits, y_a, y_b, lam)):
            def go():
                for _ in range(repeats):
                    fn(*inputs).backward()
                    inputs[0].grad = None

            return go

        times = interleaved({name: step(fn) for name, fn in CASES.items()}, rounds, device)
        ref = summary(times["two criterion calls"])["median"]
        for name, ts in times.items():
            s = summary(ts)
            results.append(
                {
                    "classes": k,
                    "case": name,
                    "ms_per_step": s["median"] / repeats * 1e3,
                    "ratio_to_two_calls": s["median"] / ref,
                }
            )
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: steadier timings)")
    p.add_argument("--classes", type=int, nargs="+", default=[10, 1000, 32000])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--repeats", type=int, default=10, help="forward+backward steps per timed round")
    p.add_argument("--out", type=Path, default=RESULTS / "loss.json")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    with torch_threads(args.threads):
        results = run(args.classes, args.batch, args.rounds, args.repeats, device)
    rows = [[r["classes"], r["case"], f"{r['ms_per_step']:.3f}", f"{r['ratio_to_two_calls']:.2f}"] for r in results]
    print(f"mixup loss, forward + backward, B={args.batch}, on {device} ({args.threads} thread(s))")
    print(table(["classes", "case", "ms per step", "x two calls"], rows))
    print(f"wrote {write_json(args.out, {'machine': machine(), 'device': str(device), 'results': results})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
