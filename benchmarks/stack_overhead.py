"""Per-batch cost of ``stack_samples`` against ``default_collate`` and a bare ``torch.stack``.

    python benchmarks/stack_overhead.py [--batch-sizes 32 128 512] [--sizes 32 224] [--rounds 21]

On one list of ``(tensor, int)`` samples per case (3xSxS, float32 and uint8), times, interleaved
and on one thread: ``stack_samples`` (main process: plain buffer), ``default_collate`` (what a
DataLoader does without a custom collate) and ``torch.stack`` of the inputs alone (the copy floor).
Prints medians in microseconds; nothing is written.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import default_collate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, table  # noqa: E402

from mixup_collate.stack import stack_samples  # noqa: E402


def make_samples(batch: int, side: int, dtype: torch.dtype) -> list[tuple[torch.Tensor, int]]:
    g = torch.Generator().manual_seed(0)
    xs = (torch.rand((batch, 3, side, side), generator=g) * 255).to(dtype)
    return [(xs[i].clone(), i % 1000) for i in range(batch)]


def cases(samples: list[tuple[torch.Tensor, int]]) -> dict[str, Callable[[], object]]:
    inputs = [s[0] for s in samples]
    return {
        "stack_samples": lambda: stack_samples(samples),
        "default_collate": lambda: default_collate(samples),
        "torch.stack": lambda: torch.stack(inputs),
    }


def run(batch_sizes, sides, rounds: int, make_cases=cases) -> list[dict]:
    results = []
    for side in sides:
        for dtype in (torch.float32, torch.uint8):
            for batch in batch_sizes:
                times = interleaved(make_cases(make_samples(batch, side, dtype)), rounds, torch.device("cpu"))
                medians = {name: statistics.median(ts) * 1e6 for name, ts in times.items()}
                results.append({"batch": batch, "shape": [3, side, side], "dtype": str(dtype)[6:], "us": medians})
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 224], help="image sides (3 x S x S)")
    p.add_argument("--rounds", type=int, default=21)
    args = p.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = run(args.batch_sizes, args.sizes, args.rounds)
    finally:
        torch.set_num_threads(threads)
    names = list(results[0]["us"])
    rows = [
        ["x".join(map(str, r["shape"])), r["dtype"], r["batch"]]
        + [f"{r['us'][n]:.0f}" for n in names]
        + [f"{r['us']['stack_samples'] / r['us']['default_collate']:.2f}"]
        for r in results
    ]
    print(f"median us per batch, 1 thread, {args.rounds} interleaved rounds")
    print(table(["sample", "dtype", "B", *names, "stack_samples / default_collate"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
