"""Mixup with fastai: PyTorch DataLoaders with ``MixupCollate`` inside fastai's ``DataLoaders`` and ``Learner``.

    python examples/fastai_example.py --epochs 3

fastai splits a batch into inputs and targets at ``dls.n_inp``, which it guesses as "all but the last" for
a plain PyTorch DataLoader: ``(x, y_a, y_b, lam)`` would become three inputs and one target. With
``dls.n_inp = 1`` the model gets ``x`` and the loss gets ``(y_a, y_b, lam)``, which ``mixup_cross_entropy``
takes as they are. The validation loader's unmixed collate (``enabled=False``) yields the same 4-tuple
with ``lam = 1``, so the same loss and metric serve both.
"""

from __future__ import annotations

import argparse

import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mixup_collate import MixupCollate, mixup_cross_entropy

CLASSES = 4


def stripes(n: int, seed: int) -> TensorDataset:
    """``n`` generated ``(1, 8, 8)`` uint8 pictures: noise with a bright row whose position is the class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    images = torch.randint(0, 128, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    images[torch.arange(n), 0, 2 * labels] += 127
    return TensorDataset(images, labels)


def accuracy(logits: torch.Tensor, y_a: torch.Tensor, *mixing: torch.Tensor) -> torch.Tensor:
    """Accuracy against each sample's own label (the validation batches are unmixed)."""
    return (logits.argmax(1) == y_a).float().mean()


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="mixup-collate with fastai")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0)
    return parser


def build(args: argparse.Namespace) -> Learner:
    """The Learner over PyTorch DataLoaders whose collates mix (training) and convert (validation)."""
    torch.manual_seed(0)
    device = torch.device("cpu")
    train = DataLoader(
        stripes(args.samples, 0), batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
        collate_fn=MixupCollate(alpha=0.4, mean=0.25, std=0.25, device=device, seed=0),
    )  # fmt: skip
    valid = DataLoader(
        stripes(256, 1), batch_size=64, collate_fn=MixupCollate(enabled=False, mean=0.25, std=0.25, device=device)
    )
    dls = DataLoaders(train, valid, device=device)
    dls.n_inp = 1  # x is the input; (y_a, y_b, lam) go to the loss
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, CLASSES))
    return Learner(dls, model, loss_func=mixup_cross_entropy, metrics=accuracy, lr=0.01)


def main(argv: list[str] | None = None) -> Learner:
    args = get_args_parser().parse_args(argv)
    learner = build(args)
    with learner.no_logging():
        learner.fit(args.epochs, cbs=[])
    return learner


if __name__ == "__main__":
    learner = main()
    print("final validation loss and accuracy:", learner.recorder.values[-1][1:])
