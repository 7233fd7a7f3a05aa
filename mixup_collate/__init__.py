"""Mixup and CutMix as a DataLoader collate function: stack on the CPU, mix on the training device.

loader = DataLoader(ds, batch_size=128, collate_fn=MixupCollate(alpha=0.4, device=device))
for x, y_a, y_b, lam in loader:
    loss = mixup_cross_entropy(model(x), y_a, y_b, lam)
"""

from .batch import DetectionBatch, MixedBatch, SoftTargetBatch
from .collate import MixupCollate
from .loss import MixupLoss, mixup_cross_entropy
from .pending import PendingBatch
from .sampling import sample_lam, sample_perm

__all__ = [
    "DetectionBatch",
    "MixedBatch",
    "MixupCollate",
    "MixupLoss",
    "PendingBatch",
    "SoftTargetBatch",
    "mixup_cross_entropy",
    "sample_lam",
    "sample_perm",
]

__version__ = "0.5.0"
