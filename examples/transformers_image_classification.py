"""The shape of Hugging Face's ``examples/pytorch/image-classification/run_image_classification.py``, with the
change that trains it with Mixup and CutMix (the recipe page prints it as a diff).

    python examples/transformers_image_classification.py --epochs 2

Like the upstream script, the dataset's samples carry the raw ``image`` (a PIL image), the class under
``label_column_name`` (``"label"``) and the ``pixel_values`` its ``set_transform`` adds; the script runs with
``remove_unused_columns=False`` (its transform needs the raw image column), so every column reaches the
collate. ``MixupCollate(input_key="pixel_values", target_key=data_args.label_column_name, extras=False)``
reads the two it mixes and leaves the others behind. The upstream ``collate_fn`` still serves evaluation.
A tiny ViT built from its config stands in for the pretrained model (nothing is downloaded).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments, ViTConfig, ViTForImageClassification

from mixup_collate import MixupCollate
from mixup_collate.transformers import MixupTrainer

CLASSES = 4


@dataclass
class DataTrainingArguments:
    label_column_name: str = "label"


class ImageColumns(Dataset):
    """Generated pictures as a ``datasets`` dataset with ``set_transform`` returns them: image, label, pixel_values."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, CLASSES, (n,), generator=g).tolist()
        self.noise = torch.randint(0, 150, (n, 16, 16, 3), generator=g, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        pixels = self.noise[i].clone()
        pixels[4 * self.labels[i] : 4 * self.labels[i] + 4] += 100
        image = Image.fromarray(pixels.numpy())
        pixel_values = torch.from_numpy(np.asarray(image)).permute(2, 0, 1).float() / 255  # the upstream transforms
        return {"image": image, "label": self.labels[i], "pixel_values": pixel_values}


def collate_fn(examples):
    pixel_values = torch.stack([example["pixel_values"] for example in examples])
    labels = torch.tensor([example["label"] for example in examples])
    return {"pixel_values": pixel_values, "labels": labels}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="run_image_classification.py's shape with MixupTrainer")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--out", default="hf-image-classification")
    return parser


def main(argv: list[str] | None = None) -> Trainer:
    args = get_args_parser().parse_args(argv)
    data_args = DataTrainingArguments()
    training_args = TrainingArguments(
        output_dir=args.out, num_train_epochs=args.epochs, per_device_train_batch_size=8, learning_rate=3e-3,
        remove_unused_columns=False, use_cpu=True, report_to="none", save_strategy="no", seed=0,
    )  # fmt: skip
    config = ViTConfig(
        image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=CLASSES,
    )  # fmt: skip
    model = ViTForImageClassification(config)
    dataset = {"train": ImageColumns(96, 0), "validation": ImageColumns(64, 1)}
    mixup = MixupCollate(
        alpha=0.8, cutmix_alpha=1.0, input_key="pixel_values", target_key=data_args.label_column_name,
        extras=False, seed=training_args.seed,
    )  # fmt: skip
    trainer = MixupTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset["train"],
        eval_dataset=dataset["validation"],
        compute_metrics=accuracy,
        data_collator=collate_fn,
        mixup=mixup,
    )
    trainer.train()
    return trainer


def accuracy(prediction) -> dict:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=1) == prediction.label_ids).mean())}


if __name__ == "__main__":
    print(main().evaluate())
