"""Loader throughput: one-loader Mixup and CutMix on the device against two-loader mixup and the peers.

    python benchmarks/loader_throughput.py                    # the full grid, all modes (about 20 minutes on 2 cores)
    python benchmarks/loader_throughput.py --modes cutmix     # one mode group (plain always runs, as the reference)
    python benchmarks/loader_throughput.py --pipelines dense  # segmentation pairs only (image + mask)
    python benchmarks/loader_throughput.py --pipelines detection  # detection samples (image + boxes)
    python benchmarks/loader_throughput.py --help

Every strategy iterates the same map-style dataset and ends with the same product: a float32
mixed batch (values in [0, 1]) on the device, consumed as a training step would (a reduction that
forces the result). Three mode groups, each configured alike for every implementation:

* ``mixup``: Mixup, Beta(0.4, 0.4) (also the two-loader and hand-written in-loop recipes).
* ``cutmix``: CutMix, Beta(1, 1) box areas.
* ``switch``: per sample Mixup Beta(0.8, 0.8) or CutMix Beta(1, 1), with probability 0.5 each
  (torchvision's ``RandomChoice`` switches per batch: it has no per-sample mode).

Peers: timm's ``Mixup`` applied in the loop to the batch on the device (``timm_inloop``) and its
``FastCollateMixup`` on uint8 samples (``timm_fast``), both in ``mode="elem"`` (one draw per sample,
as here; they need an even batch size), and torchvision's ``v2.MixUp``/``v2.CutMix`` in its
documented collate recipe (``torchvision_v2``). Two pipelines:

* ``decode``: JPEG bytes made at start-up, decoded and augmented per sample (random resized crop,
  flip): the cost of an ImageNet-style input pipeline.
* ``memory``: a CIFAR-style in-memory uint8 array, random crop with padding and flip per sample:
  cheap samples, so collate and mix costs show.

Strategies run interleaved over rounds (A B C ... A B C ...); each is timed per round and the
median reported, with ratios against ``plain`` (no mixup) and ``two_loader`` (the paper's recipe).
A third pipeline, ``dense``, serves segmentation pairs: a ``uint8`` image ``3xSxS`` and its ``uint8``
mask ``SxS`` in memory, flipped together per sample, at the ``--dense-cells`` (``BxS``: 16x256 and
8x512). Its strategies, each ending with float32 images in [0, 1] and int64 masks on the device:
``plain`` (``default_collate``), ``composer_inloop`` (``plain`` then one CutMix box for the whole
batch, pasted into images and masks in the loop as composer does) and ``mixup_collate_dense``
(``MixupCollate(alpha=0, cutmix_alpha=1.0, dense_targets=True)``: a box per sample, ``lam`` per pixel),
in the mode ``dense_cutmix``.

``mix_in_worker`` is an ablation for a design question (mix CPU batches in the workers instead of
the main process?), run only for a CPU target with workers.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, batch_cutmix, interleaved, machine, pick_device, summary, table, write_json  # noqa: E402

from mixup_collate import MixupCollate  # noqa: E402
from mixup_collate.stack import stack_samples  # noqa: E402

ALPHA = 0.4
NUM_CLASSES = 10


class MemoryImages(Dataset):
    """CIFAR-style: uint8 3x32x32 images in memory; random crop (padding 4) and flip per sample."""

    def __init__(self, n: int, as_uint8: bool) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
        self.labels = torch.randint(0, NUM_CLASSES, (n,), generator=g).tolist()
        steps = [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()]
        self.transform = v2.Compose(steps if as_uint8 else [*steps, v2.ToDtype(torch.float32, scale=True)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


class DecodeImages(Dataset):
    """ImageNet-style: JPEG bytes decoded per sample (PIL, as ImageFolder does), random resized crop to 128, flip."""

    def __init__(self, n: int, as_uint8: bool, distinct: int = 64, side: int = 160) -> None:
        g = torch.Generator().manual_seed(0)
        # Smooth random images (upsampled noise) compress like photographs rather than like noise.
        coarse = torch.rand((distinct, 3, side // 8, side // 8), generator=g)
        smooth = torch.nn.functional.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False)
        images = (smooth.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        self.encoded = [self._jpeg(img) for img in images]
        self.n = n
        self.labels = torch.randint(0, NUM_CLASSES, (n,), generator=g).tolist()
        steps = [v2.RandomResizedCrop(128, antialias=True), v2.RandomHorizontalFlip(), v2.PILToTensor()]
        self.transform = v2.Compose(steps if as_uint8 else [*steps, v2.ToDtype(torch.float32, scale=True)])

    @staticmethod
    def _jpeg(pixels: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        image = Image.open(io.BytesIO(self.encoded[i % len(self.encoded)])).convert("RGB")
        return self.transform(image), self.labels[i]


class DenseImages(Dataset):
    """Segmentation pairs in memory: ``uint8`` images ``(3, S, S)`` and masks ``(S, S)``, flipped together."""

    def __init__(self, n: int, side: int, distinct: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (distinct, 3, side, side), dtype=torch.uint8, generator=g)
        self.masks = torch.randint(0, 21, (distinct, side, side), dtype=torch.uint8, generator=g)
        self.masks[:, :2] = 255
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        image, mask = self.images[i % len(self.images)], self.masks[i % len(self.masks)]
        if torch.rand(()) < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        return image, mask


class Mode(NamedTuple):
    """One mixing mode, configured alike for every implementation."""

    ours: dict[str, float]  # MixupCollate's keyword arguments
    timm: dict[str, float]  # timm's Mixup / FastCollateMixup keyword arguments
    torchvision: Callable[[], Callable]  # builds the batch transform of torchvision's collate recipe


MODES = {
    "mixup": Mode(
        {"alpha": ALPHA},
        {"mixup_alpha": ALPHA, "cutmix_alpha": 0.0},
        lambda: v2.MixUp(alpha=ALPHA, num_classes=NUM_CLASSES),
    ),
    "cutmix": Mode(
        {"alpha": 0.0, "cutmix_alpha": 1.0},
        {"mixup_alpha": 0.0, "cutmix_alpha": 1.0},
        lambda: v2.CutMix(alpha=1.0, num_classes=NUM_CLASSES),
    ),
    "switch": Mode(
        {"alpha": 0.8, "cutmix_alpha": 1.0, "switch_prob": 0.5},
        {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "switch_prob": 0.5},
        lambda: v2.RandomChoice(
            [v2.MixUp(alpha=0.8, num_classes=NUM_CLASSES), v2.CutMix(alpha=1.0, num_classes=NUM_CLASSES)]
        ),
    ),
}


class TorchvisionCollate:
    """torchvision's documented recipe: the batch transform applied to the default-collated batch."""

    def __init__(self, transform: Callable) -> None:
        self.transform = transform

    def __call__(self, batch):
        return self.transform(*default_collate(batch))


class MixInWorker(MixupCollate):
    """Ablation, not a product: finish (draw and mix) inside the worker, possible only for a CPU target.

    Its workers share one seed, so it would repeat random numbers across workers; it exists only to
    measure whether spreading the CPU mix over the workers pays (the design question in the README).
    """

    def __call__(self, samples):
        stacked = stack_samples(samples)
        return self.apply(stacked, self.draw(stacked), torch.device("cpu"))


def consume(x: torch.Tensor) -> float:
    """Force the batch as a training step would (a reduction; a host sync on accelerators)."""
    return float(x.reshape(x.shape[0], -1)[:, :64].sum())


def beta_rows(n: int, device: torch.device) -> torch.Tensor:
    dist = torch.distributions.Beta(torch.tensor(ALPHA), torch.tensor(ALPHA))
    lam = dist.sample((n,))
    return torch.maximum(lam, 1 - lam).to(device)


def loader(ds: Dataset, batch: int, workers: int, collate=None, seed: int = 0) -> DataLoader:
    return DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
    )


def timm_mixup():
    """timm's ``mixup`` module, or ``None`` (with a note) when timm is not installed."""
    try:
        from timm.data import mixup
    except ImportError:
        print("timm strategies: skipped (timm is not installed; pip install 'mixup-collate[bench]')")
        return None
    return mixup


def plain_strategy(make_ds, batch: int, workers: int, device: torch.device):
    """No mixup: the reference every mode's ratios are taken against."""
    plain = loader(make_ds(False), batch, workers)

    def run_plain():
        for x, _ in plain:
            consume(x.to(device, non_blocking=True))

    return run_plain


def recipe_strategies(make_ds, batch: int, workers: int, device: torch.device, wanted: list[str]):
    """The Mixup-only recipes: two loaders (the paper's) and the hand-written in-loop mix."""
    fns = {}
    if "two_loader" in wanted:
        first, second = loader(make_ds(False), batch, workers, seed=1), loader(make_ds(False), batch, workers, seed=2)

        def run_two_loader():
            for (x1, _), (x2, _) in zip(first, second):
                lam = float(np.random.beta(ALPHA, ALPHA))
                consume(lam * x1.to(device, non_blocking=True) + (1 - lam) * x2.to(device, non_blocking=True))

        fns["two_loader"] = run_two_loader
    if "inloop" in wanted:
        inloop = loader(make_ds(False), batch, workers)

        def run_inloop():
            for x, _ in inloop:
                x = x.to(device, non_blocking=True)
                perm = torch.randperm(x.shape[0], device=device)
                lam = beta_rows(x.shape[0], device).view(-1, 1, 1, 1)
                consume(lam * x + (1 - lam) * x[perm])

        fns["inloop"] = run_inloop
    return fns


def in_worker_strategy(make_ds, batch: int, workers: int, device: torch.device):
    """The ``mix_in_worker`` ablation (Mixup, uint8 input), or ``None`` where it cannot run (a device, no workers)."""
    if device.type != "cpu" or workers == 0:
        return None
    collate = MixInWorker(ALPHA, device=device, seed=0)
    if collate.device.type != "cpu":  # resolved here, in the main process, before the fork
        raise RuntimeError(f"mix_in_worker mixes in CPU workers, but its collate resolved to {collate.device}")
    in_worker = loader(make_ds(True), batch, workers, collate=collate)

    def run_in_worker():
        for batch_ in in_worker:
            consume(batch_.x)

    return run_in_worker


def mode_strategies(mode: Mode, make_ds, batch: int, workers: int, device: torch.device, wanted: list[str], timm):
    """``{strategy: callable running one epoch}`` for one mode; each builds its loaders once (persistent workers)."""
    fns = {}
    if "torchvision_v2" in wanted:
        tv = loader(make_ds(False), batch, workers, collate=TorchvisionCollate(mode.torchvision()))

        def run_tv():
            for x, _ in tv:
                consume(x.to(device, non_blocking=True))

        fns["torchvision_v2"] = run_tv
    if "timm_inloop" in wanted and timm is not None:
        timm_fn = timm.Mixup(**mode.timm, mode="elem", num_classes=NUM_CLASSES)
        timm_loop = loader(make_ds(False), batch, workers)

        def run_timm_inloop():
            for x, y in timm_loop:
                x, _ = timm_fn(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
                consume(x)

        fns["timm_inloop"] = run_timm_inloop
    if "timm_fast" in wanted and timm is not None:
        timm_collate = timm.FastCollateMixup(**mode.timm, mode="elem", num_classes=NUM_CLASSES)
        timm_loader = loader(make_ds(True), batch, workers, collate=timm_collate)

        def run_timm_fast():
            for x, _ in timm_loader:
                # timm's prefetcher widens uint8 on the device; scale to [0, 1] like the others.
                consume(x.to(device, non_blocking=True).float().div_(255))

        fns["timm_fast"] = run_timm_fast
    for name, as_uint8 in (("mixup_collate", False), ("mixup_collate_uint8", True)):
        if name in wanted:
            collate = MixupCollate(**mode.ours, device=device, seed=0)
            ours = loader(make_ds(as_uint8), batch, workers, collate=collate)

            def run_ours(ours=ours):
                for batch_ in ours:
                    consume(batch_.x)

            fns[name] = run_ours
    return fns


def dense_strategies(ds: Dataset, batch: int, workers: int, device: torch.device):
    """``{(mode, strategy): callable running one epoch}`` of the dense pipeline, ``plain`` first."""
    plain = loader(ds, batch, workers)
    inloop = loader(ds, batch, workers)
    ours = loader(
        ds, batch, workers, collate=MixupCollate(alpha=0, cutmix_alpha=1.0, dense_targets=True, device=device, seed=0)
    )
    g = torch.Generator().manual_seed(0)

    def to_device(x, y):
        return x.to(device, non_blocking=True).float().div_(255), y.to(device, non_blocking=True).long()

    def run_plain():
        for x, y in plain:
            consume(to_device(x, y)[0])

    def run_composer_inloop():
        for x, y in inloop:
            consume(batch_cutmix(*to_device(x, y), generator=g)[0])

    def run_ours():
        for batch_ in ours:
            consume(batch_.x)

    return {
        ("none", "plain"): run_plain,
        ("dense_cutmix", "composer_inloop"): run_composer_inloop,
        ("dense_cutmix", "mixup_collate_dense"): run_ours,
    }


def strategies(make_ds, batch: int, workers: int, device: torch.device, modes: list[str], wanted: list[str]):
    """``{(mode, strategy): callable running one epoch}``: ``plain`` (mode ``none``) first, then each mode's."""
    fns = {("none", "plain"): plain_strategy(make_ds, batch, workers, device)}
    timm = timm_mixup() if {"timm_inloop", "timm_fast"} & set(wanted) else None
    for mode in modes:
        group = recipe_strategies(make_ds, batch, workers, device, wanted) if mode == "mixup" else {}
        group |= mode_strategies(MODES[mode], make_ds, batch, workers, device, wanted, timm)
        if mode == "mixup" and "mix_in_worker" in wanted:
            group["mix_in_worker"] = in_worker_strategy(make_ds, batch, workers, device)
        fns |= {(mode, name): fn for name, fn in group.items() if fn is not None}
    return fns


# Selectable with --strategies (plain always runs: every ratio is taken against it), in table order.
STRATEGIES = [
    "two_loader",  # mixup mode only: the paper's recipe
    "inloop",  # mixup mode only: the hand-written in-loop recipe
    "torchvision_v2",
    "timm_inloop",
    "timm_fast",
    "mixup_collate",
    "mixup_collate_uint8",
    "mix_in_worker",  # mixup mode only, an ablation: CPU target with workers only
]


def rates_row(pipeline: str, mode: str, name: str, workers: int, batch: int, rates: dict) -> dict:
    """One result: samples/s (median, min, max) and the ratios to ``plain`` and to the same mode's ``two_loader``."""
    med = summary(rates[(mode, name)])
    plain = summary(rates[("none", "plain")])["median"]
    two = rates.get(("mixup", "two_loader")) if mode in ("mixup", "none") else None
    return {
        "pipeline": pipeline,
        "mode": mode,
        "strategy": name,
        "workers": workers,
        "batch": batch,
        "samples_per_s": med,
        "vs_plain": med["median"] / plain,
        "vs_two_loader": None if two is None else med["median"] / summary(two)["median"],
    }


def run(args, device: torch.device) -> list[dict]:
    results = []
    for pipeline in args.pipelines:
        if pipeline == "dense":
            results += run_dense(args, device)
            continue
        if pipeline == "detection":
            results += run_detection(args, device)
            continue
        n = args.samples if pipeline == "memory" else args.decode_samples

        def make_ds(as_uint8: bool, pipeline=pipeline, n=n) -> Dataset:
            return MemoryImages(n, as_uint8) if pipeline == "memory" else DecodeImages(n, as_uint8)

        for workers in args.workers:
            for batch in args.batch_sizes:
                fns = strategies(make_ds, batch, workers, device, args.modes, args.strategies)
                times = interleaved(fns, args.rounds, device)
                samples = (n // batch) * batch
                rates = {key: [samples / t for t in ts] for key, ts in times.items()}
                results += [rates_row(pipeline, mode, name, workers, batch, rates) for mode, name in rates]
                print(f"  done: {pipeline}, {workers} workers, batch {batch}", flush=True)
                del fns
    return results


def run_dense(args, device: torch.device) -> list[dict]:
    results = []
    for batch, side in args.dense_cells:
        ds = DenseImages(args.dense_samples, side)
        for workers in args.workers:
            fns = dense_strategies(ds, batch, workers, device)
            times = interleaved(fns, args.rounds, device)
            samples = (len(ds) // batch) * batch
            rates = {key: [samples / t for t in ts] for key, ts in times.items()}
            rows = [rates_row("dense", mode, name, workers, batch, rates) for mode, name in rates]
            results += [row | {"shape": [3, side, side]} for row in rows]
            print(f"  done: dense 3x{side}x{side}, {workers} workers, batch {batch}", flush=True)
            del fns
    return results


# benchmarks/detection.py's strategies as (mode, strategy) rows: stacking is this table's plain.
DETECTION_ROWS = {
    "stack": ("none", "plain"),
    "dataset_mixup": ("mixup", "dataset_mixup"),
    "ours_mixup": ("mixup", "mixup_collate_boxes"),
    "ours_cutmix": ("cutmix", "mixup_collate_boxes"),
}


def run_detection(args, device: torch.device) -> list[dict]:
    """Detection samples (``benchmarks/detection.py``): stacking, dataset-level Mixup, and ours, per ``--workers``."""
    from detection import epoch_runners

    results = []
    for batch, side in args.detection_cells:
        for workers in args.workers:
            runners = epoch_runners(args.detection_samples, side, batch, workers, device)
            times = interleaved({DETECTION_ROWS[n]: fn for n, fn in runners.items()}, args.rounds, device)
            samples = (args.detection_samples // batch) * batch
            rates = {key: [samples / t for t in ts] for key, ts in times.items()}
            rows = [rates_row("detection", mode, name, workers, batch, rates) for mode, name in rates]
            results += [row | {"shape": [3, side, side]} for row in rows]
            print(f"  done: detection 3x{side}x{side}, {workers} workers, batch {batch}", flush=True)
    return results


def parse_cell(text: str) -> tuple[int, int]:
    """``"16x256"`` as ``(16, 256)``: a batch size and an image side."""
    batch, _, side = text.partition("x")
    if not (batch.isdigit() and side.isdigit()) or int(batch) < 1 or int(side) < 1:
        raise argparse.ArgumentTypeError(f"expected BxS with positive integers (16x256), got {text!r}")
    return int(batch), int(side)


def format_table(results: list[dict]) -> str:
    rows = []
    for r in results:
        s = r["samples_per_s"]
        rows.append(
            [
                r["pipeline"] + (f" {r['shape'][1]}" if "shape" in r else ""),
                r["workers"],
                r["batch"],
                r["mode"],
                r["strategy"],
                f"{s['median']:.0f} [{s['min']:.0f}-{s['max']:.0f}]",
                f"{r['vs_plain']:.2f}",
                "-" if r["vs_two_loader"] is None else f"{r['vs_two_loader']:.2f}",
            ]
        )
    headers = ["pipeline", "workers", "batch", "mode", "strategy", "samples/s median [min-max]", "vs plain"]
    return table([*headers, "vs two_loader"], rows)


def bar_chart(results: list[dict], path: Path) -> Path | None:
    """One panel per mode: each strategy's samples/s relative to ``plain``, per configuration (dense: table only)."""
    results = [r for r in results if r["pipeline"] not in ("dense", "detection")]
    if not results:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("chart: skipped (matplotlib is not installed)")
        return None
    configs = sorted({(r["pipeline"], r["workers"], r["batch"]) for r in results})
    modes = [m for m in MODES if any(r["mode"] == m for r in results)]
    fig, axes = plt.subplots(
        len(modes), 1, figsize=(max(7, 1.6 * len(configs) + 2), 3.2 * len(modes)), squeeze=False, sharex=True
    )
    for ax, mode in zip(axes[:, 0], modes):
        names = [s for s in STRATEGIES if any(r["mode"] == mode and r["strategy"] == s for r in results)]
        width = 0.8 / max(1, len(names))
        for k, name in enumerate(names):
            values = []
            for c in configs:
                match = [
                    r
                    for r in results
                    if (r["pipeline"], r["workers"], r["batch"]) == c and (r["mode"], r["strategy"]) == (mode, name)
                ]
                values.append(match[0]["vs_plain"] if match else 0)
            color = f"C{STRATEGIES.index(name)}"  # one color per strategy in every panel
            ax.bar(np.arange(len(configs)) + k * width, values, width, label=name, color=color)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(np.arange(len(configs)) + width * (len(names) - 1) / 2)
        ax.set_xticklabels([f"{p}\n{w} workers, B={b}" for p, w, b in configs], fontsize=8)
        ax.set_ylabel("samples/s vs plain")
        ax.set_title(f"{mode}: mixed float32 batches on the device, throughput relative to plain loading", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument(
        "--pipelines",
        nargs="+",
        default=["memory", "decode", "dense"],
        choices=["memory", "decode", "dense", "detection"],
    )
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES), help="mode groups to run")
    p.add_argument("--workers", type=int, nargs="+", default=[0, os.cpu_count() or 1])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256], help="even (timm's Mixup needs it)")
    p.add_argument("--strategies", nargs="+", default=STRATEGIES, choices=STRATEGIES, help="besides plain")
    p.add_argument("--samples", type=int, default=4096, help="samples per round, memory pipeline")
    p.add_argument("--decode-samples", type=int, default=1024, help="samples per round, decode pipeline")
    p.add_argument("--dense-cells", type=parse_cell, nargs="+", default=[(16, 256), (8, 512)], help="BxS, dense")
    p.add_argument("--dense-samples", type=int, default=256, help="samples per round, dense pipeline")
    p.add_argument("--detection-cells", type=parse_cell, nargs="+", default=[(8, 640)], help="BxS, detection")
    p.add_argument("--detection-samples", type=int, default=64, help="samples per round, detection pipeline")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (after two warm-up rounds)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for loader_throughput.{json,png}")
    args = p.parse_args(argv)
    odd = [b for b in args.batch_sizes if b % 2]
    if odd and {"timm_inloop", "timm_fast"} & set(args.strategies):
        p.error(f"--batch-sizes {odd}: timm's Mixup and FastCollateMixup need even batch sizes")
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1, got {args.rounds}")
    per_round = {"memory": args.samples, "decode": args.decode_samples}
    fewest = min((per_round[p_] for p_ in args.pipelines if p_ in per_round), default=None)
    if fewest is not None and not all(1 <= b <= fewest for b in args.batch_sizes):
        p.error(f"--batch-sizes {args.batch_sizes}: each must be in [1, {fewest}] (the samples per round)")
    if "dense" in args.pipelines and any(b > args.dense_samples for b, _ in args.dense_cells):
        p.error(f"--dense-cells: each batch must be at most --dense-samples ({args.dense_samples})")
    device = pick_device(args.device)
    print(f"loader throughput on {device}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    results = run(args, device)
    print(format_table(results))
    json_path = write_json(
        args.out / "loader_throughput.json",
        {"machine": machine(), "device": str(device), "args": vars(args) | {"out": str(args.out)}, "results": results},
    )
    png = bar_chart(results, args.out / "loader_throughput.png")
    print(f"wrote {json_path}" + (f" and {png}" if png else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
