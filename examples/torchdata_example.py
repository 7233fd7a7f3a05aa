"""Mixup with torchdata's ``StatefulDataLoader``: stop in the middle of an epoch, resume, and draw what an
uninterrupted run draws.

    python examples/torchdata_example.py --epochs 2 --stop-after 5 --out ckpt.pt   # stops after 5 steps
    python examples/torchdata_example.py --epochs 2 --resume ckpt.pt               # goes on from there

``StatefulDataLoader.state_dict()`` saves the sampler's and the workers' progress, not the ``collate_fn``:
the collate's random stream is saved beside it (``collate.state_dict()``), and ``set_epoch`` is not called
again for the epoch the run resumes into, which would restart that epoch's stream at its first batch.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import TensorDataset
from torchdata.stateful_dataloader import StatefulDataLoader

from mixup_collate import MixupCollate, mixup_cross_entropy

CLASSES = 4


def stripes(n: int, seed: int) -> TensorDataset:
    """``n`` generated ``(1, 8, 8)`` uint8 pictures: noise with a bright row whose position is the class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    images = torch.randint(0, 128, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    images[torch.arange(n), 0, 2 * labels] += 127
    return TensorDataset(images, labels)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="mixup-collate with torchdata's StatefulDataLoader")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this many steps (an interruption)")
    parser.add_argument("--out", default=None, help="write a checkpoint here after every step")
    parser.add_argument("--resume", default=None, help="a checkpoint written with --out")
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Train; returns every step's draws (``lam``, the partners' targets ``y_b``), its loss, and the accuracy."""
    args = get_args_parser().parse_args(argv)
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, CLASSES)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    collate = MixupCollate(alpha=0.4, mean=0.25, std=0.25, device=device, seed=0)
    loader = StatefulDataLoader(
        stripes(args.samples, 0), batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
        collate_fn=collate,
    )  # fmt: skip
    start_epoch, resumed = 0, False
    if args.resume:
        state = torch.load(args.resume, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        collate.load_state_dict(state["collate"])
        start_epoch, resumed = state["epoch"], True
    steps = []
    for epoch in range(start_epoch, args.epochs):
        if not resumed:  # the epoch resumed into goes on with the checkpoint's stream
            collate.set_epoch(epoch)
        resumed = False
        for x, y_a, y_b, lam in loader:
            loss = mixup_cross_entropy(model(x), y_a, y_b, lam)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps.append({"epoch": epoch, "lam": lam.tolist(), "y_b": y_b.tolist(), "loss": loss.item()})
            if args.out:
                torch.save(
                    {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                     "loader": loader.state_dict(), "collate": collate.state_dict()},
                    args.out,
                )  # fmt: skip
            if args.stop_after is not None and len(steps) == args.stop_after:
                return {"steps": steps, "accuracy": None}
    return {"steps": steps, "accuracy": accuracy(model, device)}


def accuracy(model: nn.Module, device: torch.device) -> float:
    """Accuracy on 256 new pictures, through an unmixed collate (``enabled=False``)."""
    unmixed = MixupCollate(enabled=False, mean=0.25, std=0.25, device=device)
    evaluation = StatefulDataLoader(stripes(256, 1), batch_size=64, collate_fn=unmixed)
    with torch.no_grad():
        hits = sum(int((model(x).argmax(1) == y).sum()) for x, y, _, _ in evaluation)
    return hits / 256


if __name__ == "__main__":
    result = main()
    print(f"{len(result['steps'])} steps, final loss {result['steps'][-1]['loss']:.3f}, accuracy {result['accuracy']}")
