"""The drop-in, end to end: an existing training loop gains mixup by changing two lines.

    python examples/drop_in.py

Trains a tiny CNN on scikit-learn's bundled digits for ten epochs with DataLoader workers,
evaluating with the same loop (MixupCollate(enabled=False) returns the batch unmixed).
"""

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mixup_collate import MixupCollate, mixup_cross_entropy


def main() -> None:
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.tensor(digits.target)
    train, val = TensorDataset(x[:1500], y[:1500]), TensorDataset(x[1500:], y[1500:])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    ).to(device)  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    # The two changed lines: the collate_fn, and the loss.
    train_loader = DataLoader(train, batch_size=64, shuffle=True, num_workers=2, collate_fn=MixupCollate(alpha=0.4))
    val_loader = DataLoader(val, batch_size=256, collate_fn=MixupCollate(enabled=False))

    for epoch in range(10):
        model.train()
        for x_mix, y_a, y_b, lam in train_loader:  # on `device`, mixed there
            loss = mixup_cross_entropy(model(x_mix), y_a, y_b, lam)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = sum((model(xv).argmax(1) == yv).sum().item() for xv, yv, _, _ in val_loader)
        print(f"epoch {epoch}: last train loss {loss.item():.3f}, val accuracy {correct / len(val):.3f}")


if __name__ == "__main__":
    main()
