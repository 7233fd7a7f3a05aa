"""Hugging Face ``transformers`` support: a ``Trainer`` that trains on Mixup/CutMix batches.

``Trainer(data_collator=MixupCollate(...))`` cannot work: the Trainer hands every batch to the model as
keyword arguments (a mixup batch is not a mapping), the model picks its own loss from the labels (float
soft labels silently make it multi-label BCE), and the same collator would mix the evaluation batches::

    collate = MixupCollate(alpha=0.8, cutmix_alpha=1.0, input_key="pixel_values", target_key="labels", seed=0)
    trainer = MixupTrainer(model=model, args=TrainingArguments(...), train_dataset=train, eval_dataset=val,
                           mixup=collate)

- the collate is the training loader's ``collate_fn`` only; evaluation and prediction keep ``data_collator``;
- the loss is [`mixup_cross_entropy`][mixup_collate.mixup_cross_entropy] on the model's logits, from ``(x, y_a, y_b,
  lam)`` (or ``(x, target)`` with ``soft_targets=True``); the model gets the mixed inputs under its
  ``main_input_name`` (positionally for a model without one) and never the labels;
- the epoch: [`MixupCollate.set_epoch`][mixup_collate.MixupCollate.set_epoch] at the start of every epoch, except the
  one a checkpoint is resumed into, whose stream goes on from the checkpoint;
- checkpoints: every ``checkpoint-N/`` gets the collate's random stream (``mixup_stream.pt``), and
  ``trainer.train(resume_from_checkpoint=...)`` continues it, so a resumed run draws what the
  uninterrupted run drew (the Trainer skips the trained batches without using them: they draw nothing).

Import this module only where transformers is installed (``mixup_collate`` itself never imports it).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn
from torch.utils.data import IterableDataset

from .batch import MixedBatch, SoftTargetBatch
from .collate import MixupCollate
from .loss import mixup_cross_entropy
from .pending import PendingBatch

try:
    from transformers import Trainer, TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint
except ImportError as error:
    raise ImportError(
        "mixup_collate.transformers needs Hugging Face transformers: pip install transformers "
        "(or install mixup-collate with the 'integrations' extra)"
    ) from error

__all__ = ["STREAM_FILE", "MixupTrainer"]

STREAM_FILE = "mixup_stream.pt"  # the collate's random stream, in every checkpoint folder

_MIXUP_BATCHES = (PendingBatch, MixedBatch, SoftTargetBatch)


class _EpochCallback(TrainerCallback):
    """Start every epoch's stream, except the epoch a checkpoint is resumed into (its stream goes on)."""

    def __init__(self, collate: MixupCollate) -> None:
        self.collate = collate
        self.resumed_epoch: int | None = None  # the stream's epoch in the checkpoint being resumed

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        epoch = int(state.epoch or 0)  # a resumed mid-epoch state holds e.g. 1.5: the epoch it is in
        if epoch != self.resumed_epoch:
            self.collate.set_epoch(epoch)
        self.resumed_epoch = None


class MixupTrainer(Trainer):
    """A ``transformers.Trainer`` whose training batches come from ``mixup`` and are trained on with the mixup loss.

    Args:
        mixup: the training loader's ``collate_fn``. Its batches are mixed on the device the Trainer moves
            them to (``args.device``), when the loss first uses them.
        *args: ``Trainer``'s own positional arguments.
        **kwargs: ``Trainer``'s own keyword arguments. ``data_collator`` serves evaluation and prediction
            only. ``TrainingArguments(label_smoothing_factor=...)`` smooths the 4-tuple loss; with
            ``soft_targets=True`` smooth in ``MixupCollate(label_smoothing=...)`` instead.
    """

    def __init__(self, *args: Any, mixup: MixupCollate, **kwargs: Any) -> None:
        if not isinstance(mixup, MixupCollate):
            raise TypeError(f"MixupTrainer(mixup=...) takes a MixupCollate, got {type(mixup).__name__}")
        super().__init__(*args, **kwargs)
        if mixup.soft_targets and self.args.label_smoothing_factor:
            raise ValueError(
                "TrainingArguments(label_smoothing_factor=...) would smooth soft targets a second time; with "
                "MixupCollate(soft_targets=True) pass label_smoothing to the collate instead"
            )
        self.mixup = mixup
        self._epochs = _EpochCallback(mixup)
        self.add_callback(self._epochs)

    # -- data --------------------------------------------------------------------------------------

    def get_train_dataloader(self) -> Any:
        """The Trainer's own training loader (sampler, workers, seeding, accelerate), with ``mixup`` as its collate."""
        dispatched = self.args.accelerator_config.dispatch_batches is not False  # None: True for an IterableDataset
        if isinstance(self.train_dataset, IterableDataset) and dispatched:
            raise ValueError(
                "an IterableDataset is dispatched by accelerate (process 0 loads and concatenates every batch), "
                "which handles plain tensors only; pass TrainingArguments(accelerator_config={'dispatch_batches': "
                "False}) so that every process loads and mixes its own batches"
            )
        own = self.data_collator
        self.data_collator = self.mixup
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = own

    def _set_signature_columns_if_needed(self) -> None:
        """The columns ``remove_unused_columns`` keeps: the model's arguments and the collate's input and target."""
        super()._set_signature_columns_if_needed()
        for key in (self.mixup.input_key, self.mixup.target_key):
            if key not in self._signature_columns:
                self._signature_columns.append(key)

    # -- loss --------------------------------------------------------------------------------------

    def compute_loss(
        self,
        model: nn.Module,
        inputs: Any,
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """The mixup loss of a training batch (mean over the batch); evaluation batches get the Trainer's loss."""
        if not isinstance(inputs, _MIXUP_BATCHES):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        batch = inputs.finish() if isinstance(inputs, PendingBatch) else inputs
        outputs = self._forward(model, batch.x)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs  # a ModelOutput is a dict
        if isinstance(batch, SoftTargetBatch):
            loss = mixup_cross_entropy(logits, batch.target)
        else:
            loss = mixup_cross_entropy(
                logits, batch.y_a, batch.y_b, batch.lam, label_smoothing=self.args.label_smoothing_factor
            )
        return (loss, outputs) if return_outputs else loss

    def _forward(self, model: nn.Module, x: torch.Tensor) -> Any:
        """The model on the mixed inputs only: under its ``main_input_name``, else positionally."""
        name = getattr(self.accelerator.unwrap_model(model), "main_input_name", None)
        return model(**{name: x}) if name else model(x)

    def floating_point_ops(self, inputs: Any) -> int:
        """The Trainer's estimate (6 x inputs x parameters), read from a mixup batch's inputs."""
        if isinstance(inputs, _MIXUP_BATCHES) and hasattr(self.model, "num_parameters"):
            return 6 * inputs.x.numel() * self.model.num_parameters(exclude_embeddings=True)
        return super().floating_point_ops(inputs)

    # -- checkpoints -------------------------------------------------------------------------------

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """Write the stream into the checkpoint folder first, then everything the Trainer writes."""
        if self.args.should_save:  # one file for all processes: the state means the same on every rank
            run_dir = self._get_output_dir(trial=trial)
            folder = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            os.makedirs(folder, exist_ok=True)
            torch.save(self.mixup.state_dict(), os.path.join(folder, STREAM_FILE))
        super()._save_checkpoint(model, trial)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        """``Trainer.train``; resuming also continues the collate's stream from the checkpoint."""
        folder = resume_from_checkpoint
        if folder is True:
            folder = get_last_checkpoint(self.args.output_dir)  # None: the Trainer raises its own error
        self._epochs.resumed_epoch = None
        if isinstance(folder, (str, os.PathLike)):
            path = os.path.join(folder, STREAM_FILE)
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"{path} is missing: the checkpoint was not written by a MixupTrainer, so the draws cannot be "
                    "resumed; resume from one of its checkpoints, or start the training afresh"
                )
            state = torch.load(path, weights_only=True)
            self.mixup.load_state_dict(state)
            self._epochs.resumed_epoch = int(state["epoch"])
        return super().train(resume_from_checkpoint, *args, **kwargs)
