"""Mixup in a PyTorch Lightning run: the collate in the DataLoader, MixupCallback in the Trainer.

    python examples/lightning_example.py --epochs 5 --workers 2

Trains a small CNN on generated uint8 pictures (four classes: which corner holds a bright square).
Lightning moves each batch with its own transfer, which only names the device; the batch is mixed
there when training_step unpacks it. MixupCallback sets the collate's epoch, gives it the input
dtype of a "*-true" precision, and keeps its random stream in the checkpoints (resume with
--resume PATH and the run draws what it would have drawn without the interruption).
"""

from __future__ import annotations

import argparse

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mixup_collate import MixupCollate, mixup_cross_entropy
from mixup_collate.lightning import MixupCallback


class Corners(Dataset):
    """``n`` uint8 pictures ``(3, 16, 16)``: noise, and a bright 6x6 square in the corner named by the label."""

    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 4, (n,), generator=g)
        self.images = torch.randint(0, 120, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
        for image, label in zip(self.images, self.labels.tolist()):
            top, left = (label // 2) * 10, (label % 2) * 10
            image[:, top : top + 6, left : left + 6] += 120

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


class Classifier(pl.LightningModule):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128, 4),
        )  # fmt: skip
        self.losses: list[tuple[int, float]] = []

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y_a, y_b, lam = batch  # mixed here, on self.device, in the Trainer's precision
        loss = mixup_cross_entropy(self(x), y_a, y_b, lam)
        self.log("train_loss", loss, batch_size=len(x))
        self.losses.append((self.current_epoch, loss.item()))
        return loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--precision", default="32-true", help='"bf16-mixed", "64-true", "bf16-true", ...')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="lightning_logs", help="where checkpoints go")
    parser.add_argument("--resume", default=None, help="a checkpoint to resume from")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)  # the model's initial weights and the shuffling
    # No device here: Lightning names the device when it moves the batch, and the batch is mixed there.
    collate = MixupCollate(alpha=0.4, mean=0.5, std=0.25, seed=args.seed)
    loader = DataLoader(
        Corners(args.samples), batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
        persistent_workers=args.workers > 0, collate_fn=collate,
    )  # fmt: skip
    model = Classifier()
    trainer = pl.Trainer(
        accelerator="auto", devices=1, max_epochs=args.epochs, precision=args.precision,
        default_root_dir=args.out, callbacks=[MixupCallback(collate)],
        logger=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, loader, ckpt_path=args.resume)

    epochs = sorted({epoch for epoch, _ in model.losses})
    per_epoch = [[loss for e, loss in model.losses if e == epoch] for epoch in epochs]
    means = [sum(losses) / len(losses) for losses in per_epoch]
    for epoch, mean in zip(epochs, means):
        print(f"epoch {epoch}: mean train loss {mean:.3f}")
    return {"epochs_seen": epochs, "first_loss": means[0], "last_loss": means[-1]}


if __name__ == "__main__":
    main()
