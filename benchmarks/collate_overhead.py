"""Per-batch cost of ``MixupCollate`` against the plain collate, and where its time goes.

    python benchmarks/collate_overhead.py                   # B in {32, 64, 128, 512} at 3x32x32 and 3x224x224
    python benchmarks/collate_overhead.py --max-mb 400      # also 512x3x224x224 (308 MB per float32 batch)
    python benchmarks/collate_overhead.py --device cuda     # the mix (``apply``) on a GPU

For every case (``B`` samples of 3xSxS, float32 or uint8, one list of ``(tensor, int)`` built once),
on one CPU thread (what a DataLoader worker or a busy main process gives a batch), interleaved over
rounds, medians:

* ``plain``: ``default_collate``, moved to the device, ``x.float().div_(255)`` for uint8: a float32
  batch in [0, 1] on the device, what a loop without mixing starts from.
* ``ours``: ``MixupCollate(device=..., seed=0)(samples).finish()``: the same product, mixed.
* Its parts: ``stack_samples`` (the collate's stacking in the main process), ``draw`` (the random
  parameters, on a stacked batch) and ``apply`` (move and mix, on a fresh stack made untimed).
* The stacking references: ``default_collate`` alone and ``torch.stack`` of the inputs (the copy floor).

Prints a table with ``ours / plain`` and writes ``benchmarks/results/collate_overhead.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import default_collate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, interleaved, machine, summary, table, torch_threads, write_json  # noqa: E402

from mixup_collate import MixupCollate  # noqa: E402
from mixup_collate.stack import stack_samples  # noqa: E402

CASES = ["plain", "ours", "stack_samples", "draw", "apply", "default_collate", "torch.stack"]


def make_samples(batch: int, side: int, dtype: torch.dtype) -> list[tuple[torch.Tensor, int]]:
    """``batch`` separate ``(3, side, side)`` images (floats in [0, 1] or uint8) with class indices."""
    g = torch.Generator().manual_seed(0)
    shape = (batch, 3, side, side)
    if dtype == torch.uint8:
        xs = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    else:
        xs = torch.rand(shape, generator=g, dtype=dtype)
    return [(xs[i].clone(), i % 1000) for i in range(batch)]


def cases(samples: list[tuple[torch.Tensor, int]], device: torch.device) -> tuple[dict, dict]:
    """The timed functions for one sample list, and the untimed setups (``apply`` consumes a fresh stack)."""
    collate = MixupCollate(device=device, seed=0)
    pinned = device.type == "cuda"  # as the collate stacks in the main process for a CUDA target
    widen = samples[0][0].dtype == torch.uint8
    inputs = [s[0] for s in samples]
    stacked = stack_samples(samples, pinned=pinned)  # draw reads its shape and targets only

    def plain():
        x, y = default_collate(samples)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return (x.float().div_(255) if widen else x), y

    def fresh_stack():
        fresh = stack_samples(samples, pinned=pinned)
        return fresh, collate.draw(fresh)

    timed: dict[str, Callable[..., object]] = {
        "plain": plain,
        "ours": lambda: collate(samples).finish(),
        "stack_samples": lambda: stack_samples(samples, pinned=pinned),
        "draw": lambda: collate.draw(stacked),
        "apply": lambda ready: collate.apply(*ready),
        "default_collate": lambda: default_collate(samples),
        "torch.stack": lambda: torch.stack(inputs),
    }
    return timed, {"apply": fresh_stack}


def grid(batch_sizes: list[int], sides: list[int], max_mb: float) -> tuple[list[tuple[int, int]], list[str]]:
    """The ``(batch, side)`` cases to run, and the skipped ones (float32 batch over ``max_mb``), described."""
    run, skipped = [], []
    for side in sides:
        for batch in batch_sizes:
            mb = batch * 3 * side * side * 4 / 1e6
            if mb > max_mb:
                skipped.append(f"{batch}x3x{side}x{side} ({mb:.0f} MB as float32; raise --max-mb to run it)")
            else:
                run.append((batch, side))
    return run, skipped


def run(cells: list[tuple[int, int]], rounds: int, device: torch.device) -> list[dict]:
    results = []
    for batch, side in cells:
        for dtype in (torch.float32, torch.uint8):
            timed, setups = cases(make_samples(batch, side, dtype), device)
            times = interleaved(timed, rounds, device, setups=setups)
            seconds = {name: summary(times[name]) for name in CASES}
            results.append(
                {
                    "batch": batch,
                    "shape": [3, side, side],
                    "dtype": str(dtype).removeprefix("torch."),
                    "seconds": seconds,
                    "ours_over_plain": seconds["ours"]["median"] / seconds["plain"]["median"],
                    "stack_over_default_collate": (
                        seconds["stack_samples"]["median"] / seconds["default_collate"]["median"]
                    ),
                }
            )
            print(f"  done: {batch}x3x{side}x{side} {dtype}", flush=True)
    return results


def format_table(results: list[dict]) -> str:
    rows = []
    for r in results:
        us = {name: r["seconds"][name]["median"] * 1e6 for name in CASES}
        rows.append(
            ["x".join(map(str, r["shape"])), r["dtype"], r["batch"], f"{us['plain']:.0f}", f"{us['ours']:.0f}"]
            + [f"{r['ours_over_plain']:.2f}"]
            + [f"{us[name]:.0f}" for name in CASES[2:]]
            + [f"{r['stack_over_default_collate']:.2f}"]
        )
    headers = ["sample", "dtype", "B", "plain", "ours", "ours / plain", *CASES[2:], "stack / default_collate"]
    return table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="where the collate mixes (default cpu; cuda: apply on the GPU)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 512])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 224], help="image sides (3 x S x S)")
    p.add_argument("--max-mb", type=float, default=256, help="skip cases whose float32 batch is larger (MB)")
    p.add_argument("--rounds", type=int, default=21, help="timed rounds (after two warm-up rounds)")
    p.add_argument("--out", type=Path, default=RESULTS / "collate_overhead.json")
    args = p.parse_args(argv)
    if args.rounds < 1 or any(b < 1 for b in args.batch_sizes) or any(s < 1 for s in args.sizes):
        p.error("--rounds, --batch-sizes and --sizes must be positive")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: no CUDA device here")
    cells, skipped = grid(args.batch_sizes, args.sizes, args.max_mb)
    for note in skipped:
        print(f"skipped: {note}")
    with torch_threads(1):
        results = run(cells, args.rounds, device)
        info = machine()
    print(f"collate overhead on {device}: median us per batch, 1 thread, {args.rounds} interleaved rounds")
    print(format_table(results))
    path = write_json(
        args.out,
        {
            "machine": info,
            "device": str(device),
            "args": vars(args) | {"out": str(args.out)},
            "skipped": skipped,
            "results": results,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
