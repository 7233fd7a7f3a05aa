"""The demo's data: scikit-learn's bundled digits or the user's ``ImageFolder``, split into train and validation.

scikit-learn and torchvision are imported inside the loaders, so importing this module needs neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

__all__ = ["DemoData", "TensorPairs", "load_data", "load_digits_split", "load_image_folder"]


class TensorPairs(Dataset):
    """``(x[i], int(y[i]))`` samples from two tensors (module level, so worker processes can pickle it)."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.x[i], int(self.y[i])


@dataclass
class DemoData:
    """A train/validation split with what the model needs to know about it.

    ``shape`` is one sample's ``(C, H, W)``; ``name`` says where the data came from, for the printout.
    """

    train: Dataset
    val: Dataset
    classes: list[str]
    shape: tuple[int, ...]
    name: str


def load_digits_split(val_fraction: float = 0.5, seed: int = 0) -> DemoData:
    """scikit-learn's bundled 8x8 digits as float ``(1, 8, 8)`` tensors in ``[0, 1]``, split stratified.

    Half for validation: the CNN is not at its ceiling on half of the digits, and a validation set
    that large resolves small differences in accuracy.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(digits.target, dtype=torch.int64)
    train, val = train_test_split(range(len(y)), test_size=val_fraction, stratify=digits.target, random_state=seed)
    classes = [str(c) for c in digits.target_names]
    return DemoData(TensorPairs(x[train], y[train]), TensorPairs(x[val], y[val]), classes, (1, 8, 8), "sklearn digits")


def load_image_folder(root: str, image_size: int, val_fraction: float = 0.2, seed: int = 0) -> DemoData:
    """An ``ImageFolder`` as uint8 ``(3, S, S)`` tensors (resize + center crop), split at random with ``seed``."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    transform = v2.Compose([v2.Resize(image_size), v2.CenterCrop(image_size), v2.PILToTensor()])
    try:
        folder = ImageFolder(root, transform=transform)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise SystemExit(f"--data {root}: {e} (expected an ImageFolder: one sub-folder of images per class)") from e
    if len(folder) < 2:
        raise SystemExit(f"{root} holds {len(folder)} image(s); the demo needs at least 2")
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(val_fraction * len(folder)))
    train, val = Subset(folder, order[n_val:]), Subset(folder, order[:n_val])
    return DemoData(train, val, list(folder.classes), (3, image_size, image_size), f"ImageFolder {root}")


def load_data(root: str | None, image_size: int) -> DemoData:
    """The ``ImageFolder`` at ``root`` (images resized to ``image_size``), or the bundled digits if ``root`` is None."""
    return load_digits_split() if root is None else load_image_folder(root, image_size)
