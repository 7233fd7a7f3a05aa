"""Per-sample CutMix over space and over time, on video clips: a small 3-D CNN on generated motion.

    python examples/video.py                    # four runs, seed 0, prints each run's accuracy
    python examples/video.py --seeds 0 1 2      # a few seeds per run
    python examples/video.py --picture video_temporal_cutmix.png # also writes the picture

Every sample is a ``uint8`` clip ``(T, C, H, W)`` of a bright square gliding across a noisy background;
its class is the direction of the motion (right, left, down, up), so no single frame tells it: the net
must compare frames. The same 3-D CNN trains four times from the same initialisation on the same clips:
unmixed, with CutMix boxes over ``(H, W)`` shared by every frame (``cutmix_dims=(-2, -1)``, the spatial
CutMix of pytorchvideo and mmaction2), over runs of whole frames (``cutmix_dims=(-4,)``) and over
spatio-temporal blocks (``cutmix_dims=(-4, -2, -1)``). ``mean``/``std`` apply along ``C``
(``channel_dim=-3``). Each run prints its accuracy on unmixed validation clips; ``--picture`` writes a
temporally cut clip, frames in a row, the pasted frames framed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from mixup_collate import MixupCollate, mixup_cross_entropy

DIRECTIONS = ("right", "left", "down", "up")
STEPS = torch.tensor([[0, 1], [0, -1], [1, 0], [-1, 0]])  # (row, column) per frame
MEAN, STD = (0.45, 0.45, 0.45), (0.25, 0.25, 0.25)
RUNS = {"plain": None, "spatial": (-2, -1), "temporal": (-4,), "block": (-4, -2, -1)}


class Motion(Dataset):
    """``n`` generated ``uint8`` clips ``(frames, 3, size, size)``; the label is the square's direction."""

    def __init__(self, n: int, frames: int = 8, size: int = 16, seed: int = 0) -> None:
        self.n, self.frames, self.size, self.seed = n, frames, size, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        label = int(torch.randint(0, 4, (), generator=g))
        side = int(torch.randint(3, 6, (), generator=g))
        clip = torch.randint(0, 90, (self.frames, 3, self.size, self.size), generator=g, dtype=torch.uint8)
        colour = torch.randint(150, 256, (3, 1, 1), generator=g, dtype=torch.uint8)
        start = torch.randint(0, self.size - side, (2,), generator=g)
        for t in range(self.frames):
            r, c = ((start + t * STEPS[label]) % (self.size - side)).tolist()
            clip[t, :, r : r + side, c : c + side] = colour
        return clip, label


class Tiny3D(nn.Module):
    """Two 3-D convolutions over ``(C, T, H, W)``, pooled, then a linear classifier."""

    def __init__(self, classes: int = 4, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, width, 3, padding=1), nn.BatchNorm3d(width), nn.ReLU(),
            nn.Conv3d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm3d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool3d(1), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, T, C, H, W)
        return self.head(self.features(x.transpose(1, 2)))


def collate(dims: tuple[int, ...] | None, device: torch.device, seed: int) -> MixupCollate:
    """CutMix over ``dims``; ``None`` for the same conversion unmixed (the plain run and evaluation)."""
    return MixupCollate(
        0, cutmix_alpha=1.0, cutmix_dims=dims or (-2, -1), enabled=dims is not None,
        mean=MEAN, std=STD, channel_dim=-3, device=device, seed=seed,
    )  # fmt: skip


def train(args: argparse.Namespace, dims: tuple[int, ...] | None, seed: int, device: torch.device) -> float:
    """One run from the seed's initialisation: ``epochs`` of Adam, then the validation accuracy."""
    torch.manual_seed(seed)
    loader = DataLoader(
        Motion(args.samples, args.frames, args.size, seed=seed), batch_size=args.batch_size, shuffle=True,
        drop_last=True, num_workers=args.workers, collate_fn=collate(dims, device, seed),
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    model = Tiny3D().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    for _ in range(args.epochs):
        model.train()
        for x, y_a, y_b, lam in loader:  # x (B, T, C, H, W) on `device`, normalised
            loss = mixup_cross_entropy(model(x), y_a, y_b, lam)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    validation = Motion(max(1, args.samples // 4), args.frames, args.size, seed=10_000 + seed)
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y, _, _ in DataLoader(validation, batch_size=64, collate_fn=collate(None, device, seed)):
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(validation)


def picture(path: Path, frames: int, size: int, device: torch.device) -> Path:
    """One clip cut along time: its own frames, the partner's, and the mixed clip with the pasted frames framed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    clips = [Motion(4, frames, size * 2, seed=7)[i] for i in range(4)]
    mixer = MixupCollate(0, cutmix_alpha=1.0, cutmix_dims=(-4,), cycle=True, device=device, seed=2)
    batch = mixer(clips).finish()
    perm, lam = batch.perm.tolist(), batch.lam.cpu().tolist()
    i = min(range(4), key=lambda k: abs(lam[k] - 0.6))  # a clip keeping about 60% of its frames
    j = perm[i]
    pasted = [not torch.allclose(batch.x[i, t].cpu(), clips[i][0][t].float() / 255, atol=1e-4) for t in range(frames)]
    rows = [
        ("own clip", clips[i][0].float() / 255),
        ("partner", clips[j][0].float() / 255),
        ("mixed", batch.x[i].cpu()),
    ]
    fig = Figure(figsize=(1.1 * frames, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, frames, squeeze=False)
    for row, (name, clip) in enumerate(rows):
        for t in range(frames):
            ax = axes[row, t]
            ax.imshow(clip[t].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 2 and pasted[t]:
                ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, lw=4, ec="orange"))
            if t == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle(
        f"CutMix over time (cutmix_dims=(-4,)): {DIRECTIONS[clips[i][1]]} clip keeps {batch.lam[i].item():.2f}, "
        f"frames from a {DIRECTIONS[clips[j][1]]} clip framed",
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="A small 3-D CNN on generated motion, with spatial and temporal CutMix")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--samples", type=int, default=512, help="training clips (+25%% for validation)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=16, help="frame side")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("-b", "--batch-size", type=int, default=32)
    p.add_argument("-j", "--workers", type=int, default=0)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--picture", default=None, help="write the picture to this PNG (none by default)")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    device = torch.device(args.device)
    results: dict = {run: [] for run in args.runs}
    for seed in args.seeds:
        for run in results:
            results[run].append(train(args, RUNS[run], seed, device))
            print(f"seed {seed} {run:>8}: accuracy {results[run][-1]:.3f}", flush=True)
    for run, values in results.items():
        print(f"{run:>8}: accuracy {sum(values) / len(values):.3f} over {len(values)} seed(s)")
    if args.picture:
        print(f"wrote {picture(Path(args.picture), args.frames, args.size, device)}")
    return results


if __name__ == "__main__":
    main()
