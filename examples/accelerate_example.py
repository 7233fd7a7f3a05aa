"""Mixup in a Hugging Face accelerate loop, with a resumable checkpoint.

    python examples/accelerate_example.py --cpu --epochs 3
    python examples/accelerate_example.py --cpu --epochs 3 --stop-at 5 --out ckpt   # interrupted after 5 steps
    python examples/accelerate_example.py --cpu --epochs 3 --resume ckpt            # goes on where it stopped
    accelerate launch --num_processes 2 examples/accelerate_example.py --cpu --iterable

The loop is accelerate's ``examples/complete_cv_example.py`` in miniature, with the change
``examples/accelerate_cv.diff`` makes to it: dict samples, the normalisation ``(image - mean) / std``
kept in the loop (mixing commutes with it), checkpoints resumed with ``skip_first_batches``.
``accelerator.prepare`` keeps the collate; its transfer only names the device, and the batch is mixed
there when the loop unpacks it. The collate is registered for checkpointing, and its epoch is set in
every epoch but the one a checkpoint is resumed into (its stream goes on from the checkpoint), so a
resumed run draws exactly what the uninterrupted run drew: ``skip_first_batches`` skips the batches
already trained on without drawing for them. ``dispatch_batches=False`` lets every process load and mix
its own batches; an IterableDataset needs it: accelerate's default for one (rank 0 loads and concatenates
everyone's batches) only handles plain tensors and fails with "Can only concatenate tensors" or "Can
only find the batch size of tensors".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from mixup_collate import MixupCollate, mixup_cross_entropy


def picture(i: int, label: int) -> torch.Tensor:
    """Sample ``i``: a ``(1, 8, 8)`` picture, noise with a bright row whose position is the label (0-3)."""
    g = torch.Generator().manual_seed(i)
    image = torch.rand(1, 8, 8, generator=g) * 0.5
    image[0, 2 * label] += 0.5
    return image


class Rows(Dataset):
    """Map-style: ``n`` labelled pictures, also carrying their index (it reaches the loop as ``batch.extras``)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"image": picture(i, i % 4), "label": i % 4, "index": i}


class RowStream(IterableDataset):
    """The same pictures as a stream, each process reading every sample (accelerate shards the batches)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        for i in range(self.n):
            yield {"image": picture(i, i % 4), "label": i % 4, "index": i}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="mixup-collate with accelerate: prepare, train, checkpoint, resume")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--iterable", action="store_true", help="stream the data (an IterableDataset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write a checkpoint here when stopping (see --stop-at)")
    parser.add_argument("--stop-at", type=int, default=None, help="stop after this many steps (an interruption)")
    parser.add_argument("--resume", default=None, help="a checkpoint directory written by --out")
    return parser


def main(args: argparse.Namespace) -> dict:
    accelerator = Accelerator(
        cpu=args.cpu,
        # Every process loads and mixes its own batches; seedable shuffling so a resumed epoch has the same order.
        dataloader_config=DataLoaderConfiguration(
            dispatch_batches=False, use_seedable_sampler=True, data_seed=args.seed
        ),
    )
    seed = args.seed
    torch.manual_seed(seed)
    train_dataset = RowStream(args.samples) if args.iterable else Rows(args.samples)
    collate = MixupCollate(alpha=0.4, seed=seed, device=accelerator.device)
    train_dataloader = DataLoader(
        train_dataset, batch_size=args.batch_size, shuffle=not args.iterable, num_workers=args.workers,
        collate_fn=collate,
    )  # fmt: skip
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    mean, std = torch.tensor(0.3, device=accelerator.device), torch.tensor(0.2, device=accelerator.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
    accelerator.register_for_checkpointing(collate)

    first_epoch, done = 0, 0  # where to start: the epoch, and the steps of it already trained
    if args.resume:
        accelerator.load_state(args.resume)
        progress = json.loads((Path(args.resume) / "progress.json").read_text())
        first_epoch, done = progress["epoch"], progress["step"]

    steps, history = 0, []
    for epoch in range(first_epoch, args.epochs):
        train_dataloader.set_epoch(epoch)  # the shuffling
        if done:  # the epoch resumed into
            active_dataloader = accelerator.skip_first_batches(train_dataloader, done)
        else:
            collate.set_epoch(epoch)  # not in the epoch resumed into: the checkpoint's stream goes on there
            active_dataloader = train_dataloader
        step = done
        for image, y_a, y_b, lam in active_dataloader:  # mixed now, on accelerator.device
            inputs = (image - mean) / std  # mixing commutes with this normalisation: it stays as it was
            outputs = model(inputs)
            loss = mixup_cross_entropy(outputs, y_a, y_b, lam)
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
            record = {"lam": lam.cpu(), "y_a": y_a.cpu(), "inputs": inputs.detach().cpu()}
            history.append({"epoch": epoch, "step": step, "loss": loss.item(), **record})
            step += 1
            steps += 1
            if steps == args.stop_at:
                if args.out:
                    accelerator.save_state(args.out)
                    if accelerator.is_main_process:
                        progress = {"epoch": epoch, "step": step}
                        (Path(args.out) / "progress.json").write_text(json.dumps(progress))
                accelerator.wait_for_everyone()
                return {"history": history, "stopped": True}
        done = 0
        losses = [h["loss"] for h in history if h["epoch"] == epoch]
        accelerator.print(f"epoch {epoch}: mean loss {sum(losses) / max(len(losses), 1):.3f}")
    return {"history": history, "stopped": False}


if __name__ == "__main__":
    main(get_args_parser().parse_args())
