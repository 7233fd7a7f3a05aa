"""The host's fixed cost per batch: stack + draw + finish on samples so small that moving data costs nothing.

    python benchmarks/fixed_cost.py                  # B=128 samples of 3x1x1, one thread, on the CPU
    python benchmarks/fixed_cost.py --device cuda    # finished on a GPU (the host's launch cost)

On 3x1x1 samples (float32 images, class indices; for the dense row a uint8 (1, 1) mask per sample)
what remains is what the main process of a GPU training loop pays per batch whatever the image size:
Python, argument checks and the tensor operations themselves. Every case is timed in turn, round
after round (interleaved: a round is ``--repeats`` consecutive batches of one case, as a loop makes
them), on one torch thread; medians of the per-batch time. ``default_collate`` is the reference.

Cases: ``mixup`` (alpha=0.4), ``cutmix`` (cutmix_alpha=1.0), ``switched`` (both, switch_prob=0.5,
prob=0.8) and ``dense switched`` (the same with ``dense_targets=True``). Next to each ratio, the
number of tensor operations one batch dispatches (torch's ATen calls, counted with a dispatch mode):
on a GPU each is about one kernel launch.

Writes ``benchmarks/results/fixed_cost.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import default_collate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, interleaved, machine, pick_device, summary, table, torch_threads, write_json  # noqa: E402

from mixup_collate import MixupCollate  # noqa: E402

MODES = {
    "mixup": dict(alpha=0.4),
    "cutmix": dict(alpha=0, cutmix_alpha=1.0),
    "switched": dict(alpha=0.8, cutmix_alpha=1.0, prob=0.8),
    "dense switched": dict(alpha=0.8, cutmix_alpha=1.0, prob=0.8, dense_targets=True),
}


class OpCounter(TorchDispatchMode):
    """Counts the ATen operations dispatched inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def samples(batch: int, dense: bool) -> list[tuple[torch.Tensor, object]]:
    g = torch.Generator().manual_seed(0)
    images = torch.rand((batch, 3, 1, 1), generator=g)
    if dense:
        masks = torch.randint(0, 4, (batch, 1, 1), dtype=torch.uint8, generator=g)
        return [(images[i].clone(), masks[i].clone()) for i in range(batch)]
    return [(images[i].clone(), i % 10) for i in range(batch)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=10, help="consecutive batches per case and round")
    parser.add_argument("--out", type=Path, default=RESULTS / "fixed_cost.json")
    args = parser.parse_args(argv)
    device = pick_device(args.device)

    data = {dense: samples(args.batch, dense) for dense in (False, True)}
    collates = {name: MixupCollate(**cfg, device=device, seed=0) for name, cfg in MODES.items()}

    def ours(name: str):
        return lambda: collates[name](data["dense" in name]).finish()

    def repeated(fn):
        def run():
            for _ in range(args.repeats):
                fn()

        return run

    cases = {"default_collate": lambda: default_collate(data[False])} | {name: ours(name) for name in MODES}
    with torch_threads(1):
        times = interleaved({k: repeated(f) for k, f in cases.items()}, args.rounds, device, warmup=3)
    times = {k: [t / args.repeats for t in v] for k, v in times.items()}
    operations = {}
    for name in MODES:
        with OpCounter() as counter:
            ours(name)()
        operations[name] = counter.count

    base = summary(times["default_collate"])["median"]
    rows, results = [], []
    for name in MODES:
        median = summary(times[name])["median"]
        rows.append([name, f"{median * 1e6:.0f}", f"{base * 1e6:.0f}", f"{median / base:.2f}", operations[name]])
        results.append({"mode": name, "us": median * 1e6, "default_collate_us": base * 1e6,
                        "ratio": median / base, "tensor_ops": operations[name]})  # fmt: skip
    print(f"fixed cost per batch on {device}: B={args.batch} samples of 3x1x1, 1 thread, {args.rounds} rounds of "
          f"{args.repeats} batches, medians")  # fmt: skip
    print(table(["mode", "us", "default_collate us", "ratio", "tensor ops"], rows))
    write_json(args.out, {"machine": machine(), "device": str(device), "batch": args.batch, "results": results})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
