"""timm's training path with MixupCollate as its mixup: what examples/timm_train.diff does to train.py, runnable.

    python examples/timm_loop.py --mixup 0.4 --cutmix 1.0 --smoothing 0.1 --reprob 0.25 --mixup-off-epoch 2

The pieces are timm's own, as train.py wires them with --no-prefetcher: ``create_loader`` builds the
dataset transform (crop, flip, colour jitter, normalisation and random erasing, per sample) and the
DataLoader (persistent workers); ``create_model``; ``SoftTargetCrossEntropy``; the
``--mixup-off-epoch`` toggle. MixupCollate replaces ``Mixup``: it yields ``(input, target)`` with the
dense, label-smoothed targets ``Mixup`` would have made, mixed on the device. Turning it off works
with persistent workers too, because the workers only stack: the draws happen in this process.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image
from timm import create_model
from timm.data import create_loader
from timm.loss import SoftTargetCrossEntropy
from torch.utils.data import Dataset

from mixup_collate import MixupCollate


class Tints(Dataset):
    """Generated RGB pictures: noise, tinted red, green or blue (classes 0-2) or not at all (class 3).

    A tint survives timm's random crops, flips and colour jitter, so the task stays learnable.
    ``transform`` is set by timm's ``create_loader``.
    """

    def __init__(self, n: int, size: int = 40, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.targets = rng.integers(0, 4, n).tolist()
        self.images = rng.integers(0, 150, (n, size, size, 3), dtype=np.uint8)
        for image, k in zip(self.images, self.targets):
            if k < 3:
                image[..., k] += 105
        self.transform = None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(self.images[i])
        return (self.transform(image) if self.transform else image), self.targets[i]


def is_mixed(target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Per row of dense targets ``(B, K)``: whether it mixes two classes (an unmixed row peaks at ``1 - s + s / K``)."""
    return target.max(dim=1).values < 1 - smoothing + smoothing / target.shape[1] - 1e-6


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="timm's --no-prefetcher training path with MixupCollate")
    parser.add_argument("--model", default="resnet10t")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("-b", "--batch-size", type=int, default=16)
    parser.add_argument("-j", "--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--mixup", type=float, default=0.4)
    parser.add_argument("--cutmix", type=float, default=1.0)
    parser.add_argument("--cutmix-minmax", type=float, nargs="+", default=None)
    parser.add_argument("--mixup-prob", type=float, default=1.0)
    parser.add_argument("--mixup-switch-prob", type=float, default=0.5)
    parser.add_argument("--mixup-mode", default="batch", help='"batch" (one lam per batch), "pair" or "elem"')
    parser.add_argument("--mixup-off-epoch", type=int, default=0, help="turn mixup off from this epoch (0: never)")
    parser.add_argument("--smoothing", type=float, default=0.1)
    parser.add_argument("--reprob", type=float, default=0.25, help="random erasing probability")
    parser.add_argument("--no-prefetcher", action="store_true", help="required: train.py's prefetcher expects uint8")
    parser.add_argument("--aug-splits", type=int, default=0, help="AugMix splits: not supported with MixupCollate")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(args: argparse.Namespace) -> dict:
    # train.py's checks as the diff adds them, before anything is built.
    # fmt: off
    args.prefetcher = not args.no_prefetcher
    if (args.mixup > 0 or args.cutmix > 0. or args.cutmix_minmax) and (
            args.prefetcher or args.aug_splits or args.mixup_mode not in ('batch', 'elem')):
        raise SystemExit('MixupCollate: pass --no-prefetcher, no --aug-splits, --mixup-mode batch or elem')
    # fmt: on
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = create_model(args.model, num_classes=4).to(device)
    args.num_classes = model.num_classes  # as train.py sets it

    # What timm_train.diff puts in place of Mixup / FastCollateMixup (the same call).
    # fmt: off
    collate_fn = MixupCollate(
        args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax, prob=args.mixup_prob,
        switch_prob=args.mixup_switch_prob, per_sample=args.mixup_mode == 'elem', soft_targets=True,
        num_classes=args.num_classes, label_smoothing=args.smoothing, fold=False, seed=args.seed, device=device)
    loader = create_loader(
        Tints(args.samples, seed=args.seed), input_size=(3, args.img_size, args.img_size),
        batch_size=args.batch_size, is_training=True, use_prefetcher=False, re_prob=args.reprob,
        num_workers=args.workers, collate_fn=collate_fn, device=device,
    )
    # fmt: on
    train_loss_fn = SoftTargetCrossEntropy().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    history = []
    for epoch in range(args.epochs):
        # train.py's --mixup-off-epoch toggle, as the diff changes it
        if args.mixup_off_epoch and epoch >= args.mixup_off_epoch:  # noqa: SIM102
            if hasattr(loader.collate_fn, "mixup_enabled"):  # train.py: the `elif` after its prefetcher's case
                loader.collate_fn.mixup_enabled = False
        model.train()
        losses, mixed = [], []
        for input, target in loader:  # as train.py: (input, target), target dense (B, num_classes)
            input, target = input.to(device=device), target.to(device=device)
            loss = train_loss_fn(model(input), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            mixed.append(bool(is_mixed(target, args.smoothing).any()))
        history.append({"epoch": epoch, "loss": sum(losses) / len(losses), "mixed_batches": sum(mixed)})
        print(f"epoch {epoch}: loss {history[-1]['loss']:.3f}, mixed batches {sum(mixed)}/{len(mixed)}")
    return {"history": history, "collate_fn": collate_fn, "persistent_workers": loader.persistent_workers}


if __name__ == "__main__":
    main(get_args_parser().parse_args())
