"""Mixup with DistributedDataParallel, launched by torchrun: one process per device, each mixing its own batches.

One machine, N processes (GPUs: one each, NCCL; CPU only: gloo)::

    torchrun --standalone --nproc_per_node=N examples/train_ddp.py --epochs 5

Several machines: the same command on each, meeting at a rendezvous endpoint on one of them (the
machines' ranks are assigned as they join)::

    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=node0.example.com:29400 \\
        --rdzv_id=mixup-run examples/train_ddp.py

or with fixed machine ranks: ``--nnodes=2 --node_rank=K --master_addr=node0.example.com --master_port=29500``
on machine K (0 on node0).

Each process reads its device from LOCAL_RANK. The collate is told that device; its random stream
mixes the seed with the process's rank, so the ranks draw different (and reproducible) ``lam``. Call
``set_epoch`` on both the DistributedSampler (which samples go to which rank) and the collate (a new
stream per epoch).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from mixup_collate import MixupCollate, mixup_cross_entropy


def generated_data(n: int, seed: int) -> TensorDataset:
    """``n`` uint8 pictures ``(1, 8, 8)``, noise plus a bright column at the label's position (4 classes)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    images = torch.randint(0, 128, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    images[torch.arange(n), :, :, 2 * labels] += 127
    return TensorDataset(images, labels)


def setup(device_choice: str = "auto") -> tuple[torch.device, int, int]:
    """This process's device, rank and world size, with the process group initialised.

    ``auto`` takes the GPU ``LOCAL_RANK`` where there is one for every local process, else the CPU.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device_choice == "auto" and torch.cuda.is_available() and torch.cuda.device_count() >= local_world:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if "WORLD_SIZE" in os.environ:  # set by torchrun: the rendezvous it made
        dist.init_process_group(backend)
    else:  # a plain `python train_ddp.py`: a group of one
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    return device, dist.get_rank(), dist.get_world_size()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="mixup-collate with DistributedDataParallel under torchrun")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", default=None, help="write each rank's draws and losses to DIR/rank<N>.json")
    parser.add_argument(
        "--device", choices=("auto", "cpu"), default="auto", help="auto: one GPU per process if there are enough"
    )
    args = parser.parse_args(argv)

    device, rank, world = setup(args.device)
    result = train(args, device, rank, world)
    if args.record:
        Path(args.record, f"rank{rank}.json").write_text(json.dumps(result))
    teardown(device)
    return result


def teardown(device: torch.device) -> None:
    """Leave the process group in order: after every rank is done, with nothing left that holds the group.

    ``train`` has returned, so the DDP model (whose reducer holds the group's backend), the optimizer and
    the loader are gone (``gc.collect`` for anything in a reference cycle); the barrier makes every rank
    finish its last collective before any rank shuts the group down. So the gloo backend and its threads
    are stopped here, by ``destroy_process_group``, not by whichever object happens to die last, possibly
    during interpreter exit.
    """
    gc.collect()
    dist.barrier(device_ids=[device.index] if device.type == "cuda" else None)
    dist.destroy_process_group()


def train(args: argparse.Namespace, device: torch.device, rank: int, world: int) -> dict:
    """Train on this rank; the draws and losses it saw."""
    torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    dataset = generated_data(args.samples, args.seed)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    collate = MixupCollate(alpha=0.4, mean=0.5, std=0.25, seed=args.seed, device=device)
    loader = DataLoader(
        dataset, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
        pin_memory=device.type == "cuda", collate_fn=collate,
    )  # fmt: skip
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)).to(device)
    model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    steps, epoch_losses = [], []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # which samples this rank gets
        collate.set_epoch(epoch)  # how they are mixed
        total = torch.zeros(2, device=device)
        for x, y_a, y_b, lam in loader:
            loss = mixup_cross_entropy(model(x), y_a, y_b, lam)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += torch.stack([loss.detach() * len(x), torch.tensor(len(x), device=device)])
            steps.append({"epoch": epoch, "device": str(x.device), "lam": lam.tolist()})
        dist.all_reduce(total)
        epoch_losses.append((total[0] / total[1]).item())
        if rank == 0:
            print(f"epoch {epoch}: mean loss over {world} processes {epoch_losses[-1]:.4f}", flush=True)

    return {"rank": rank, "world": world, "device": str(device), "steps": steps, "epoch_losses": epoch_losses}


if __name__ == "__main__":
    main()
