"""The shape of torchvision's segmentation reference recipe, trained with per-sample CutMix on images and masks.

    python examples/torchvision_segmentation_recipe.py --data-path /tmp/voc --generate 64 --cutmix --aux-loss

A stand-in for ``references/segmentation/train.py`` small enough to run anywhere: its dataset class
(``torchvision.datasets.VOCSegmentation``, here on a generated VOC-like folder), its preset in
miniature (random resize, flip, crop padded with void 255, float, normalise; int64 masks), a
torchvision segmentation model with its ``aux`` head, and the three places
``examples/torchvision_segmentation.diff`` changes in the real script, made the same way: the train
loader's ``collate_fn``, the loop's ``for image, *target in ...`` (``target`` is ``(y_a, y_b, lam)``,
already on the device) and ``criterion``, ``mixup_cross_entropy(..., ignore_index=255)`` for ``out``
and ``aux``. Without ``--cutmix`` the collate is disabled: unmixed batches with ``lam = 1``, whose loss
is exactly the script's ``F.cross_entropy(..., ignore_index=255)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from mixup_collate import MixupCollate, mixup_cross_entropy

NUM_CLASSES = 21  # VOC: background and 20 object classes; 255 is void


def write_voc_like(root: Path, train: int, val: int, size: int = 48, seed: int = 0) -> Path:
    """A ``VOCdevkit/VOC2012`` folder of JPEG pictures and palette-PNG masks, the layout VOCSegmentation reads.

    Each picture is noise with one to three rectangles whose colour is their class (1-20); the mask
    marks each rectangle with its class and a one-pixel void (255) frame around it, as VOC outlines objects.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    colours = rng.integers(0, 256, (NUM_CLASSES, 3))
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:NUM_CLASSES] = colours
    palette[255] = 224
    names = {"train": [f"{i:06d}" for i in range(train)], "val": [f"{i:06d}" for i in range(train, train + val)]}
    for name in names["train"] + names["val"]:
        pixels = rng.integers(0, 96, (size, size, 3))
        mask = np.zeros((size, size), dtype=np.uint8)
        for _ in range(rng.integers(1, 4)):
            k = int(rng.integers(1, NUM_CLASSES))
            top, left = rng.integers(0, size - 8, 2)
            bottom, right = top + rng.integers(6, size // 2), left + rng.integers(6, size // 2)
            mask[max(top - 1, 0) : bottom + 1, max(left - 1, 0) : right + 1] = 255
            mask[top:bottom, left:right] = k
            pixels[top:bottom, left:right] = colours[k]
        Image.fromarray(pixels.astype(np.uint8)).save(base / "JPEGImages" / f"{name}.jpg", quality=95)
        png = Image.fromarray(mask, mode="P")
        png.putpalette(palette.flatten().tolist())
        png.save(base / "SegmentationClass" / f"{name}.png")
    for split, ids in names.items():
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return Path(root)


class Preset:
    """The recipe's train/eval presets in miniature, on ``(PIL image, PIL mask)`` pairs: tensors, int64 masks."""

    def __init__(self, train: bool, base_size: int, crop_size: int) -> None:
        steps = [v2.RandomResize(base_size // 2, base_size * 2)] if train else [v2.Resize(base_size)]
        if train:
            fill = {tv_tensors.Mask: 255, "others": 0}
            steps += [v2.RandomHorizontalFlip(0.5), v2.RandomCrop(crop_size, pad_if_needed=True, fill=fill)]
        steps += [
            v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64}, scale=True),
            v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
            v2.ToPureTensor(),
        ]
        self.transforms = v2.Compose(steps)

    def __call__(self, image: Image.Image, target: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        mask = tv_tensors.Mask(F.pil_to_tensor(target)[0])
        return self.transforms(tv_tensors.Image(F.pil_to_tensor(image)), mask)


def criterion(inputs, target):
    losses = {}
    for name, x in inputs.items():
        losses[name] = mixup_cross_entropy(x, *target, ignore_index=255)  # target: (y_a, y_b, lam)

    if len(losses) == 1:
        return losses["out"]

    return losses["out"] + 0.5 * losses["aux"]


def train_one_epoch(model, criterion, optimizer, data_loader, device, epoch, print_freq) -> list[float]:
    model.train()
    losses = []
    for i, (image, *target) in enumerate(data_loader):  # mixed on `device`
        output = model(image)
        loss = criterion(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if i % print_freq == 0:
            print(f"Epoch: [{epoch}] [{i}/{len(data_loader)}] loss {loss.item():.4f}")
    return losses


def evaluate(model, data_loader, device, num_classes) -> float:
    """Mean IoU over the classes present in targets or predictions (void left out), as ``utils.ConfusionMatrix``."""
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    with torch.inference_mode():
        for image, target in data_loader:
            pred = model(image.to(device))["out"].argmax(1).cpu()
            keep = target != 255
            pairs = target[keep] * num_classes + pred[keep]
            confusion += torch.bincount(pairs, minlength=num_classes**2).view(num_classes, num_classes)
    hits = confusion.diag().double()
    union = confusion.sum(0) + confusion.sum(1) - hits
    miou = float((hits / union)[union > 0].mean())
    print(f"Test: mean IoU {100 * miou:.1f}")
    return miou


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="torchvision's segmentation recipe in miniature, with CutMix")
    parser.add_argument("--data-path", required=True, type=Path, help="a VOC root (holding VOCdevkit/VOC2012)")
    parser.add_argument("--generate", default=0, type=int, help="first write this many generated training pictures")
    parser.add_argument("--model", default="deeplabv3_mobilenet_v3_large")
    parser.add_argument("--aux-loss", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("-b", "--batch-size", default=4, type=int)
    parser.add_argument("--epochs", default=2, type=int)
    parser.add_argument("-j", "--workers", default=0, type=int)
    parser.add_argument("--lr", default=0.01, type=float)
    parser.add_argument("--base-size", default=48, type=int, help="the recipe's 520, in miniature")
    parser.add_argument("--crop-size", default=40, type=int, help="the recipe's 480, in miniature")
    parser.add_argument("--print-freq", default=10, type=int)
    parser.add_argument("--seed", default=0, type=int)
    parser.add_argument("--cutmix", action="store_true", help="per-sample CutMix of images and masks (mixup-collate)")
    return parser


def main(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if args.generate:
        write_voc_like(args.data_path, args.generate, max(1, args.generate // 4), args.base_size, args.seed)
    train_preset, eval_preset = Preset(True, args.base_size, args.crop_size), Preset(False, args.base_size, 0)
    dataset = torchvision.datasets.VOCSegmentation(args.data_path, image_set="train", transforms=train_preset)
    dataset_test = torchvision.datasets.VOCSegmentation(args.data_path, image_set="val", transforms=eval_preset)

    # The change torchvision_segmentation.diff makes to the train loader: MixupCollate instead of utils.collate_fn.
    data_loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        collate_fn=MixupCollate(0.0, cutmix_alpha=1.0, enabled=args.cutmix, dense_targets=True, device=device),
        drop_last=True,
    )
    data_loader_test = DataLoader(dataset_test, batch_size=1, num_workers=args.workers)

    model = torchvision.models.get_model(
        args.model, weights=None, weights_backbone=None, num_classes=NUM_CLASSES, aux_loss=args.aux_loss
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)

    losses = []
    for epoch in range(args.epochs):
        losses += train_one_epoch(model, criterion, optimizer, data_loader, device, epoch, args.print_freq)
    miou = evaluate(model, data_loader_test, device, NUM_CLASSES)
    return {"losses": losses, "miou": miou, "collate_fn": data_loader.collate_fn, "model": model}


if __name__ == "__main__":
    main(get_args_parser().parse_args())
