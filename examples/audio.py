"""Mixup and time-segment CutMix on spectrograms: a small CNN on generated tones and noises.

    python examples/audio.py                    # three runs, seed 0, prints each run's accuracy
    python examples/audio.py --seeds 0 1 2      # a few seeds per run
    python examples/audio.py --picture audio_time_cutmix.png # also writes the picture

Every sample is a log-magnitude spectrogram ``(1, F, T)`` (``torch.stft`` of a generated one-second
waveform at 8 kHz) of one of four sounds: a steady low tone, a steady high tone, a rising chirp, or
bursts of noise, each with random pitch, timing and background noise. The same CNN trains three times
from the same initialisation on the same clips: unmixed, with Mixup (``alpha=0.4``), and with CutMix
over time segments (``cutmix_dims=(-1,)``: each spectrogram gets a run of its partner's frames, every
frequency, and ``lam`` is the share of frames it keeps). Each run prints its accuracy on unmixed
validation clips; ``--picture`` writes a spectrogram cut in time, the pasted segment marked.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from mixup_collate import MixupCollate, mixup_cross_entropy

SOUNDS = ("low tone", "high tone", "chirp", "noise bursts")
RATE, SECONDS, N_FFT, HOP = 8000, 1.0, 256, 128
RUNS = {
    "plain": dict(alpha=0.4, enabled=False),
    "mixup": dict(alpha=0.4),
    "time-cutmix": dict(alpha=0, cutmix_alpha=1.0, cutmix_dims=(-1,)),
}


def waveform(kind: int, g: torch.Generator) -> Tensor:
    """One second of sound ``(RATE,)``: a tone, a chirp or noise bursts, over quiet background noise."""
    t = torch.arange(int(RATE * SECONDS)) / RATE
    u = torch.rand(4, generator=g)
    if kind in (0, 1):  # a steady tone, low (200-500 Hz) or high (1500-3000 Hz)
        f = 200 + 300 * u[0] if kind == 0 else 1500 + 1500 * u[0]
        sound = torch.sin(2 * math.pi * f * t + 6.28 * u[1])
    elif kind == 2:  # a chirp rising from 300-800 Hz by 1500-2500 Hz over the second
        f0, rise = 300 + 500 * u[0], 1500 + 1000 * u[1]
        sound = torch.sin(2 * math.pi * (f0 * t + rise * t**2 / 2))
    else:  # three bursts of white noise, 80 ms each
        sound = torch.zeros_like(t)
        for start in (torch.rand(3, generator=g) * (SECONDS - 0.08)).tolist():
            i = int(start * RATE)
            sound[i : i + int(0.08 * RATE)] = torch.randn(int(0.08 * RATE), generator=g)
    return (0.2 + 0.8 * u[2]) * sound + 0.05 * torch.randn(t.shape, generator=g)


def spectrogram(wave: Tensor) -> Tensor:
    """Log-magnitude STFT ``(1, F, T)``, scaled to roughly unit spread."""
    spec = torch.stft(wave, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True).abs()
    return ((spec + 1e-3).log() + 2.0).div(2.0)[None]


class Sounds(Dataset):
    """``n`` generated spectrograms ``(1, 129, 63)`` with their sound's class."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        kind = int(torch.randint(0, len(SOUNDS), (), generator=g))
        return spectrogram(waveform(kind, g)), kind


class SmallCNN(nn.Module):
    def __init__(self, classes: int = len(SOUNDS), width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, classes),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def train(args: argparse.Namespace, run: str, seed: int, device: torch.device) -> float:
    """One run from the seed's initialisation: ``epochs`` of Adam, then the validation accuracy."""
    torch.manual_seed(seed)
    collate = MixupCollate(**RUNS[run], device=device, seed=seed)
    loader = DataLoader(
        Sounds(args.samples, seed=seed), batch_size=args.batch_size, shuffle=True, drop_last=True,
        num_workers=args.workers, collate_fn=collate, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    model = SmallCNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    for _ in range(args.epochs):
        model.train()
        for x, y_a, y_b, lam in loader:
            loss = mixup_cross_entropy(model(x), y_a, y_b, lam)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    validation = Sounds(max(1, args.samples // 4), seed=10_000 + seed)
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in DataLoader(validation, batch_size=64):
            correct += int((model(x.to(device)).argmax(1) == y.to(device)).sum())
    return correct / len(validation)


def picture(path: Path, device: torch.device) -> Path:
    """A spectrogram cut in time: its own, its partner's, and the mixed one with the pasted segment marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sounds = Sounds(8, seed=5)
    samples = [sounds[i] for i in range(8)]
    batch = MixupCollate(0, cutmix_alpha=1.0, cutmix_dims=(-1,), cycle=True, device=device, seed=4)(samples).finish()
    perm, lam = batch.perm.tolist(), batch.lam.cpu().tolist()
    other = [k for k in range(8) if samples[k][1] != samples[perm[k]][1]] or list(range(8))  # two kinds of sound
    i = min(other, key=lambda k: abs(lam[k] - 0.6))
    j = perm[i]
    pasted = (batch.x[i, 0].cpu() != samples[i][0][0]).any(0).nonzero().flatten()
    frames = samples[i][0].shape[-1]
    fig = Figure(figsize=(10, 3), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    shown = [(f"own: {SOUNDS[samples[i][1]]}", samples[i][0]), (f"partner: {SOUNDS[samples[j][1]]}", samples[j][0])]
    for ax, (title, spec) in zip(axes, [*shown, (f"mixed: keeps {batch.lam[i].item():.2f}", batch.x[i].cpu())]):
        ax.imshow(spec[0].numpy(), origin="lower", aspect="auto", cmap="magma", extent=(0, SECONDS, 0, RATE / 2000))
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time (s)", fontsize=8)
    axes[0].set_ylabel("frequency (kHz)", fontsize=8)
    if len(pasted):
        start, stop = int(pasted.min()) * SECONDS / frames, (int(pasted.max()) + 1) * SECONDS / frames
        axes[2].axvspan(start, stop, fill=False, ec="cyan", lw=2.5)
    fig.suptitle("CutMix over time (cutmix_dims=(-1,)): a segment of the partner's frames, every frequency", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="A small CNN on generated spectrograms, with Mixup and time CutMix")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--samples", type=int, default=512, help="training clips (+25%% for validation)")
    p.add_argument("--epochs", type=int, default=6)
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
            results[run].append(train(args, run, seed, device))
            print(f"seed {seed} {run:>11}: accuracy {results[run][-1]:.3f}", flush=True)
    for run, values in results.items():
        print(f"{run:>11}: accuracy {sum(values) / len(values):.3f} over {len(values)} seed(s)")
    if args.picture:
        print(f"wrote {picture(Path(args.picture), device)}")
    return results


if __name__ == "__main__":
    main()
