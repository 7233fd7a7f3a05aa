"""Does Mixup help, and what does it do to the images? Train a small CNN with and without it and compare.

``python -m mixup_collate.demo`` (or ``mixup-collate demo``) trains the same CNN twice per seed, identical
but for the collate: ``default_collate`` + cross-entropy, and ``MixupCollate`` + ``mixup_cross_entropy``.
It prints a table of validation accuracy and loss, a verdict, and writes pictures and ``results.json``.
Needs the optional extra: ``pip install "mixup-collate[demo]"``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from .collate import MixupCollate
from .loss import mixup_cross_entropy

__all__ = ["DemoData", "TensorPairs", "build_cnn", "load_data", "main", "run_experiment"]

_EXTRAS = {"matplotlib": "matplotlib", "sklearn": "scikit-learn", "tqdm": "tqdm"}
RUNS = ("plain", "mixup")


class TensorPairs(Dataset):
    """``(x[i], int(y[i]))`` samples from two tensors (module level, so worker processes can pickle it)."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.x[i], int(self.y[i])


@dataclass
class DemoData:
    """A train/validation split with what the model needs to know about it."""

    train: Dataset
    val: Dataset
    classes: list[str]
    shape: tuple[int, ...]
    name: str


def check_extras() -> None:
    """Fail early, naming the extra to install, if matplotlib, scikit-learn or tqdm is missing."""
    missing = [pkg for mod, pkg in _EXTRAS.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise SystemExit(f'The demo needs {", ".join(missing)}: pip install "mixup-collate[demo]"')


def load_digits_split(val_fraction: float = 0.5, seed: int = 0) -> DemoData:
    """scikit-learn's bundled 8x8 digits as float ``(1, 8, 8)`` tensors in ``[0, 1]``, split stratified.

    Half for validation: the CNN is not at its ceiling on 900 training digits, and 900 validation
    digits resolve accuracy to 0.11 points.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(digits.target, dtype=torch.int64)
    train, val = train_test_split(range(len(y)), test_size=val_fraction, stratify=digits.target, random_state=seed)
    classes = [str(c) for c in digits.target_names]
    return DemoData(TensorPairs(x[train], y[train]), TensorPairs(x[val], y[val]), classes, (1, 8, 8), "sklearn digits")


def load_image_folder(root: str, image_size: int, val_fraction: float = 0.2, seed: int = 0) -> DemoData:
    """An ``ImageFolder`` as uint8 ``(3, S, S)`` tensors (resize + center crop), split at random with ``seed``."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    transform = v2.Compose([v2.Resize(image_size), v2.CenterCrop(image_size), v2.PILToTensor()])
    try:
        folder = ImageFolder(root, transform=transform)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise SystemExit(f"--data {root}: {e} (expected an ImageFolder: one sub-folder of images per class)") from e
    if len(folder) < 2:
        raise SystemExit(f"{root} holds {len(folder)} image(s); the demo needs at least 2")
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(val_fraction * len(folder)))
    train, val = Subset(folder, order[n_val:]), Subset(folder, order[:n_val])
    return DemoData(train, val, list(folder.classes), (3, image_size, image_size), f"ImageFolder {root}")


def load_data(args: argparse.Namespace) -> DemoData:
    """The user's ``--data`` folder, or the bundled digits."""
    return load_digits_split() if args.data is None else load_image_folder(args.data, args.image_size)


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def build_cnn(in_channels: int, num_classes: int, image_size: int, width: int = 32) -> nn.Sequential:
    """A small VGG-style CNN: conv stages halving the size down to about 4 px, then global average pooling."""
    stages = max(1, round(math.log2(image_size / 4)))
    layers: list[nn.Module] = []
    c = in_channels
    for i in range(stages):
        out = width * 2 ** min(i, 2)
        layers += [_conv(c, out), _conv(out, out), nn.MaxPool2d(2)]
        c = out
    layers += [_conv(c, 2 * c), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * c, num_classes)]
    return nn.Sequential(*layers)


def _as_input(x: Tensor, device: torch.device) -> Tensor:
    """Inputs on the device as float; ``uint8`` images scaled to ``[0, 1]`` as ``MixupCollate`` does."""
    x = x.to(device)
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def _loader(ds: Dataset, args: argparse.Namespace, collate: Any, seed: int | None) -> DataLoader:
    shuffle = seed is not None
    return DataLoader(
        ds,
        batch_size=args.batch_size if shuffle else 512,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        collate_fn=collate,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )


def train_epoch(
    model: nn.Module, loader: DataLoader, opt: Any, sched: Any, args: argparse.Namespace, lams: list
) -> float:
    """One epoch (at most ``--max-batches`` steps); returns the mean training loss."""
    model.train()
    total, steps = 0.0, 0
    for step, batch in enumerate(loader):
        if args.max_batches and step >= args.max_batches:
            break
        if len(batch) == 4:
            x, y_a, y_b, lam = batch
            loss = mixup_cross_entropy(model(x), y_a, y_b, lam)
            lams.append(lam.detach().cpu())
        else:
            x, y = batch
            loss = F.cross_entropy(model(_as_input(x, args.device)), y.to(args.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total, steps = total + loss.item(), steps + 1
    return total / max(steps, 1)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, float]:
    """Plain cross-entropy and accuracy over a validation loader."""
    model.eval()
    loss, correct, n = 0.0, 0, 0
    for x, y in loader:
        logits = model(_as_input(x, device))
        y = y.to(device)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    return loss / n, correct / n


def train_run(
    state: dict, data: DemoData, args: argparse.Namespace, seed: int, run: str, lams: list
) -> dict[str, list[float]]:
    """Train a CNN from ``state`` for ``--epochs`` (``run`` is "plain" or "mixup"); per-epoch losses and accuracy."""
    from tqdm import tqdm

    model = build_cnn(data.shape[0], len(data.classes), data.shape[-1]).to(args.device)
    model.load_state_dict(state)
    collate = MixupCollate(args.alpha, device=args.device, seed=seed) if run == "mixup" else default_collate
    train, val = _loader(data.train, args, collate, seed), _loader(data.val, args, default_collate, None)
    steps = min(len(train), args.max_batches or len(train))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_acc": []}
    bar = tqdm(range(args.epochs), desc=f"seed {seed} {run}", leave=False, unit="epoch")
    for _ in bar:
        history["train_loss"].append(train_epoch(model, train, opt, sched, args, lams))
        val_loss, val_acc = evaluate(model, val, args.device)
        history["val_loss"].append(val_loss)
        history["val_acc"].append(val_acc)
        bar.set_postfix(val_acc=f"{100 * val_acc:.1f}%")
    return history


def run_experiment(data: DemoData, args: argparse.Namespace) -> tuple[list[dict], Tensor]:
    """Per seed, the plain and the mixup run from the same initial weights; also every ``lam`` drawn."""
    histories, lams = [], []
    for seed in args.seeds:
        torch.manual_seed(seed)
        state = copy.deepcopy(build_cnn(data.shape[0], len(data.classes), data.shape[-1]).state_dict())
        runs = {run: train_run(state, data, args, seed, run, lams) for run in RUNS}
        histories.append({"seed": seed, **runs})
    return histories, torch.cat(lams) if lams else torch.empty(0)


def _stats(values: Sequence[float]) -> dict[str, Any]:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": list(values)}


def summarize(histories: list[dict]) -> dict[str, dict]:
    """Best and final validation accuracy and final validation loss of each run, over seeds."""
    return {
        run: {
            "best_val_acc": _stats([max(h[run]["val_acc"]) for h in histories]),
            "final_val_acc": _stats([h[run]["val_acc"][-1] for h in histories]),
            "final_val_loss": _stats([h[run]["val_loss"][-1] for h in histories]),
        }
        for run in RUNS
    }


def format_table(summary: dict[str, dict]) -> str:
    """The terminal table: mean ± std over seeds (accuracy in %)."""
    lines = [f"{'':8}{'best val acc':>18}{'final val acc':>18}{'final val loss':>18}"]
    for run in RUNS:
        s = summary[run]
        acc = [f"{100 * s[k]['mean']:.2f} ± {100 * s[k]['std']:.2f} %" for k in ("best_val_acc", "final_val_acc")]
        loss = f"{s['final_val_loss']['mean']:.3f} ± {s['final_val_loss']['std']:.3f}"
        lines.append(f"{run:8}{acc[0]:>18}{acc[1]:>18}{loss:>18}")
    return "\n".join(lines)


def verdict(summary: dict[str, dict], n_seeds: int) -> str:
    """One honest line: did mixup raise the final validation accuracy, did it raise the validation loss.

    A difference counts as clear when it exceeds the larger seed-to-seed standard deviation (needs 2+ seeds).
    """
    plain, mixup = summary["plain"], summary["mixup"]
    diff = 100 * (mixup["final_val_acc"]["mean"] - plain["final_val_acc"]["mean"])
    noise = 100 * max(plain["final_val_acc"]["std"], mixup["final_val_acc"]["std"])
    clear = n_seeds > 1 and abs(diff) > noise
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    if diff > 0:
        acc = f"mixup raised final validation accuracy by {diff:+.2f} points"
    elif diff < 0:
        acc = f"mixup lowered final validation accuracy by {-diff:.2f} points"
    else:
        acc = "mixup left final validation accuracy unchanged"
    if n_seeds == 1:
        acc += " (1 seed: too few to tell an effect from noise)"
    else:
        acc += f" ({seeds})" if clear or diff == 0 else f" ({seeds}, within the seed-to-seed std of {noise:.2f})"
    lp, lm = plain["final_val_loss"]["mean"], mixup["final_val_loss"]["mean"]
    loss_up = lm > lp
    loss = f"{'raised' if loss_up else 'did not raise'} validation loss ({lm:.3f} vs {lp:.3f})"
    gain = clear and diff > 0
    if gain and loss_up:
        tail = "as the reference describes"
    elif loss_up:
        tail = "the reference's higher loss but not a clear accuracy gain here"
    elif gain:
        tail = "a clear accuracy gain but not the reference's higher loss"
    else:
        tail = "unlike the reference (higher accuracy, higher validation loss)"
    return f"Verdict: {acc} and {loss}: {tail}."


def lam_summary(lams: Tensor, bins: int = 25) -> dict[str, Any]:
    """Counts of the drawn ``lam`` on ``[0.5, 1]`` (the full draws are summarized, not stored)."""
    counts = torch.histc(lams.float(), bins=bins, min=0.5, max=1.0) if len(lams) else torch.zeros(bins)
    edges = torch.linspace(0.5, 1.0, bins + 1)
    mean = lams.mean().item() if len(lams) else 0.5
    return {"count": len(lams), "mean": mean, "edges": edges.tolist(), "counts": counts.tolist()}


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
Train a small CNN twice per seed, with and without Mixup (same data, initial weights, shuffling and
schedule), compare validation accuracy and loss, and draw what Mixup does to the images."""

_EXAMPLES = """\
examples:
  %(prog)s
      the bundled 8x8 digits, 3 seeds x 2 runs: a minute or two on 2 CPU cores
  %(prog)s --epochs 100 --seeds 10
      a longer, less noisy comparison
  %(prog)s --data ~/photos --image-size 64 --device cuda --workers 4
      your own images: one sub-folder per class
"""


def parse_args(argv: Sequence[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    """The demo's command line."""
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
        "--alpha", type=_number(float, 0), default=0.4, help="Mixup's Beta(alpha, alpha) concentration (%(default)s)"
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
    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return args


def _config(args: argparse.Namespace, data: DemoData) -> dict[str, Any]:
    config = {k: str(v) if isinstance(v, torch.device) else v for k, v in vars(args).items()}
    return {**config, "dataset": data.name, "classes": data.classes, "n_train": len(data.train), "n_val": len(data.val)}


def write_results(
    out: Path, args: argparse.Namespace, data: DemoData, histories: list[dict], lams: Tensor, start: float
) -> list[Path]:
    """Summarize, print the table and verdict, write the pictures and ``results.json``; return the paths."""
    from . import demo_plots

    summary = summarize(histories)
    line = verdict(summary, len(args.seeds))
    print(format_table(summary), line, sep="\n")
    out.mkdir(parents=True, exist_ok=True)
    paths = demo_plots.write_all(out, data, histories, lams, args)
    results = {
        "config": _config(args, data),
        "histories": histories,
        "summary": summary,
        "verdict": line,
        "lam": lam_summary(lams),
        "elapsed_s": time.perf_counter() - start,
    }
    paths.append(out / "results.json")
    paths[-1].write_text(json.dumps(results, indent=2))
    return paths


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the experiment, print the table and verdict, write the pictures and ``results.json``."""
    args = parse_args(argv, prog)
    check_extras()
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        data = load_data(args)
        print(f"{data.name}: {len(data.train)} train / {len(data.val)} val, {len(data.classes)} classes, {args.device}")
        histories, lams = run_experiment(data, args)
        paths = write_results(Path(args.out), args, data, histories, lams, start)
    finally:
        torch.set_num_threads(threads)
    print(f"Done in {time.perf_counter() - start:.0f} s. Wrote:", *map(str, paths), sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
