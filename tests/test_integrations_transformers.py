"""Hugging Face ``transformers``: ``MixupTrainer`` mixes the training batches only, trains on the exact mixup loss,
keeps the collate's epoch, and resumes its random stream from any checkpoint.

The Trainer runs examples/transformers_trainer.py's tiny ViT on the CPU: 32 pictures, 4 steps an epoch.
"""

import pytest
import torch
from integration_support import load_example, modules_importing
from oracles import mixed_cross_entropy_reference, soft_target_cross_entropy
from torch.utils.data import IterableDataset

from mixup_collate import MixupCollate
from mixup_collate.pending import PendingBatch

pytest.importorskip("transformers")

from transformers import TrainerCallback, TrainingArguments  # noqa: E402

from mixup_collate.transformers import STREAM_FILE, MixupTrainer  # noqa: E402

pytestmark = [pytest.mark.usefixtures("kept_global_state"), pytest.mark.slow]

STEPS_PER_EPOCH = 4


class Recording(MixupTrainer):
    """Records what every training step drew and computed, and what the model was handed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps, self.model_kwargs = [], []
        self.model.register_forward_pre_hook(self._seen_by_model, with_kwargs=True)

    def _seen_by_model(self, module, args, kwargs):
        self.model_kwargs.append((module.training, sorted(kwargs)))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not isinstance(inputs, PendingBatch):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        batch = inputs.finish()
        loss, outputs = super().compute_loss(model, batch, True, num_items_in_batch)
        drawn = {name: getattr(batch, name).detach().clone() for name in {*batch._fields, "lam", "perm"}}
        computed = {"loss": loss.detach(), "logits": outputs.logits.detach()}
        self.steps.append({"epoch": self.mixup.epoch, **computed, **drawn})
        return (loss, outputs) if return_outputs else loss


class StopAt(TrainerCallback):
    """An interruption: training stops after ``step`` (the checkpoint of that step is written first)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def trainer(tmp_path, *argv, stop_at=None):
    example = load_example("transformers_trainer")
    args = example.get_args_parser().parse_args(
        ["--epochs", "2", "--samples", "32", "--batch-size", "8", "--out", str(tmp_path), *argv]
    )
    built = example.build(args, trainer_class=Recording)
    if stop_at is not None:
        built.add_callback(StopAt(stop_at))
    return built


def assert_same_draws(full, resumed):
    assert len(resumed) == len(full) and resumed
    for before, after in zip(full, resumed):
        assert before.keys() == after.keys()
        assert before["epoch"] == after["epoch"]
        for name in ("x", "lam", "perm", *(("target",) if "target" in before else ("y_a", "y_b"))):
            assert torch.equal(before[name], after[name]), name


class TestTraining:
    def test_training_batches_are_mixed_and_the_model_gets_the_inputs_only(self, tmp_path):
        run = trainer(tmp_path)
        run.train()
        assert len(run.steps) == 2 * STEPS_PER_EPOCH
        assert all(bool((s["lam"] < 1).any()) for s in run.steps)
        training = [keys for was_training, keys in run.model_kwargs if was_training]
        assert training and all(keys == ["pixel_values"] for keys in training)  # no labels: no loss of its own

    def test_the_loss_is_the_mixed_cross_entropy_of_the_logits(self, tmp_path):
        run = trainer(tmp_path, "--epochs", "1")
        run.train()
        for step in run.steps:
            expected = mixed_cross_entropy_reference(step["logits"], step["y_a"], step["y_b"], step["lam"])
            torch.testing.assert_close(step["loss"].double(), expected, rtol=1e-5, atol=1e-6)

    def test_soft_targets_train_on_the_dense_targets(self, tmp_path):
        run = trainer(tmp_path, "--epochs", "1", "--soft-targets")
        run.train()
        assert len(run.steps) == STEPS_PER_EPOCH
        for step in run.steps:
            assert step["target"].shape == (8, 4)
            expected = soft_target_cross_entropy(step["logits"], step["target"]).mean()
            torch.testing.assert_close(step["loss"].double(), expected, rtol=1e-5, atol=1e-6)

    def test_label_smoothing_factor_smooths_the_mixup_loss(self, tmp_path):
        run = trainer(tmp_path, "--epochs", "1")
        run.args.label_smoothing_factor = 0.1
        run.train()
        for step in run.steps:
            expected = mixed_cross_entropy_reference(
                step["logits"], step["y_a"], step["y_b"], step["lam"], label_smoothing=0.1
            )
            torch.testing.assert_close(step["loss"].double(), expected, rtol=1e-5, atol=1e-6)

    def test_every_epoch_starts_the_collates_epoch(self, tmp_path):
        run = trainer(tmp_path)
        run.train()
        assert [s["epoch"] for s in run.steps] == [0] * STEPS_PER_EPOCH + [1] * STEPS_PER_EPOCH

    def test_evaluation_and_prediction_keep_the_trainers_own_collator(self, tmp_path):
        run = trainer(tmp_path, "--epochs", "1")
        run.train()
        assert not isinstance(run.get_eval_dataloader().collate_fn, MixupCollate)
        metrics = run.evaluate()
        assert 0 <= metrics["eval_accuracy"] <= 1  # compute_metrics gets class-index labels
        labels = run.predict(run.eval_dataset).label_ids
        assert labels.shape == (8,) and set(labels.tolist()) <= {0, 1, 2, 3}

    @pytest.mark.slow
    def test_two_workers_draw_what_no_workers_draw(self, tmp_path):
        alone, helped = trainer(tmp_path / "0"), trainer(tmp_path / "2", "--workers", "2")
        alone.train()
        helped.train()
        assert_same_draws(alone.steps, helped.steps)


class TestCheckpoints:
    @pytest.mark.parametrize(
        ("stop_at", "argv"),
        [
            pytest.param(6, [], id="mid-epoch"),
            pytest.param(4, [], id="epoch-end"),
            pytest.param(6, ["--soft-targets"], id="mid-epoch-soft-targets"),
            pytest.param(6, ["--workers", "2"], id="mid-epoch-2-workers", marks=pytest.mark.slow),
        ],
    )
    def test_a_resumed_run_draws_what_the_uninterrupted_run_drew(self, tmp_path, stop_at, argv):
        full = trainer(tmp_path / "full", "--save-steps", str(stop_at), *argv)
        full.train()
        stopped = trainer(tmp_path / "stopped", "--save-steps", str(stop_at), *argv, stop_at=stop_at)
        stopped.train()
        assert len(stopped.steps) == stop_at
        checkpoint = tmp_path / "stopped" / f"checkpoint-{stop_at}"
        assert (checkpoint / STREAM_FILE).is_file()
        resumed = trainer(tmp_path / "stopped", "--save-steps", str(stop_at), *argv)
        resumed.train(resume_from_checkpoint=str(checkpoint))
        assert_same_draws(full.steps[stop_at:], resumed.steps)

    def test_resume_from_checkpoint_true_finds_the_last_checkpoint(self, tmp_path):
        stopped = trainer(tmp_path, "--save-steps", "2", stop_at=6)
        stopped.train()
        resumed = trainer(tmp_path, "--save-steps", "2")
        resumed.train(resume_from_checkpoint=True)
        assert len(resumed.steps) == 2 and [s["epoch"] for s in resumed.steps] == [1, 1]
        assert resumed.mixup.state_dict()["batches"] == STEPS_PER_EPOCH

    def test_a_checkpoint_without_the_stream_is_refused_by_name(self, tmp_path):
        stopped = trainer(tmp_path, "--save-steps", "2", stop_at=2)
        stopped.train()
        (tmp_path / "checkpoint-2" / STREAM_FILE).unlink()
        with pytest.raises(FileNotFoundError, match=r"checkpoint-2.mixup_stream\.pt is missing"):
            trainer(tmp_path, "--save-steps", "2").train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))


class Pictures(torch.utils.data.Dataset):
    """Dict samples under the collate's default keys, with a column the model does not take."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return {"image": torch.rand(3, 16, 16), "label": i % 4, "path": f"{i}.png"}


class Stream(IterableDataset):
    def __iter__(self):
        for i in range(8):
            yield {"pixel_values": torch.rand(3, 16, 16), "labels": i % 4}


class TestRefusals:
    def arguments(self, tmp_path, **kwargs):
        return TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)

    def model(self):
        return load_example("transformers_trainer").tiny_vit()

    def test_mixup_must_be_a_mixup_collate(self, tmp_path):
        with pytest.raises(TypeError, match=r"MixupTrainer\(mixup=...\) takes a MixupCollate, got function"):
            MixupTrainer(model=self.model(), args=self.arguments(tmp_path), mixup=lambda samples: samples)

    def test_soft_targets_are_not_smoothed_twice(self, tmp_path):
        collate = MixupCollate(soft_targets=True, num_classes=4)
        with pytest.raises(ValueError, match=r"label_smoothing_factor.*MixupCollate\(soft_targets=True\)"):
            MixupTrainer(model=self.model(), args=self.arguments(tmp_path, label_smoothing_factor=0.1), mixup=collate)

    def test_a_dispatched_iterable_dataset_is_refused_naming_the_fix(self, tmp_path):
        collate = MixupCollate(input_key="pixel_values", target_key="labels")
        run = MixupTrainer(
            model=self.model(), args=self.arguments(tmp_path, max_steps=1), train_dataset=Stream(), mixup=collate
        )
        with pytest.raises(ValueError, match=r"accelerator_config=\{'dispatch_batches': False\}"):
            run.train()

    def test_remove_unused_columns_keeps_the_collates_input_and_target(self, tmp_path):
        collate = MixupCollate(seed=0)  # input_key="image", target_key="label": not the model's argument names
        arguments = self.arguments(tmp_path, max_steps=2)
        assert arguments.remove_unused_columns, "the Trainer's default"
        run = MixupTrainer(model=self.model(), args=arguments, train_dataset=Pictures(), mixup=collate)
        assert run.train().global_step == 2

    def test_an_undispatched_iterable_dataset_trains(self, tmp_path):
        collate = MixupCollate(input_key="pixel_values", target_key="labels", seed=0)
        arguments = self.arguments(tmp_path, max_steps=2, accelerator_config={"dispatch_batches": False})
        run = MixupTrainer(model=self.model(), args=arguments, train_dataset=Stream(), mixup=collate, eval_dataset=None)
        assert run.train().global_step == 2


def test_only_the_transformers_module_imports_transformers():
    """``import mixup_collate`` must work without transformers: no other module imports it."""
    assert not modules_importing(("transformers",), "transformers")
