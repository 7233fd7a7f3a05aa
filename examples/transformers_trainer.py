"""Mixup and CutMix with the Hugging Face ``Trainer``: a tiny ViT built from its config (no hub download).

    python examples/transformers_trainer.py --epochs 3
    python examples/transformers_trainer.py --epochs 3 --soft-targets --workers 2
    python examples/transformers_trainer.py --epochs 3 --resume      # from the last checkpoint in --out

``MixupTrainer`` is the Trainer with ``MixupCollate`` on its training loader only: evaluation keeps the
Trainer's own collator (and ``compute_metrics`` sees plain labels), the loss is the exact mixup loss on
the model's logits (the model is never handed labels, so it never picks a loss of its own), and every
checkpoint carries the random stream, so ``--resume`` draws what the uninterrupted run drew.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import TrainingArguments, ViTConfig, ViTForImageClassification

from mixup_collate import MixupCollate
from mixup_collate.transformers import MixupTrainer

CLASSES = 4


class Bands(Dataset):
    """Generated ``(3, size, size)`` pictures: noise with a bright horizontal band whose position is the class.

    Samples are dicts with the keys an image-classification model and its processor use.
    """

    def __init__(self, n: int, size: int = 16, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, CLASSES, (n,), generator=g)
        self.images = torch.rand(n, 3, size, size, generator=g) * 0.6
        height = size // CLASSES
        for image, k in zip(self.images, self.labels.tolist()):
            image[:, k * height : (k + 1) * height] += 0.4

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"pixel_values": self.images[i], "labels": int(self.labels[i])}


def tiny_vit(size: int = 16) -> ViTForImageClassification:
    """A two-layer ViT on 4x4 patches, from a config: nothing is downloaded."""
    config = ViTConfig(
        image_size=size, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=CLASSES,
    )  # fmt: skip
    return ViTForImageClassification(config)


def accuracy(prediction: object) -> dict:
    """``compute_metrics``: evaluation batches keep their class-index labels."""
    logits, labels = prediction
    return {"accuracy": float((np.argmax(logits, axis=1) == labels).mean())}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="mixup-collate with the Hugging Face Trainer and a tiny ViT")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--soft-targets", action="store_true", help="(x, target) batches with dense mixed targets")
    parser.add_argument("--save-steps", type=int, default=8)
    parser.add_argument("--resume", action="store_true", help="resume from the last checkpoint in --out")
    parser.add_argument("--out", default="mixup-vit")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def build(args: argparse.Namespace, trainer_class: type[MixupTrainer] = MixupTrainer) -> MixupTrainer:
    """The Trainer for ``args`` (``trainer_class`` lets a test observe the batches)."""
    torch.manual_seed(args.seed)
    mixup = MixupCollate(
        alpha=0.8, cutmix_alpha=1.0, soft_targets=args.soft_targets, num_classes=CLASSES,
        input_key="pixel_values", target_key="labels", seed=args.seed,
    )  # fmt: skip
    training = TrainingArguments(
        output_dir=args.out, num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=args.batch_size,
        learning_rate=2e-3, eval_strategy="epoch", save_strategy="steps", save_steps=args.save_steps,
        dataloader_num_workers=args.workers, seed=args.seed, use_cpu=True, report_to="none",
        logging_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    return trainer_class(
        model=tiny_vit(),
        args=training,
        train_dataset=Bands(args.samples, seed=args.seed),
        eval_dataset=Bands(args.samples // 4, seed=args.seed + 1),
        compute_metrics=accuracy,
        mixup=mixup,
    )


def main(argv: list[str] | None = None) -> MixupTrainer:
    args = get_args_parser().parse_args(argv)
    trainer = build(args)
    trainer.train(resume_from_checkpoint=True if args.resume else None)
    print(trainer.evaluate())
    return trainer


if __name__ == "__main__":
    main()
