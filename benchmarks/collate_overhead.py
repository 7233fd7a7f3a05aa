"""Per-batch cost of ``MixupCollate`` against the plain collate, and where its time goes.

    python benchmarks/collate_overhead.py                   # B in {32, 64, 128, 512} at 3x32x32 and 3x224x224
    python benchmarks/collate_overhead.py --max-mb 400      # also 512x3x224x224 (308 MB per float32 batch)
    python benchmarks/collate_overhead.py --device cuda     # the mix (``apply``) on a GPU
    python benchmarks/collate_overhead.py --batch-sizes --dense-cells 16x256 8x512   # the dense rows only
    python benchmarks/collate_overhead.py --batch-sizes --dense-cells --detection-cells 8x640   # detection only
    python benchmarks/collate_overhead.py --batch-sizes --dense-cells --detection-cells --video-cells 16x16x112

For every case (``B`` samples of 3xSxS, float32 or uint8, one list of ``(tensor, int)`` built once),
on one CPU thread (what a DataLoader worker or a busy main process gives a batch), interleaved over
rounds, medians:

* ``plain``: ``default_collate``, moved to the device, ``x.float().div_(255)`` for uint8: a float32
  batch in [0, 1] on the device, what a loop without mixing starts from.
* ``ours``: ``MixupCollate(device=..., seed=0)(samples).finish()``: the same product, mixed.
* Its parts: ``stack_samples`` (the collate's stacking in the main process), ``draw`` (the random
  parameters, on a stacked batch) and ``apply`` (move and mix, on a fresh stack made untimed).
* The stacking references: ``default_collate`` alone and ``torch.stack`` of the inputs (the copy floor).

Dense rows (``--dense-cells BxS``: ``B`` pairs of a ``uint8`` image ``3xSxS`` and a ``uint8`` mask ``SxS``):

* ``plain``: ``default_collate`` of the pairs, moved, ``x.float().div_(255)`` and ``int64`` masks.
* ``ours``: ``MixupCollate(alpha=0, cutmix_alpha=1.0, dense_targets=True, device=..., seed=0)``,
  finished: per-sample boxes cut from image and mask alike, and ``lam`` ``(B, S, S)``.
* ``composer_inloop``: ``plain`` then one box for the whole batch pasted into images and masks in the
  loop, as composer's CutMix does for segmentation (``_common.batch_cutmix``).

Detection rows (``--detection-cells BxS``, default 8x640): ``benchmarks/detection.py``'s collate part, loading
and collating a batch of uint8 images with about 10 boxes each: stacking, dataset-level Mixup, and ours.

Video rows (``--video-cells BxTxS``, default 16x16x112: ``B`` ``uint8`` clips ``(T, 3, S, S)`` with class indices):

* ``plain``: ``default_collate``, moved, ``x.float().div_(255)``; ``default_collate``: the stacking alone.
* ``ours``: ``MixupCollate(alpha=0, cutmix_alpha=1.0, cutmix_dims=(-4, -2, -1), device=..., seed=0)``,
  finished: per-sample spatio-temporal blocks; ``ours_collate_fn``: its call alone, the part a DataLoader
  worker runs (the stacking; the batch is mixed at its first use, in the main process).
* ``pytorchvideo_inloop``: ``plain`` then one ``(H, W)`` box for the whole batch, pasted into every frame
  from the flipped batch, and mixed one-hot labels, as pytorchvideo's ``CutMix`` does in the loop.

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
from _common import (  # noqa: E402
    RESULTS,
    batch_cutmix,
    flipped_clip_cutmix,
    interleaved,
    machine,
    summary,
    table,
    torch_threads,
    write_json,
)
from detection import collate_rows  # noqa: E402

from mixup_collate import MixupCollate  # noqa: E402
from mixup_collate.stack import stack_samples  # noqa: E402

CASES = ["plain", "ours", "stack_samples", "draw", "apply", "default_collate", "torch.stack"]
DENSE_CASES = ["plain", "ours", "composer_inloop"]
VIDEO_CASES = ["plain", "ours", "pytorchvideo_inloop", "default_collate", "ours_collate_fn"]


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


def make_dense_samples(batch: int, side: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``batch`` separate pairs: a ``uint8`` image ``(3, side, side)`` and a ``uint8`` mask (21 classes and 255)."""
    g = torch.Generator().manual_seed(0)
    xs = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, generator=g)
    ys = torch.randint(0, 21, (batch, side, side), dtype=torch.uint8, generator=g)
    ys[:, :2] = 255
    return [(xs[i].clone(), ys[i].clone()) for i in range(batch)]


def dense_cases(samples: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> dict:
    """The timed functions of one dense row: each ends with float32 images in [0, 1] and int64 masks on the device."""
    collate = MixupCollate(alpha=0, cutmix_alpha=1.0, dense_targets=True, device=device, seed=0)
    g = torch.Generator().manual_seed(0)

    def plain():
        x, y = default_collate(samples)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return x.float().div_(255), y.long()

    return {
        "plain": plain,
        "ours": lambda: collate(samples).finish(),
        "composer_inloop": lambda: batch_cutmix(*plain(), generator=g),
    }


def video_cases(batch: int, frames: int, side: int, device: torch.device) -> dict:
    """The timed functions of one video row: each ends with float32 clips in [0, 1] on the device."""
    g = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (batch, frames, 3, side, side), dtype=torch.uint8, generator=g)
    samples = [(clips[i].clone(), i % 400) for i in range(batch)]
    collate = MixupCollate(alpha=0, cutmix_alpha=1.0, cutmix_dims=(-4, -2, -1), device=device, seed=0)

    def plain():
        x, y = default_collate(samples)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return x.float().div_(255), y

    return {
        "plain": plain,
        "ours": lambda: collate(samples).finish(),
        "pytorchvideo_inloop": lambda: flipped_clip_cutmix(*plain(), num_classes=400, generator=g),
        "default_collate": lambda: default_collate(samples),
        "ours_collate_fn": lambda: collate(samples),
    }


def parse_video_cell(text: str) -> tuple[int, int, int]:
    """``"16x16x112"`` as ``(16, 16, 112)``: a batch size, frames per clip and a frame side."""
    parts = text.split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected BxTxS with positive integers (16x16x112), got {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def run_video(cells: list[tuple[int, int, int]], rounds: int, device: torch.device) -> list[dict]:
    results = []
    for batch, frames, side in cells:
        times = interleaved(video_cases(batch, frames, side, device), rounds, device)
        seconds = {name: summary(times[name]) for name in VIDEO_CASES}
        median = {name: seconds[name]["median"] for name in VIDEO_CASES}
        results.append(
            {
                "batch": batch,
                "shape": [frames, 3, side, side],
                "dtype": "uint8",
                "cutmix_dims": [-4, -2, -1],
                "seconds": seconds,
                "ours_over_plain": median["ours"] / median["plain"],
                "ours_over_default_collate": median["ours"] / median["default_collate"],
                "ours_collate_fn_over_default_collate": median["ours_collate_fn"] / median["default_collate"],
                "pytorchvideo_inloop_over_plain": median["pytorchvideo_inloop"] / median["plain"],
            }
        )
        print(f"  done: video {batch}x{frames}x3x{side}x{side}", flush=True)
    return results


def format_video_table(results: list[dict]) -> str:
    rows = []
    for r in results:
        us = {name: r["seconds"][name]["median"] * 1e6 for name in VIDEO_CASES}
        rows.append(
            ["x".join(map(str, r["shape"])), r["batch"], f"{us['default_collate']:.0f}"]
            + [f"{us['ours_collate_fn']:.0f}", f"{r['ours_collate_fn_over_default_collate']:.2f}", f"{us['plain']:.0f}"]
            + [f"{us['ours']:.0f}", f"{r['ours_over_default_collate']:.2f}", f"{r['ours_over_plain']:.2f}"]
            + [f"{us['pytorchvideo_inloop']:.0f}", f"{r['pytorchvideo_inloop_over_plain']:.2f}"]
        )
    headers = ["clip (uint8)", "B", "default_collate", "ours_collate_fn", "ours_collate_fn / default_collate", "plain"]
    headers += ["ours", "ours / default_collate", "ours / plain"]
    return table([*headers, "pytorchvideo_inloop", "pytorchvideo_inloop / plain"], rows)


def parse_cell(text: str) -> tuple[int, int]:
    """``"16x256"`` as ``(16, 256)``: a batch size and an image side."""
    batch, _, side = text.partition("x")
    if not (batch.isdigit() and side.isdigit()) or int(batch) < 1 or int(side) < 1:
        raise argparse.ArgumentTypeError(f"expected BxS with positive integers (16x256), got {text!r}")
    return int(batch), int(side)


def run_dense(cells: list[tuple[int, int]], rounds: int, device: torch.device) -> list[dict]:
    results = []
    for batch, side in cells:
        times = interleaved(dense_cases(make_dense_samples(batch, side), device), rounds, device)
        seconds = {name: summary(times[name]) for name in DENSE_CASES}
        plain = seconds["plain"]["median"]
        results.append(
            {
                "batch": batch,
                "shape": [3, side, side],
                "mask": [side, side],
                "dtype": "uint8",
                "seconds": seconds,
                "ours_over_plain": seconds["ours"]["median"] / plain,
                "composer_inloop_over_plain": seconds["composer_inloop"]["median"] / plain,
            }
        )
        print(f"  done: dense {batch}x3x{side}x{side} + mask", flush=True)
    return results


def format_dense_table(results: list[dict]) -> str:
    rows = []
    for r in results:
        us = {name: r["seconds"][name]["median"] * 1e6 for name in DENSE_CASES}
        rows.append(
            ["x".join(map(str, r["shape"])) + " + mask", r["batch"], f"{us['plain']:.0f}", f"{us['ours']:.0f}"]
            + [f"{r['ours_over_plain']:.2f}", f"{us['composer_inloop']:.0f}", f"{r['composer_inloop_over_plain']:.2f}"]
        )
    headers = ["sample (uint8)", "B", "plain", "ours", "ours / plain", "composer_inloop", "composer_inloop / plain"]
    return table(headers, rows)


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
    p.add_argument("--batch-sizes", type=int, nargs="*", default=[32, 64, 128, 512], help="none: no image rows")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 224], help="image sides (3 x S x S)")
    p.add_argument("--max-mb", type=float, default=256, help="skip cases whose float32 batch is larger (MB)")
    p.add_argument(
        "--dense-cells", type=parse_cell, nargs="*", default=[(16, 256), (8, 512)], help="BxS dense rows; none: no rows"
    )
    p.add_argument(
        "--detection-cells", type=parse_cell, nargs="*", default=[(8, 640)], help="BxS detection rows; none: no rows"
    )
    p.add_argument(
        "--video-cells",
        type=parse_video_cell,
        nargs="*",
        default=[(16, 16, 112)],
        help="BxTxS video rows; none: no rows",
    )
    p.add_argument("--rounds", type=int, default=21, help="timed rounds (after two warm-up rounds)")
    p.add_argument("--out", type=Path, default=RESULTS / "collate_overhead.json")
    args = p.parse_args(argv)
    if args.rounds < 1 or any(b < 1 for b in args.batch_sizes) or any(s < 1 for s in args.sizes):
        p.error("--rounds, --batch-sizes and --sizes must be positive")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: no CUDA device here")
    cells, skipped = grid(args.batch_sizes, args.sizes, args.max_mb)
    dense_cells = [(b, s) for b, s in args.dense_cells if b * 3 * s * s * 4 / 1e6 <= args.max_mb]
    dense_skipped = [f"dense {b}x3x{s}x{s} (over --max-mb)" for b, s in args.dense_cells if (b, s) not in dense_cells]
    for note in skipped + dense_skipped:
        print(f"skipped: {note}")
    with torch_threads(1):
        results = run(cells, args.rounds, device)
        dense = run_dense(dense_cells, args.rounds, device)
        detection = [row | {"batch": b, "side": s} for b, s in args.detection_cells
                     for row in collate_rows(s, b, args.rounds, device)]  # fmt: skip
        video = run_video(args.video_cells, args.rounds, device)
        info = machine()
    print(f"collate overhead on {device}: median us per batch, 1 thread, {args.rounds} interleaved rounds")
    if results:
        print(format_table(results))
    if dense:
        print("dense targets: per-sample CutMix of images and masks")
        print(format_dense_table(dense))
    if detection:
        print("detection targets (benchmarks/detection.py): loading + collating a batch, ms; x stack")
        rows = [[f"3x{r['side']}x{r['side']}", r["batch"], r["strategy"], f"{r['ms']:.1f}", f"{r['over_stack']:.2f}"]
                for r in detection]  # fmt: skip
        print(table(["sample", "B", "strategy", "ms", "x stack"], rows))
    if video:
        print("video: per-sample CutMix over frames and pixels (cutmix_dims=(-4, -2, -1))")
        print(format_video_table(video))
    path = write_json(
        args.out,
        {
            "machine": info,
            "device": str(device),
            "args": vars(args) | {"out": str(args.out)},
            "skipped": skipped,
            "results": results,
            "dense_skipped": dense_skipped,
            "dense_results": dense,
            "detection_results": detection,
            "video_results": video,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
