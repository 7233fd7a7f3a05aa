"""Lightning support: a callback keeping a [`MixupCollate`][mixup_collate.MixupCollate] in step with the Trainer.

Lightning needs no help to move or mix the batches: its default ``transfer_batch_to_device`` calls the
batch's ``.to(device)``, and the batch is mixed there at its first use in ``training_step``, with
``.perm`` and ``.extras`` intact. What it cannot know about is the collate itself::

    collate = MixupCollate(alpha=0.4, seed=0)
    loader = DataLoader(train_set, batch_size=128, num_workers=8, collate_fn=collate)
    trainer = Trainer(callbacks=[MixupCallback(collate)], precision="bf16-true")

- the epoch: [`MixupCollate.set_epoch`][mixup_collate.MixupCollate.set_epoch] at the start of every training epoch,
  resumed ones included (per-epoch streams, ``off_epoch``);
- checkpoints: the collate's random stream is saved with the Trainer's checkpoints and restored on
  resume, so a resumed run draws what the uninterrupted run would have drawn;
- ``"64-true"``, ``"bf16-true"`` and ``"16-true"`` precision: Lightning converts a batch's tensors to
  the model's dtype before the transfer, which cannot reach inside a batch that is mixed later; the
  callback gives the collate that dtype instead (for the duration of the run).

Import this module only where Lightning is installed (``mixup_collate`` itself never imports it). It
uses the ``pytorch_lightning`` package if present, else ``lightning.pytorch``.
"""

from __future__ import annotations

from typing import Any

import torch

from .collate import MixupCollate

try:
    import pytorch_lightning as pl
except ImportError:  # the unified ``lightning`` package
    try:
        import lightning.pytorch as pl
    except ImportError as error:
        raise ImportError(
            "mixup_collate.lightning needs PyTorch Lightning: pip install pytorch-lightning "
            "(or install mixup-collate with the 'integrations' extra)"
        ) from error

__all__ = ["PRECISION_DTYPES", "MixupCallback"]

# Lightning precisions that run the model in a dtype other than float32 without autocast: the inputs must
# arrive in it. The "*-mixed" precisions autocast float32 inputs and need nothing.
PRECISION_DTYPES: dict[str, torch.dtype] = {
    "64-true": torch.float64,
    "bf16-true": torch.bfloat16,
    "16-true": torch.float16,
}


class MixupCallback(pl.Callback):
    """Keep ``collate`` in step with the Trainer: the epoch, the input dtype of ``*-true`` precisions, checkpoints.

    Args:
        collate: the train DataLoader's ``collate_fn``. It is passed here rather than found on the
            DataLoader because Lightning restores a callback's state before any DataLoader exists.
    """

    def __init__(self, collate: MixupCollate) -> None:
        if not isinstance(collate, MixupCollate):
            raise TypeError(f"MixupCallback(collate) takes a MixupCollate, got {type(collate).__name__}")
        self.collate = collate
        self._own_dtype = collate.dtype  # what the collate had before a precision set it

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Give the collate the input dtype of a ``*-true`` precision (it stays as it was for other precisions)."""
        precision = str(trainer.precision)
        wanted = PRECISION_DTYPES.get(precision)
        own = self._own_dtype
        if wanted is not None and own is not None and own != wanted:
            raise ValueError(
                f"Trainer(precision={precision!r}) runs the model in {wanted}, but the collate was built with "
                f"MixupCollate(dtype={own}); drop the collate's dtype (the callback sets it) or make them agree"
            )
        self.collate.dtype = own if wanted is None else wanted

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Hand the collate back with the dtype it came with."""
        self.collate.dtype = self._own_dtype

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Refuse a train DataLoader whose collate is another MixupCollate: its stream would go unsaved."""
        loader = trainer.train_dataloader
        found = getattr(loader, "collate_fn", None)
        if isinstance(found, MixupCollate) and found is not self.collate:
            raise ValueError(
                "the train DataLoader's collate_fn is a different MixupCollate from the one given to "
                "MixupCallback(collate); build the collate once and pass the same object to both"
            )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the epoch's stream from its first batch."""
        self.collate.set_epoch(trainer.current_epoch)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        """Catch up with an epoch Lightning entered without ``on_train_epoch_start``.

        A run resumed from a checkpoint written at the end of an epoch goes on with the next epoch without
        calling that hook; one resumed mid-epoch is in the checkpoint's epoch already, and its stream
        continues where it stopped. The batch is not drawn yet: that happens at its first use.
        """
        if self.collate.epoch != trainer.current_epoch:
            self.collate.set_epoch(trainer.current_epoch)

    def state_dict(self) -> dict[str, Any]:
        """The collate's random stream, saved under this callback's key in Lightning checkpoints."""
        return self.collate.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the stream of the checkpoint (every rank its own: the state is rank-agnostic)."""
        self.collate.load_state_dict(state_dict)
