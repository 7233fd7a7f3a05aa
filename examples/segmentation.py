"""Per-sample CutMix for semantic segmentation: a tiny fully-convolutional net on generated shapes.

    python examples/segmentation.py                       # both runs (plain, CutMix), seed 0, prints mean IoU
    python examples/segmentation.py --seeds 0 1 2         # a few seeds per run
    python examples/segmentation.py --picture segmentation_cutmix.png # also writes the picture

Every sample is a ``uint8`` picture ``(3, S, S)`` of discs, squares and triangles on a textured
background, with its ``uint8`` class-index mask ``(S, S)``: 0 background, 1-3 the shapes, and 255
(void) on a thin band along every boundary, as in Pascal VOC. The same net trains twice from the
same initialisation on the same samples: with ``default_collate`` and
``F.cross_entropy(..., ignore_index=255)``, and with ``MixupCollate(alpha=0, cutmix_alpha=1.0,
dense_targets=True)``, whose batches ``(x, y_a, y_b, lam)`` carry ``lam`` ``(B, S, S)``, the weight of
``y_a`` at each pixel (0 inside the box pasted from the partner, 1 elsewhere), trained with
``mixup_cross_entropy(..., ignore_index=255)``. Each run prints its mean IoU on unmixed validation
samples; ``--picture`` writes mixed images with their mixed masks overlaid.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate

from mixup_collate import MixupCollate, mixup_cross_entropy

NUM_CLASSES = 4  # background, disc, square, triangle
VOID = 255
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)  # in [0, 1] units, as MixupCollate takes them for uint8
# Overlay colours per class (background, disc, square, triangle); void is drawn white.
PALETTE = torch.tensor([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200]], dtype=torch.float32) / 255


def texture(size: int, g: torch.Generator) -> Tensor:
    """A float ``(3, size, size)`` background in [0, 1]: smooth colour noise plus stripes at a random angle."""
    coarse = torch.rand((1, 3, max(2, size // 8), max(2, size // 8)), generator=g)
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]
    angle, freq = torch.rand(2, generator=g) * torch.tensor([math.pi, 0.6]) + torch.tensor([0.0, 0.3])
    r, c = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    stripes = torch.sin(freq * (r * torch.cos(angle) + c * torch.sin(angle)))
    return (0.6 * smooth + 0.2 * stripes + 0.2).clamp(0, 1)


def shape_region(kind: int, size: int, g: torch.Generator) -> Tensor:
    """Bool ``(size, size)``: a disc (1), a square (2) or an upward triangle (3) of random size and place."""
    radius = size * (0.1 + 0.15 * torch.rand(1, generator=g).item())
    cy, cx = (torch.rand(2, generator=g) * size).tolist()
    r, c = torch.meshgrid(torch.arange(size) - cy, torch.arange(size) - cx, indexing="ij")
    if kind == 1:
        return r**2 + c**2 <= radius**2
    if kind == 2:
        return torch.maximum(r.abs(), c.abs()) <= 0.85 * radius
    return (r >= -radius) & (r <= radius) & (2 * c.abs() <= r + radius)


def boundary(mask: Tensor) -> Tensor:
    """Bool ``(H, W)``: pixels with a 4-neighbour of another class (both sides of every edge)."""
    edge = torch.zeros_like(mask, dtype=torch.bool)
    vertical, horizontal = mask[1:] != mask[:-1], mask[:, 1:] != mask[:, :-1]
    edge[1:] |= vertical
    edge[:-1] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


class Shapes(Dataset):
    """``n`` generated ``(image uint8 (3, S, S), mask uint8 (S, S))`` pairs; ``flip`` mirrors both at random."""

    def __init__(self, n: int, size: int = 32, seed: int = 0, flip: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.empty((n, 3, size, size), dtype=torch.uint8)
        self.masks = torch.zeros((n, size, size), dtype=torch.uint8)
        for i in range(n):
            image, mask = texture(size, g), self.masks[i]
            for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
                kind = int(torch.randint(1, NUM_CLASSES, (1,), generator=g))
                region = shape_region(kind, size, g)
                colour = torch.rand((3, 1, 1), generator=g)
                grain = 0.15 * torch.rand((3, size, size), generator=g)
                image = torch.where(region, (0.85 * colour + grain).clamp(0, 1), image)
                mask[region] = kind
            mask[boundary(mask)] = VOID
            self.images[i] = (image * 255).round().to(torch.uint8)
        self.flip = flip

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        image, mask = self.images[i], self.masks[i]
        if self.flip and torch.rand(()) < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        return image, mask


class TinyFCN(nn.Sequential):
    """Four 3x3 convolutions with dilations 1, 2, 4, 8 (a 31-pixel receptive field), then per-pixel logits."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 24) -> None:
        layers, channels = [], 3
        for dilation in (1, 2, 4, 8):
            layers += [nn.Conv2d(channels, width, 3, padding=dilation, dilation=dilation, bias=False)]
            layers += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        super().__init__(*layers, nn.Conv2d(width, num_classes, 1))


def normalize(x: Tensor) -> Tensor:
    """uint8 ``(B, 3, H, W)`` to float32, scaled to [0, 1] and normalised as the collate does on its side."""
    mean, std = torch.tensor(MEAN, device=x.device), torch.tensor(STD, device=x.device)
    return (x.float().div_(255) - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def mean_iou(pred: Tensor, target: Tensor, num_classes: int = NUM_CLASSES) -> float:
    """Mean over classes of ``|pred = c and target = c| / |pred = c or target = c|``, void pixels left out.

    Classes absent from both ``pred`` and ``target`` are left out of the mean.
    """
    keep = target != VOID
    pairs = target[keep].long() * num_classes + pred[keep].long()
    confusion = torch.bincount(pairs, minlength=num_classes**2).view(num_classes, num_classes).double()
    hits = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - hits
    present = union > 0
    return float((hits[present] / union[present]).mean()) if present.any() else float("nan")


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    preds, targets = [], []
    with torch.no_grad():
        for x, y in loader:
            preds.append(model(normalize(x.to(device))).argmax(1).cpu())
            targets.append(y)
    return mean_iou(torch.cat(preds), torch.cat(targets))


def cutmix_collate(device: torch.device, seed: int) -> MixupCollate:
    """The collate of the CutMix run: boxes cut from image and mask alike, normalised on the device."""
    return MixupCollate(alpha=0, cutmix_alpha=1.0, dense_targets=True, mean=MEAN, std=STD, device=device, seed=seed)


def train(args: argparse.Namespace, cutmix: bool, seed: int, device: torch.device) -> float:
    """One run from the seed's initialisation: ``epochs`` of Adam, then the validation mean IoU."""
    torch.manual_seed(seed)
    train_set = Shapes(args.samples, args.size, seed=seed, flip=True)
    val_set = Shapes(max(1, args.samples // 4), args.size, seed=10_000 + seed)
    collate = cutmix_collate(device, seed) if cutmix else default_collate
    loader = DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
        collate_fn=collate, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    model = TinyFCN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    for _ in range(args.epochs):
        model.train()
        for batch in loader:
            if cutmix:
                x, y_a, y_b, lam = batch  # on `device`, normalised; lam (B, S, S)
                loss = mixup_cross_entropy(model(x), y_a, y_b, lam, ignore_index=VOID)
            else:
                x, y = batch
                loss = F.cross_entropy(model(normalize(x.to(device))), y.to(device).long(), ignore_index=VOID)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return evaluate(model, DataLoader(val_set, batch_size=64), device)


def picture(path: Path, size: int, device: torch.device, count: int = 8) -> Path:
    """Mixed images (top), their mixed masks overlaid (middle: ``y_a`` where ``lam`` is 1, else ``y_b``), ``lam``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    samples = [Shapes(count, size, seed=123)[i] for i in range(count)]
    x, y_a, y_b, lam = cutmix_collate(device, seed=1)(samples)
    std, mean = torch.tensor(STD).view(-1, 1, 1), torch.tensor(MEAN).view(-1, 1, 1)
    images = (x.cpu() * std + mean).clamp(0, 1)
    mixed = torch.where(lam == 1, y_a, y_b).cpu()
    colours = torch.where((mixed == VOID)[..., None], torch.ones(3), PALETTE[mixed.clamp(max=NUM_CLASSES - 1)])
    fig = Figure(figsize=(1.6 * count, 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, count, squeeze=False)
    for i in range(count):
        overlay = 0.45 * images[i].permute(1, 2, 0) + 0.55 * colours[i]
        for row, (shown, cmap) in enumerate([(images[i].permute(1, 2, 0), None), (overlay, None), (lam[i], "gray")]):
            axes[row, i].imshow(shown.cpu().numpy(), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
        axes[2, i].set_title(f"kept {lam[i].mean().item():.2f}", fontsize=8)
    fig.suptitle(
        "Per-sample CutMix: mixed images, their masks (red disc, green square, blue triangle, white void), lam",
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="A tiny FCN on generated shapes, with and without per-sample CutMix")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--samples", type=int, default=1024, help="training samples (+25%% for validation)")
    p.add_argument("--size", type=int, default=32, help="image side S")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("-b", "--batch-size", type=int, default=32)
    p.add_argument("-j", "--workers", type=int, default=0)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--picture", default=None, help="write the picture to this PNG (none by default)")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    device = torch.device(args.device)
    results: dict = {"plain": [], "cutmix": []}
    for seed in args.seeds:
        for run in results:
            results[run].append(train(args, run == "cutmix", seed, device))
            print(f"seed {seed} {run:>6}: mean IoU {results[run][-1]:.3f}", flush=True)
    for run, values in results.items():
        print(f"{run:>6}: mean IoU {sum(values) / len(values):.3f} over {len(values)} seed(s)")
    if args.picture:
        print(f"wrote {picture(Path(args.picture), args.size, device)}")
    return results


if __name__ == "__main__":
    main()
