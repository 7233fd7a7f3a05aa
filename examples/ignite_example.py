"""Mixup and CutMix with PyTorch Ignite's ``create_supervised_trainer``, checkpointed with ignite's ``Checkpoint``.

    python examples/ignite_example.py --epochs 3                      # (x, target) soft targets, ignite's defaults
    python examples/ignite_example.py --epochs 3 --pairs              # (x, y_a, y_b, lam) with MixupLoss
    python examples/ignite_example.py --epochs 2 --out ckpt           # checkpoints at every epoch's end
    python examples/ignite_example.py --epochs 3 --out ckpt --resume ckpt/checkpoint_2.pt

Two ways, as the README's two diffs: ``MixupCollate(soft_targets=True, num_classes=K)`` batches unpack as
``(x, target)``, which ignite's default ``prepare_batch`` and ``nn.CrossEntropyLoss`` take as they are; the
4-tuple needs a ``prepare_batch`` that hands the loss the target as one ``(y_a, y_b, lam)`` triple, and
``MixupLoss``, which takes it so. Either way an ``Events.EPOCH_STARTED`` handler sets the collate's epoch
and the collate is one of the objects ignite's ``Checkpoint`` saves and loads: a resumed run draws what
the uninterrupted run drew.
"""

from __future__ import annotations

import argparse

import torch
from ignite.engine import Events, create_supervised_evaluator, create_supervised_trainer
from ignite.handlers import Checkpoint, DiskSaver
from ignite.metrics import Accuracy
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mixup_collate import MixupCollate, MixupLoss

CLASSES = 4


def stripes(n: int, seed: int) -> TensorDataset:
    """``n`` generated ``(1, 8, 8)`` pictures: noise with a bright row whose position is the class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    images = torch.rand(n, 1, 8, 8, generator=g) * 0.5
    images[torch.arange(n), 0, 2 * labels] += 0.5
    return TensorDataset(images, labels)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="mixup-collate with PyTorch Ignite")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--pairs", action="store_true", help="(x, y_a, y_b, lam) batches and MixupLoss")
    parser.add_argument("--out", default=None, help="save a checkpoint here at every epoch's end")
    parser.add_argument("--resume", default=None, help="a checkpoint file written with --out")
    return parser


def build(args: argparse.Namespace) -> dict:
    """The trainer, its loader and collate, the evaluator, and what a checkpoint holds, in the README diffs' order."""
    torch.manual_seed(0)
    device = torch.device("cpu")
    num_classes, train_set = CLASSES, stripes(args.samples, 0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, num_classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    if args.pairs:
        collate = MixupCollate(alpha=0.4, seed=0, device=device)
    else:
        collate = MixupCollate(alpha=0.4, soft_targets=True, num_classes=num_classes, seed=0, device=device)
    train_loader = DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, collate_fn=collate, num_workers=args.workers,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    if args.pairs:

        def prepare_batch(batch, device, non_blocking):
            """The 4-tuple for ignite: the model gets ``x``, the loss the target as one ``(y_a, y_b, lam)`` triple."""
            x, y_a, y_b, lam = batch
            return x, (y_a, y_b, lam)

        trainer = create_supervised_trainer(
            model, optimizer, MixupLoss(nn.CrossEntropyLoss()), device=device, prepare_batch=prepare_batch
        )
    else:
        trainer = create_supervised_trainer(model, optimizer, nn.CrossEntropyLoss(), device=device)

    @trainer.on(Events.EPOCH_STARTED)
    def start_epoch(engine):
        collate.set_epoch(engine.state.epoch - 1)  # ignite counts epochs from 1

    to_save = {"model": model, "optimizer": optimizer, "trainer": trainer, "mixup": collate}
    if args.out:
        out_dir = args.out
        trainer.add_event_handler(Events.EPOCH_COMPLETED, Checkpoint(to_save, DiskSaver(out_dir), n_saved=None))
    val_loader = DataLoader(stripes(args.samples // 4, 1), batch_size=args.batch_size)
    evaluator = create_supervised_evaluator(model, metrics={"accuracy": Accuracy()}, device=device)
    return {"trainer": trainer, "train_loader": train_loader, "collate": collate, "to_save": to_save,
            "evaluator": evaluator, "val_loader": val_loader}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    run = build(args)
    if args.resume:
        Checkpoint.load_objects(to_load=run["to_save"], checkpoint=torch.load(args.resume, weights_only=False))
    run["trainer"].run(run["train_loader"], max_epochs=args.epochs)
    run["evaluator"].run(run["val_loader"])
    print(f"validation accuracy {run['evaluator'].state.metrics['accuracy']:.3f}")
    return run


if __name__ == "__main__":
    main()
