"""The mix itself on a ready batch, against the memory-copy floor.

    python benchmarks/mix_kernel.py [--device cuda] [--threads 1]

For B = 256 at 3x32x32 and 3x224x224, float32 and uint8 -> float32, times MixupCollate's mix against
copying the same batch into a preallocated buffer (``out.copy_(x)``): its torch path
(``mixup_collate.mix.mix``, as the collate calls it on the CPU) and, where Triton runs (CUDA), the fused
kernel the collate launches there (``mixup_collate.fused.finish_inputs``) for Mixup, CutMix and switched
draws. A Mixup reads two rows and writes one, so 1.5x the copy is the floor for float32 in and out;
``uint8`` in, float32 out reads a quarter as much, about 0.75x. Common formulations are timed beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, interleaved, machine, pick_device, summary, table, torch_threads, write_json  # noqa: E402

from mixup_collate import fused  # noqa: E402
from mixup_collate.mix import Scratch, mix  # noqa: E402
from mixup_collate.params import draw_params  # noqa: E402

FUSED_MODES = {
    "mixup": dict(alpha=0.4),
    "cutmix": dict(alpha=0, cutmix_alpha=1.0),
    "switched": dict(alpha=0.8, cutmix_alpha=1.0, prob=0.8),
}

# Nominal memory bandwidth (GB/s) of accelerators we may be lent, to report the fraction reached.
NOMINAL_GBPS = {"H200": 4800.0, "H100": 3350.0, "A100": 2039.0}


def nominal_bandwidth(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in NOMINAL_GBPS.items() if k in name), None)


def cases(x: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> dict[str, object]:
    """The timed functions for one batch ``x``; 'copy' is the floor, the mixup_collate cases the product."""
    out_dtype = torch.float32
    copy_src = x.to(out_dtype)
    buf = torch.empty_like(copy_src)
    work = copy_src.clone()  # the collate mixes its own buffer in place; uint8 input is widened out of place
    w = lam.view(-1, *([1] * (x.ndim - 1)))
    scale = 1.0 / 255 if x.dtype == torch.uint8 else 1.0
    scratch = Scratch()  # the partner buffer the collate keeps from batch to batch

    def product():
        if x.dtype == torch.uint8:
            return mix(x, perm, lam, scale=scale, scratch=scratch)
        return mix(work, perm, lam, overwrite_input=True, scratch=scratch)

    def index_select_lerp():
        torch.index_select(copy_src, 0, perm, out=buf)
        return buf.lerp_(copy_src, w)

    fused_cases = {}
    if fused.usable(x.device, x.dtype, out_dtype, (-2, -1)):
        for name, cfg in FUSED_MODES.items():
            g = torch.Generator().manual_seed(1)
            p = draw_params(x.shape[0], tuple(x.shape[1:]), **cfg, generator=g)
            draws = fused.move_draws(p.perm, p.lam, p.mode.long(), p.boxes, None, lambda t: t.to(x.device))
            fused_cases[f"fused kernel, {name}"] = lambda draws=draws, p=p: fused.finish_inputs(
                x, draws, p.dims, out_dtype, scale, None, None, False
            )
    return {
        "copy": lambda: buf.copy_(copy_src),
        "mixup_collate (torch path, mixup)": product,
        **fused_cases,
        "naive lam*x+(1-lam)*x[perm]": lambda: w * copy_src + (1 - w) * copy_src[perm],
        "torch.lerp(x[perm], x, lam)": lambda: torch.lerp(copy_src[perm], copy_src, w),
        "index_select(out)+lerp_": index_select_lerp,
    }


def run(shapes, dtypes, batch: int, rounds: int, device: torch.device) -> list[dict]:
    results = []
    for shape in shapes:
        for dtype in dtypes:
            g = torch.Generator().manual_seed(0)
            x = (torch.rand((batch, *shape), generator=g) * 255).to(dtype).to(device)
            perm = torch.randperm(batch, generator=g).to(device)
            lam = (torch.rand(batch, generator=g) * 0.5 + 0.5).to(device)
            fns = cases(x, perm, lam)
            times = interleaved(fns, rounds, device)
            out_bytes = x.numel() * 4
            in_bytes = x.numel() * x.element_size()
            floor = summary(times["copy"])["median"]
            for name, ts in times.items():
                s = summary(ts)
                moved = (in_bytes + out_bytes) if name == "copy" else (2 * in_bytes + out_bytes)  # a Mixup's bytes
                results.append(
                    {
                        "shape": [batch, *shape],
                        "input": str(dtype).replace("torch.", ""),
                        "case": name,
                        "seconds": s,
                        "gb_per_s": moved / s["median"] / 1e9,
                        "ratio_to_copy": s["median"] / floor,
                    }
                )
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: one core, as quoted)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 224], help="image sides (3 x S x S)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", type=Path, default=RESULTS / "mix_kernel.json")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    shapes = [(3, s, s) for s in args.sizes]
    with torch_threads(args.threads):
        results = run(shapes, [torch.float32, torch.uint8], args.batch, args.rounds, device)
    nominal = nominal_bandwidth(device)
    headers = ["shape", "input", "case", "ms median", "GB/s", "x copy"] + (["% of nominal BW"] if nominal else [])
    rows = []
    for r in results:
        row = [
            "x".join(map(str, r["shape"])),
            r["input"] + ("->float32" if r["input"] == "uint8" else ""),
            r["case"],
            f"{r['seconds']['median'] * 1e3:.3f}",
            f"{r['gb_per_s']:.1f}",
            f"{r['ratio_to_copy']:.2f}",
        ]
        if nominal:
            row.append(f"{100 * r['gb_per_s'] / nominal:.0f}%")
        rows.append(row)
    print(f"mix kernel on {device} ({args.threads} thread(s)); 'x copy' = time / time of out.copy_(x)")
    print(table(headers, rows))
    path = write_json(args.out, {"machine": machine(), "device": str(device), "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
