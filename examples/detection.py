"""Object detection with Mixup and CutMix per sample: torchvision's Faster R-CNN trained on generated shapes.

    python examples/detection.py --steps 150                  # plain, Mixup and CutMix runs; recall at IoU 0.5
    python examples/detection.py --steps 2 --picture mixed.png

Images are 96x96 textured backgrounds with one to three shapes (square, disc, cross), their boxes known
exactly. ``MixupCollate(box_targets=True)`` mixes the batches per sample on the device: a Mixup image carries
both images' boxes, a CutMix image its own (clipped or dropped where the pasted region hides them) and the
partner's inside the region. torchvision's detection models ignore the targets' extra ``weights`` key, so the
loss here is unweighted, as in YOLOX and ultralytics. Each run prints the recall at IoU 0.5 on 64 new images.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn
from torchvision.ops import box_iou
from torchvision.utils import draw_bounding_boxes, make_grid, save_image

from mixup_collate import MixupCollate

SIZE, CLASSES = 96, 3  # classes 1..3; 0 is the background


class Shapes(Dataset):
    """Generated ``(image uint8 (3, 96, 96), target)`` samples: shapes on a textured background."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + index)
        image = (torch.rand(3, 1, 1, generator=g) * 120 + torch.rand(3, SIZE, SIZE, generator=g) * 60).to(torch.uint8)
        n = int(torch.randint(1, 4, (), generator=g))
        boxes, labels = [], []
        for _ in range(n):
            side = int(torch.randint(16, 36, (), generator=g))
            x0, y0 = (int(v) for v in torch.randint(0, SIZE - side, (2,), generator=g))
            label = int(torch.randint(1, CLASSES + 1, (), generator=g))
            colour = (torch.rand(3, 1, 1, generator=g) * 75 + 180).to(torch.uint8)
            ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
            c = (side - 1) / 2
            shape = {1: torch.ones(side, side, dtype=torch.bool), 2: (ys - c) ** 2 + (xs - c) ** 2 <= c * c,
                     3: ((ys - c).abs() < side / 6) | ((xs - c).abs() < side / 6)}[label]  # fmt: skip
            region = image[:, y0 : y0 + side, x0 : x0 + side]
            region[:, shape] = colour.expand(3, side, side)[:, shape]
            boxes.append([x0, y0, x0 + side, y0 + side])
            labels.append(label)
        return image, {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)}


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=CLASSES + 1, min_size=SIZE, max_size=SIZE
    )


def train(collate: MixupCollate, args: argparse.Namespace) -> torch.nn.Module:
    net, device = model(), torch.device("cpu")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    loader = DataLoader(Shapes(10_000, 0), batch_size=args.batch_size, shuffle=True, collate_fn=collate)
    net.train()
    for step, (images, targets) in enumerate(loader):
        if step == args.steps:
            break
        loss = sum(net(list(images), targets).values())  # the targets' "weights" key is ignored by the model
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.to(device)


@torch.no_grad()
def recall(net: torch.nn.Module, samples: int = 64) -> float:
    """Share of the ground-truth boxes found by a prediction of the same class at IoU >= 0.5 (any kept score)."""
    net.eval()
    evaluation = DataLoader(Shapes(samples, 1), batch_size=16, collate_fn=MixupCollate(box_targets=True, enabled=False))
    found = total = 0
    for images, targets in evaluation:
        for prediction, target in zip(net(list(images)), targets):
            iou = box_iou(target["boxes"], prediction["boxes"])  # the model keeps scores >= 0.05, at most 100
            same = target["labels"][:, None] == prediction["labels"][None, :]
            found += int(((iou >= 0.5) & same).any(1).sum())
            total += len(target["boxes"])
    return found / total


def picture(collate: MixupCollate, path: str) -> None:
    """A mixed batch with its boxes drawn, red for an image's own boxes and blue for its partner's, by weight."""
    images, targets = collate([Shapes(8, 2)[i] for i in range(8)])
    drawn = []
    for image, target in zip(images, targets):
        w = target["weights"].tolist()
        colours = [(int(255 * v), 0, int(255 * (1 - v))) for v in w]
        drawn.append(draw_bounding_boxes((image * 255).to(torch.uint8), target["boxes"], colors=colours, width=2))
    save_image(make_grid(torch.stack(drawn).float() / 255, nrow=4, padding=4, pad_value=1.0), path)


RUNS = {
    "plain": dict(enabled=False),
    "mixup": dict(alpha=1.5),
    "cutmix": dict(alpha=0, cutmix_alpha=1.0),
}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Faster R-CNN on generated shapes, with and without mixing")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--eval-samples", type=int, default=64)
    parser.add_argument("--picture", default=None, help="write a mixed batch with its boxes to this PNG")
    return parser


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = get_args_parser().parse_args(argv)
    results = {}
    for name in args.runs:
        collate = MixupCollate(**RUNS[name], box_targets=True, device="cpu", seed=0)
        results[name] = recall(train(collate, args), args.eval_samples)
        print(f"{name:7s} recall@0.5 {results[name]:.3f}")
    if args.picture:
        picture(MixupCollate(alpha=0.8, cutmix_alpha=1.0, box_targets=True, device="cpu", seed=1), args.picture)
    return results


if __name__ == "__main__":
    main()
