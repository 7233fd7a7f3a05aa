"""PyTorch Ignite: ``create_supervised_trainer`` trains on mixup batches both ways (soft targets with ignite's
defaults, the 4-tuple with a ``prepare_batch`` and ``MixupLoss``), and ignite's ``Checkpoint`` carries the stream."""

import pytest
import torch
from integration_support import load_example
from oracles import mixed_cross_entropy_reference, soft_target_cross_entropy

pytest.importorskip("ignite")

from ignite.engine import Events  # noqa: E402

pytestmark = [pytest.mark.usefixtures("kept_global_state"), pytest.mark.slow]

VARIANTS = pytest.mark.parametrize("argv", [[], ["--pairs"]], ids=["soft-targets", "pairs"])


def recorded(*argv, resume=None):
    """Build the example's run, record every iteration's draws and loss, then run it."""
    example = load_example("ignite_example")
    args = example.get_args_parser().parse_args(["--epochs", "2", "--samples", "64", *argv])
    run = example.build(args)
    steps = []

    @run["trainer"].on(Events.ITERATION_COMPLETED)
    def record(engine):
        batch = engine.state.batch.finish()
        steps.append({"epoch": run["collate"].epoch, "lam": batch.lam, "perm": batch.perm})

    if resume:
        example.Checkpoint.load_objects(to_load=run["to_save"], checkpoint=torch.load(resume, weights_only=False))
    run["trainer"].run(run["train_loader"], max_epochs=args.epochs)
    return run, steps


class TestTraining:
    @VARIANTS
    def test_every_batch_is_mixed_and_every_epoch_starts_its_stream(self, argv):
        run, steps = recorded(*argv)
        assert [s["epoch"] for s in steps] == [0] * 4 + [1] * 4
        assert all(bool((s["lam"] < 1).any()) for s in steps)
        assert 0 <= run["evaluator"].run(run["val_loader"]).metrics["accuracy"] <= 1

    def test_soft_targets_go_through_ignites_default_prepare_batch_and_cross_entropy(self, monkeypatch):
        losses = []
        original = torch.nn.CrossEntropyLoss.forward

        def spy(self, logits, target):
            loss = original(self, logits, target)
            losses.append((logits.detach(), target, loss.detach()))
            return loss

        monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", spy)
        recorded("--epochs", "1")
        assert len(losses) == 4
        for logits, target, loss in losses:
            assert target.shape == (16, 4)
            torch.testing.assert_close(loss.double(), soft_target_cross_entropy(logits, target).mean())

    def test_pairs_reach_mixup_loss_as_one_triple(self, monkeypatch):
        example = load_example("ignite_example")
        calls = []
        original = example.MixupLoss.forward

        def spy(self, logits, target):
            loss = original(self, logits, target)
            calls.append((logits.detach(), target, loss.detach()))
            return loss

        monkeypatch.setattr(example.MixupLoss, "forward", spy)
        recorded("--epochs", "1", "--pairs")
        assert len(calls) == 4
        for logits, (y_a, y_b, lam), loss in calls:
            torch.testing.assert_close(loss.double(), mixed_cross_entropy_reference(logits, y_a, y_b, lam))

    def test_the_example_learns(self):
        run = load_example("ignite_example").main(["--epochs", "4", "--samples", "256"])
        assert run["evaluator"].state.metrics["accuracy"] > 0.5


class TestCheckpoint:
    @VARIANTS
    def test_a_run_resumed_from_ignites_checkpoint_draws_what_the_uninterrupted_run_drew(self, tmp_path, argv):
        _, full = recorded(*argv, "--epochs", "3")
        recorded(*argv, "--epochs", "2", "--out", str(tmp_path))
        checkpoint = tmp_path / "checkpoint_8.pt"
        assert checkpoint.is_file() and "mixup" in torch.load(checkpoint, weights_only=False)
        _, resumed = recorded(*argv, "--epochs", "3", resume=str(checkpoint))
        assert len(resumed) == 4 and [s["epoch"] for s in resumed] == [2] * 4
        for before, after in zip(full[8:], resumed):
            assert torch.equal(before["lam"], after["lam"]) and torch.equal(before["perm"], after["perm"])
