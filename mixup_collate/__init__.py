"""Mixup as a DataLoader collate function: stack on the CPU, mix on the training device.

    loader = DataLoader(ds, batch_size=128, collate_fn=MixupCollate(alpha=0.4))
    for x, y_a, y_b, lam in loader:
        loss = mixup_cross_entropy(model(x), y_a, y_b, lam)
"""

from .batch import MixedBatch, PendingBatch
from .collate import MixupCollate
from .loss import MixupLoss, mixup_cross_entropy
from .mix import mix, mix_targets, pair, transform
from .sampling import sample_lam, sample_perm

__all__ = [
    "MixedBatch",
    "MixupCollate",
    "MixupLoss",
    "PendingBatch",
    "mix",
    "mix_targets",
    "mixup_cross_entropy",
    "pair",
    "sample_lam",
    "sample_perm",
    "transform",
]

__version__ = "0.1.0"
