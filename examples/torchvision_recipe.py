"""The shape of torchvision's classification reference recipe, with MixupCollate as its mixup/CutMix collate.

    python examples/torchvision_recipe.py --mixup-alpha 0.2 --cutmix-alpha 1.0 --label-smoothing 0.1 --device cpu

A stand-in for ``references/classification/train.py`` small enough to run anywhere: the same flags,
the same ``collate_fn`` choice as ``examples/torchvision_train.diff`` makes in the real script, the
same ``for image, target in data_loader`` loop, ``nn.CrossEntropyLoss(label_smoothing=...)`` and a
torchvision model, on generated pictures instead of ImageNet. With ``soft_targets=True`` the batches
unpack as ``(image, target)`` with dense ``(B, num_classes)`` targets, which the criterion (and its
label smoothing) takes as they are, so the loop is untouched.

``--uint8-presets`` adds what ``examples/torchvision_presets.diff`` does on top: the training preset stops at
``uint8`` (no ``ToDtype``/``Normalize``; random erasing fills with the mean colour in ``[0, 255]`` units), the
collate normalises on the device with the preset's ``mean``/``std`` (also with mixing off) and the
evaluation preset and loader stay as they are.
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.dataloader import default_collate
from torchvision.transforms import v2

from mixup_collate import MixupCollate


class Stripes(Dataset):
    """Generated uint8 pictures ``(3, size, size)``: noise with a bright vertical band whose position is the class."""

    def __init__(self, n: int, size: int, num_classes: int, transform: v2.Transform, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.classes = [f"band{k}" for k in range(num_classes)]
        self.targets = torch.randint(0, num_classes, (n,), generator=g).tolist()
        self.images = torch.randint(0, 160, (n, 3, size, size), generator=g, dtype=torch.uint8)
        width = size // num_classes
        for image, k in zip(self.images, self.targets):
            image[:, :, k * width : (k + 1) * width] += 95
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), self.targets[i]


def presets(train: bool, size: int, random_erase: float, uint8: bool = False) -> v2.Transform:
    """The recipe's preset pipeline in miniature: flip, float, normalise, random erasing (train only).

    ``uint8``: the training preset as ``torchvision_presets.diff`` leaves it, ``(3, size, size)`` uint8 with
    no ``ToDtype``/``Normalize`` and random erasing to the mean colour (``RandomErasing`` writes ``value``
    into the image as it is, so for uint8 it is in ``[0, 255]``, rounded here: a float would be truncated).
    """
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    steps = [v2.RandomHorizontalFlip()] if train else []
    if not (train and uint8):
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=mean, std=std)]
    if train and random_erase > 0 and uint8:
        steps.append(v2.RandomErasing(p=random_erase, value=[round(255 * m) for m in mean]))
    elif train and random_erase > 0:
        steps.append(v2.RandomErasing(p=random_erase))
    return v2.Compose([v2.Resize(size, antialias=True), *steps])


def accuracy(output: torch.Tensor, target: torch.Tensor) -> float:
    """Top-1 accuracy in percent; soft targets count as their largest class, as the recipe's ``utils.accuracy``."""
    if target.ndim == 2:
        target = target.argmax(dim=1)
    return (output.argmax(dim=1) == target).float().mean().item() * 100


def train_one_epoch(model, criterion, optimizer, data_loader, device, epoch, args) -> list[float]:
    model.train()
    losses = []
    for i, (image, target) in enumerate(data_loader):  # unpacking mixes the batch, on `device`
        image, target = image.to(device), target.to(device)  # already there: no-ops
        output = model(image)
        loss = criterion(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if i % args.print_freq == 0:
            acc1 = accuracy(output, target)
            print(f"Epoch: [{epoch}] [{i}/{len(data_loader)}] loss {loss.item():.4f} acc1 {acc1:.1f}")
    return losses


def evaluate(model, criterion, data_loader, device) -> float:
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for image, target in data_loader:
            image, target = image.to(device), target.to(device)
            correct += accuracy(model(image), target) * len(target) / 100
            total += len(target)
    print(f"Test: Acc@1 {100 * correct / total:.1f}")
    return 100 * correct / total


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="torchvision's classification recipe in miniature, with MixupCollate")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("-b", "--batch-size", default=16, type=int)
    parser.add_argument("--epochs", default=3, type=int)
    parser.add_argument("-j", "--workers", default=2, type=int)
    parser.add_argument("--lr", default=0.05, type=float)
    parser.add_argument("--label-smoothing", default=0.0, type=float)
    parser.add_argument("--mixup-alpha", default=0.0, type=float)
    parser.add_argument("--cutmix-alpha", default=0.0, type=float)
    parser.add_argument("--random-erase", default=0.0, type=float)
    parser.add_argument("--train-crop-size", default=32, type=int)
    parser.add_argument("--samples", default=512, type=int, help="generated training pictures (+25%% validate)")
    parser.add_argument("--print-freq", default=10, type=int)
    parser.add_argument("--seed", default=0, type=int)
    parser.add_argument("--uint8-presets", action="store_true", help="with examples/torchvision_presets.diff")
    return parser


def loaders(args: argparse.Namespace, device: torch.device) -> dict:
    """The datasets, the training and evaluation loaders and the training collate, as ``load_data`` and ``main``."""
    size, classes = args.train_crop_size, 4
    train_preset = presets(True, size, args.random_erase, uint8=args.uint8_presets)
    dataset = Stripes(args.samples, size, classes, train_preset, seed=args.seed)
    dataset_test = Stripes(args.samples // 4, size, classes, presets(False, size, 0.0), seed=args.seed + 1)

    num_classes = len(dataset.classes)
    # torchvision_presets.diff on top: the collate normalises the uint8 images, mixing or not.
    if args.uint8_presets and (args.mixup_alpha > 0 or args.cutmix_alpha > 0):
        collate_fn = MixupCollate(
            args.mixup_alpha, cutmix_alpha=args.cutmix_alpha, soft_targets=True, num_classes=num_classes, device=device,
            mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        )  # fmt: skip
    elif args.uint8_presets:
        collate_fn = MixupCollate(
            enabled=False, soft_targets=True, num_classes=num_classes, device=device,
            mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        )  # fmt: skip
    # The change torchvision_train.diff makes: MixupCollate instead of mixup/cutmix after default_collate.
    elif args.mixup_alpha > 0 or args.cutmix_alpha > 0:
        collate_fn = MixupCollate(
            args.mixup_alpha, cutmix_alpha=args.cutmix_alpha, soft_targets=True, num_classes=num_classes, device=device
        )
    else:
        collate_fn = default_collate

    pin_memory = device.type == "cuda"
    data_loader = DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, pin_memory=pin_memory,
        collate_fn=collate_fn,
    )  # fmt: skip
    data_loader_test = DataLoader(dataset_test, batch_size=args.batch_size, num_workers=args.workers)
    return {"dataset": dataset, "dataset_test": dataset_test, "data_loader": data_loader,
            "data_loader_test": data_loader_test, "collate_fn": collate_fn, "num_classes": num_classes}  # fmt: skip


def main(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    data = loaders(args, device)

    model = torchvision.models.get_model(args.model, weights=None, num_classes=data["num_classes"]).to(device)
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)

    losses = []
    for epoch in range(args.epochs):
        losses += train_one_epoch(model, criterion, optimizer, data["data_loader"], device, epoch, args)
    acc1 = evaluate(model, criterion, data["data_loader_test"], device)
    return {"losses": losses, "acc1": acc1, "collate_fn": data["collate_fn"]}


if __name__ == "__main__":
    main(get_args_parser().parse_args())
