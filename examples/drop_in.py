"""The drop-in, end to end: an existing training loop gains mixup by changing two lines.

    python examples/drop_in.py [--epochs 10] [--workers 2] [--device cuda]

Trains a tiny CNN on scikit-learn's bundled digits with DataLoader workers, evaluating with the
same loop (MixupCollate(enabled=False) returns the batch unmixed).
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mixup_collate import MixupCollate, mixup_cross_entropy


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description="Mixup as a two-line change to a plain training loop.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--train-samples", type=int, default=1500, help="the rest of the 1797 digits validate")
    args = parser.parse_args(argv)

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.tensor(digits.target)
    n = args.train_samples
    train, val = TensorDataset(x[:n], y[:n]), TensorDataset(x[n:], y[n:])
    device = torch.device(args.device)

    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    ).to(device)  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    # The two changed lines: the collate_fn, and the loss. device= is explicit because the script has a
    # --device option: left out, MixupCollate picks CUDA whenever there is one, even for --device cpu.
    mixup = MixupCollate(alpha=0.4, device=device)
    train_loader = DataLoader(train, batch_size=64, shuffle=True, num_workers=args.workers, collate_fn=mixup)
    val_loader = DataLoader(val, batch_size=256, collate_fn=MixupCollate(enabled=False, device=device))

    history = []
    for epoch in range(args.epochs):
        model.train()
        for x_mix, y_a, y_b, lam in train_loader:  # on `device`, mixed there
            loss = mixup_cross_entropy(model(x_mix), y_a, y_b, lam)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = sum((model(xv).argmax(1) == yv).sum().item() for xv, yv, _, _ in val_loader)
        history.append({"epoch": epoch, "train_loss": loss.item(), "val_accuracy": correct / len(val)})
        print(f"epoch {epoch}: last train loss {loss.item():.3f}, val accuracy {correct / len(val):.3f}")
    return history


if __name__ == "__main__":
    main()
