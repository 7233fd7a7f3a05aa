"""The shape of torchvision's detection reference, trained with per-sample Mixup and CutMix of images and boxes.

    python examples/torchvision_detection_recipe.py --data-augmentation lsj --mixup-alpha 1.5 --cutmix-alpha 1.0

A stand-in for ``references/detection/train.py`` small enough to run anywhere: COCO-style samples (generated
pictures with their ``boxes``, ``labels``, ``masks``, ``image_id``, ``area`` and ``iscrowd``, as the script's
``ConvertCocoPolysToMask`` makes them), its two data-augmentation policies in miniature (``hflip`` keeps each
image's own size; ``lsj`` scale-jitters and crops every image to one size), the collate block that
``examples/torchvision_detection.diff`` adds, line for line, and the loop of its ``engine.train_one_epoch``.
Box mixing needs one image size per batch, so the block refuses any policy but ``lsj``, as the script refuses
copy-paste with the others.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn
from torchvision.transforms import v2

CLASSES = 4  # 0 is the background


class CocoLike(Dataset):
    """Generated pictures of rectangles with the targets the script's COCO pipeline produces."""

    def __init__(self, n: int, transforms: v2.Transform, seed: int = 0) -> None:
        self.n, self.transforms, self.seed = n, transforms, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        g = torch.Generator().manual_seed(self.seed * 10_007 + index)
        height, width = (int(v) for v in torch.randint(48, 80, (2,), generator=g))  # images of their own sizes
        image = torch.randint(0, 90, (3, height, width), dtype=torch.uint8, generator=g)
        n = int(torch.randint(1, 4, (), generator=g))
        boxes, masks = [], torch.zeros(n, height, width, dtype=torch.uint8)
        for k in range(n):
            x0, y0 = (
                int(torch.randint(0, width - 16, (), generator=g)),
                int(torch.randint(0, height - 16, (), generator=g)),
            )
            x1, y1 = x0 + int(torch.randint(8, 16, (), generator=g)), y0 + int(torch.randint(8, 16, (), generator=g))
            image[:, y0:y1, x0:x1] = 200
            masks[k, y0:y1, x0:x1] = 1
            boxes.append([x0, y0, x1, y1])
        boxes_t = torch.tensor(boxes, dtype=torch.float32)
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes_t, format="XYXY", canvas_size=(height, width)),
            "labels": torch.randint(1, CLASSES, (n,), generator=g),
            "masks": tv_tensors.Mask(masks),
            "image_id": index,
            "area": (boxes_t[:, 2] - boxes_t[:, 0]) * (boxes_t[:, 3] - boxes_t[:, 1]),
            "iscrowd": torch.zeros(n, dtype=torch.int64),
        }
        return self.transforms(tv_tensors.Image(image), target)


def preset(data_augmentation: str, size: int = 64) -> v2.Transform:
    """The script's train presets in miniature: ``hflip`` (sizes vary) or ``lsj`` (one size for every image)."""
    steps = [v2.RandomHorizontalFlip(0.5)]
    if data_augmentation == "lsj":
        steps = [v2.ScaleJitter((size, size), antialias=True), v2.RandomCrop(size, pad_if_needed=True), *steps]
    # As the script's FixedSizeCrop: boxes a crop leaves empty go with their labels and masks, while area and
    # iscrowd stay whole (one entry per box before the crop), which the patch's box_target_keys leaves out.
    return v2.Compose([*steps, v2.ToDtype(torch.float, scale=True), v2.SanitizeBoundingBoxes(), v2.ToPureTensor()])


def collate_fn(batch):
    return tuple(zip(*batch))  # the script's utils.collate_fn: images of any size, targets as a list


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="The detection reference's shape, with box mixing")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-b", "--batch-size", default=4, type=int)
    parser.add_argument("--steps", default=2, type=int)
    parser.add_argument("-j", "--workers", default=0, type=int)
    parser.add_argument("--data-augmentation", default="hflip", type=str)
    parser.add_argument("--use-copypaste", action="store_true")
    parser.add_argument("--mixup-alpha", default=0.0, type=float, help="per-sample Mixup of images and boxes")
    parser.add_argument("--cutmix-alpha", default=0.0, type=float, help="per-sample CutMix of images and boxes")
    return parser


def main(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    dataset = CocoLike(64, preset(args.data_augmentation))
    train_collate_fn = collate_fn
    if args.mixup_alpha > 0 or args.cutmix_alpha > 0:
        if args.data_augmentation != "lsj":
            raise RuntimeError("Box mixing (mixup-collate) needs one image size per batch: use --data-augmentation lsj")
        from mixup_collate import MixupCollate

        keys = ("boxes", "labels", "masks", "image_id")  # lsj's crop keeps area and iscrowd whole: left out
        train_collate_fn = MixupCollate(
            args.mixup_alpha,
            cutmix_alpha=args.cutmix_alpha,
            box_targets=True,
            box_target_keys=keys,
            cycle=True,  # no image is its own partner, however few images per GPU (-b)
            device=device,
        )

    data_loader = DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, collate_fn=train_collate_fn
    )
    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=CLASSES, min_size=64, max_size=96
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    losses = []
    for step, (images, targets) in enumerate(data_loader):  # the loop of engine.train_one_epoch
        if step == args.steps:
            break
        images = list(image.to(device) for image in images)
        targets = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()} for t in targets]
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return {"collate_fn": train_collate_fn, "losses": losses}


if __name__ == "__main__":
    print(main(get_args_parser().parse_args())["losses"])
