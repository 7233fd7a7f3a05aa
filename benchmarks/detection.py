"""Detection batches: the collate's cost and the loader's throughput, against stacking and dataset-level mixing.

    python benchmarks/detection.py                        # uint8 3x640x640, B=8, ~10 boxes per image, CPU
    python benchmarks/detection.py --device cuda --workers 0 4

Samples are generated ``(image uint8 (3, S, S), {"boxes", "labels"})`` pairs with about 10 boxes each. Every
strategy ends with float32 images in ``[0, 1]`` on the device and one target dict per image there:

* ``stack``: the images stacked, the targets a list (what a detection loop's collate does), then moved.
* ``dataset_mixup``: Mixup written the way YOLOX and ultralytics mix, in the dataset: every item loads a second
  random sample and blends the two on the CPU (boxes concatenated), then ``stack``.
* ``ours_mixup`` / ``ours_cutmix``: ``MixupCollate(box_targets=True)``, mixed per sample at first use.

Part 1 (``collate``) times loading ``B`` samples and collating them, one thread, interleaved rounds, medians
(loading is included because dataset-level mixing does its work there; ``load_only`` is that share).
Part 2 (``loader``) times whole epochs through a ``DataLoader`` (samples/s, interleaved rounds), for each
``--workers``. Writes ``benchmarks/results/detection.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, interleaved, machine, pick_device, summary, sync, table, torch_threads, write_json  # noqa: E402

from mixup_collate import MixupCollate  # noqa: E402


class Boxes(Dataset):
    """Generated detection samples (deterministic per index); ``mix=True`` blends each with a random second one."""

    def __init__(self, n: int, side: int, mix: bool = False) -> None:
        self.n, self.side, self.mix = n, side, mix

    def __len__(self) -> int:
        return self.n

    def load(self, index: int) -> tuple[torch.Tensor, dict]:
        g = torch.Generator().manual_seed(index)
        image = torch.randint(0, 256, (3, self.side, self.side), dtype=torch.uint8, generator=g)
        k = int(torch.randint(8, 13, (), generator=g))
        xy = torch.rand(k, 2, generator=g) * (self.side * 0.8)
        wh = torch.rand(k, 2, generator=g) * (self.side * 0.2) + 4
        return image, {"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(1, 80, (k,), generator=g)}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image, target = self.load(index)
        if not self.mix:
            return image, target
        other, partner = self.load(int(torch.randint(0, self.n, ())))  # a second read, as YOLOX's MixupDataset
        lam = float(torch.distributions.Beta(32.0, 32.0).sample())
        blended = (image.float() * lam + other.float() * (1 - lam)).round_().to(torch.uint8)
        boxes = torch.cat([target["boxes"], partner["boxes"]])
        return blended, {"boxes": boxes, "labels": torch.cat([target["labels"], partner["labels"]])}


def stack_collate(device: torch.device):
    def collate(samples):
        x = torch.stack([s[0] for s in samples]).to(device, non_blocking=True).float().div_(255)
        return x, [{k: v.to(device, non_blocking=True) for k, v in s[1].items()} for s in samples]

    return collate


def ours(device: torch.device, **kwargs) -> MixupCollate:
    return MixupCollate(**kwargs, box_targets=True, device=device, seed=0)


def finish(batch):
    return batch.finish() if hasattr(batch, "finish") else batch


STRATEGIES = {
    "stack": lambda device: (False, stack_collate(device)),
    "dataset_mixup": lambda device: (True, stack_collate(device)),
    "ours_mixup": lambda device: (False, ours(device, alpha=1.0)),
    "ours_cutmix": lambda device: (False, ours(device, alpha=0, cutmix_alpha=1.0)),
}


def collate_part(args: argparse.Namespace, device: torch.device) -> list[dict]:
    return collate_rows(args.side, args.batch, args.rounds, device)


def collate_rows(side: int, batch: int, rounds: int, device: torch.device) -> list[dict]:
    """Loading and collating one batch with each strategy (and loading alone), interleaved, one thread."""
    plain, mixed = Boxes(10_000, side), Boxes(10_000, side, mix=True)
    cases = {}
    for name, make in STRATEGIES.items():
        mix, collate = make(device)
        source = mixed if mix else plain
        # dataset_mixup pays its second read and blend per item, as its loader would: time loading + collate.
        cases[name] = lambda collate=collate, source=source: finish(collate([source[i] for i in range(batch)]))
    cases["load_only"] = lambda: [plain[i] for i in range(batch)]  # the share of every row spent loading
    with torch_threads(1):
        times = interleaved(cases, rounds, device)
    base = summary(times["stack"])["median"]
    return [{"strategy": n, "ms": summary(t)["median"] * 1e3, "over_stack": summary(t)["median"] / base}
            for n, t in times.items()]  # fmt: skip


def epoch_runners(samples: int, side: int, batch: int, workers: int, device: torch.device) -> dict:
    """``{strategy: callable running one epoch}`` over generated detection samples."""
    runners = {}
    for name, make in STRATEGIES.items():
        mix, collate = make(device)
        loader = DataLoader(Boxes(samples, side, mix=mix), batch_size=batch, num_workers=workers, collate_fn=collate)

        def epoch(loader=loader):
            for batch_ in loader:
                finish(batch_)
            sync(device)

        runners[name] = epoch
    return runners


def loader_part(args: argparse.Namespace, device: torch.device) -> list[dict]:
    results = []
    for workers in args.workers:
        runners = epoch_runners(args.samples, args.side, args.batch, workers, device)
        times = interleaved(runners, args.rounds, device, warmup=1)
        base = summary(times["stack"])["median"]
        for name, t in times.items():
            median = summary(t)["median"]
            results.append({"workers": workers, "strategy": name, "samples_per_s": args.samples / median,
                            "over_stack": base / median})  # fmt: skip
        print(f"  done: loader, {workers} workers", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--side", type=int, default=640)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--samples", type=int, default=64, help="samples per loader epoch")
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 2])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "detection.json")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    start = time.perf_counter()
    collate = collate_part(args, device)
    loader = loader_part(args, device) if args.workers else []
    side = f"3x{args.side}x{args.side} uint8, B={args.batch}, ~10 boxes"
    print(f"detection collate on {device} ({side}): median ms per batch, 1 thread, {args.rounds} interleaved rounds")
    print(
        table(
            ["strategy", "ms", "x stack"],
            [[r["strategy"], f"{r['ms']:.1f}", f"{r['over_stack']:.2f}"] for r in collate],
        )
    )
    if loader:
        print(
            f"detection loader on {device} ({side}): samples/s, {args.samples}-sample epochs, median of {args.rounds}"
        )
        rows = [[r["workers"], r["strategy"], f"{r['samples_per_s']:.0f}", f"{r['over_stack']:.2f}"]
                for r in loader]  # fmt: skip
        print(table(["workers", "strategy", "samples/s", "x stack"], rows))
    write_json(args.out, {"machine": machine(), "device": str(device), "args": vars(args) | {"out": str(args.out)},
                          "collate": collate, "loader": loader, "seconds": time.perf_counter() - start})  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
