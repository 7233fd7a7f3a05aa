"""The command lines: ``mixup-collate demo [options]`` and ``python -m mixup_collate.demo [options]``.

``main`` runs the demo: data -> ``run_experiment`` (loaders, training, validation) -> table, verdict,
pictures and ``results.json``. ``command`` is the ``mixup-collate COMMAND`` entry point that dispatches to it.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from . import plots
from .data import DemoData, load_data
from .report import calibration_verdict, format_table, summarize, verdict, write_json
from .training import SWITCH_PROB, Settings, run_experiment

__all__ = ["command", "main", "parse_args"]

_EXTRAS = {"matplotlib": "matplotlib", "sklearn": "scikit-learn", "tqdm": "tqdm"}


def check_extras() -> None:
    """Fail early, naming the extra to install, if matplotlib, scikit-learn or tqdm is missing."""
    missing = [pkg for mod, pkg in _EXTRAS.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise SystemExit(
            f'The demo needs {", ".join(missing)}: install the demo extra, pip install ".[demo]" in a clone of '
            'mixup-collate (or pip install "<the wheel>[demo]")'
        )


def _seeds(text: str) -> list[int]:
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
            if seeds:
                return seeds
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count (3) or a comma-separated list (0,4,7), got {text!r}"
        ) from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"need at least one seed, got {n}")
    return list(range(n))


def _number(kind: type, low: float, strict: bool = True) -> Any:
    """An argparse type: a ``kind`` number above ``low`` (or at least ``low`` when ``strict`` is false)."""

    def parse(text: str) -> Any:
        value = kind(text)
        if value < low or (strict and value == low) or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


_DESCRIPTION = """\
Train a small CNN twice per seed, with and without Mixup (or CutMix, or both: --cutmix-alpha), with the
same data, initial weights, shuffling and schedule; compare validation accuracy, loss and calibration, and
draw what Mixup and CutMix do to the images and to the confidence of the predictions."""

_EXAMPLES = """\
examples:
  %(prog)s
      the bundled 8x8 digits, 3 seeds x 2 runs: a minute or two on 2 CPU cores
  %(prog)s --epochs 100 --seeds 10
      a longer, less noisy comparison
  %(prog)s --alpha 0 --cutmix-alpha 1
      CutMix instead of Mixup (--cutmix-alpha 1 alone: each sample one or the other, at even odds)
  %(prog)s --data ~/photos --image-size 64 --device cuda --workers 4
      your own images: one sub-folder per class
"""


def parse_args(argv: Sequence[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    """The demo's command line; ``device`` comes back as a ``torch.device`` (cuda when available, else cpu)."""
    p = argparse.ArgumentParser(
        prog=prog or "python -m mixup_collate.demo",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", metavar="PATH", help="an ImageFolder (one sub-folder per class); default: sklearn digits")
    p.add_argument(
        "--image-size",
        type=_number(int, 0),
        default=32,
        metavar="PX",
        help="--data images: resized, cropped (%(default)s)",
    )
    p.add_argument(
        "--epochs", type=_number(int, 0), default=50, metavar="N", help="training epochs per run (%(default)s)"
    )
    p.add_argument(
        "--alpha",
        type=_number(float, 0, strict=False),
        default=0.4,
        help="Mixup's Beta(alpha, alpha) concentration (%(default)s); 0: no Mixup, with --cutmix-alpha > 0",
    )
    p.add_argument(
        "--cutmix-alpha",
        type=_number(float, 0, strict=False),
        default=0.0,
        metavar="A",
        help="CutMix's Beta(A, A) concentration for the box area; > 0 turns CutMix on, for every sample "
        f"with --alpha 0, else for each sample with probability {SWITCH_PROB:g} (%(default)s: off)",
    )
    p.add_argument(
        "--batch-size", type=_number(int, 0), default=64, metavar="N", help="training batch size (%(default)s)"
    )
    p.add_argument(
        "--lr", type=_number(float, 0), default=3e-3, help="peak learning rate, AdamW + one-cycle (%(default)s)"
    )
    p.add_argument(
        "--weight-decay",
        type=_number(float, 0, strict=False),
        default=5e-4,
        metavar="WD",
        help="AdamW weight decay (%(default)s)",
    )
    p.add_argument("--seeds", type=_seeds, default="3", help="a count (3 = seeds 0,1,2) or a list (0,4,7) (3)")
    p.add_argument("--device", help="training device (cuda when available, else cpu)")
    p.add_argument(
        "--threads",
        type=_number(int, 0),
        default=1,
        metavar="N",
        help="torch CPU threads (%(default)s): the default CNN gains little from more, and extra threads crawl "
        "on a busy machine; raise it for --data on the CPU",
    )
    p.add_argument(
        "--workers",
        type=_number(int, 0, strict=False),
        default=0,
        metavar="N",
        help="DataLoader worker processes (%(default)s)",
    )
    p.add_argument("--out", default="mixup-demo", metavar="DIR", help="for the pictures and results.json (%(default)s)")
    p.add_argument(
        "--max-batches", type=_number(int, 0), metavar="N", help="cap on training batches per epoch (no cap)"
    )
    args = p.parse_args(argv)
    if args.alpha == 0 and args.cutmix_alpha == 0:
        p.error(
            "--alpha 0 turns Mixup off, and CutMix is off too (--cutmix-alpha 0): nothing would be mixed; "
            "pass --alpha > 0 for Mixup or --cutmix-alpha > 0 for CutMix"
        )
    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return args


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        epochs=args.epochs,
        alpha=args.alpha,
        cutmix_alpha=args.cutmix_alpha,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seeds=args.seeds,
        device=args.device,
        workers=args.workers,
        max_batches=args.max_batches,
    )


def _config(args: argparse.Namespace, data: DemoData) -> dict[str, Any]:
    """The options as given (the device as text) and what was loaded, for ``results.json``."""
    config = {k: str(v) if isinstance(v, torch.device) else v for k, v in vars(args).items()}
    return {**config, "dataset": data.name, "classes": data.classes, "n_train": len(data.train), "n_val": len(data.val)}


def _run(args: argparse.Namespace, start: float) -> list[Path]:
    """Load, train, report: print the table and verdict, write the pictures and ``results.json``; their paths."""
    data = load_data(args.data, args.image_size)
    print(f"{data.name}: {len(data.train)} train / {len(data.val)} val, {len(data.classes)} classes, {args.device}")
    histories, lams = run_experiment(data, _settings(args))
    summary = summarize(histories)
    line = "\n".join((verdict(summary, len(args.seeds)), calibration_verdict(summary, len(args.seeds))))
    print(format_table(summary), line, sep="\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths, samples = plots.write_all(out, data, histories, lams, args.alpha, args.cutmix_alpha, args.seeds[0])
    config = _config(args, data)
    elapsed = time.perf_counter() - start
    paths.append(write_json(out / "results.json", config, histories, summary, line, lams, samples, elapsed))
    return paths


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the demo on ``--threads`` torch threads, restoring the caller's thread count afterwards (also on errors)."""
    args = parse_args(argv, prog)
    check_extras()
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        paths = _run(args, start)
    finally:
        torch.set_num_threads(threads)
    print(f"Done in {time.perf_counter() - start:.0f} s. Wrote:", *map(str, paths), sep="\n  ")
    return 0


def _demo(argv: Sequence[str]) -> int:
    return main(argv, prog="mixup-collate demo")


COMMANDS = {"demo": (_demo, "train a small CNN with and without Mixup or CutMix, compare, and draw pictures")}


def _command_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixup-collate", description="Mixup as a DataLoader collate function: tools and a demo."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def command(argv: Sequence[str] | None = None) -> int:
    """``mixup-collate COMMAND ...`` (the console script): everything after the command goes to its own parser."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]][0](argv[1:])
    parser = _command_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 2
