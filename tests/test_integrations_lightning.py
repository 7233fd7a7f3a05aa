"""PyTorch Lightning (2.x): batches reach ``training_step`` mixed, whole, on the Trainer's terms.

Lightning's own transfer calls the batch's ``.to(device)``; the batch is mixed at its first use in
``training_step``, so ``.perm`` and ``.extras`` arrive. ``MixupCallback`` adds what Lightning cannot
know: the epoch, the input dtype of ``*-true`` precisions, and the random stream in checkpoints.
"""

import warnings

import pytest
import torch
from integration_support import global_state_kept, load_example, modules_importing
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mixup_collate import MixedBatch, MixupCollate, mixup_cross_entropy

pytestmark = pytest.mark.slow  # runs the demo, the package, a framework or torchrun

pl = pytest.importorskip("pytorch_lightning")

from mixup_collate.lightning import MixupCallback  # noqa: E402

BATCH, SAMPLES = 4, 16  # four full batches per epoch


@pytest.fixture(autouse=True)
def quiet_lightning():
    """Lightning's advice about workers and loggers is noise here; restore the warning filters (and threads) after."""
    with warnings.catch_warnings(), global_state_kept():
        warnings.filterwarnings("ignore", module="pytorch_lightning")
        warnings.filterwarnings("ignore", module="lightning_fabric")
        yield


class Pictures(Dataset):
    """Dict samples whose pixels encode their index; the index also travels as an extra field."""

    def __len__(self):
        return SAMPLES

    def __getitem__(self, i):
        return {"image": torch.full((3, 4, 4), float(i)), "label": i % 3, "index": i}


def picture(i):
    return torch.full((3, 4, 4), float(i), dtype=torch.float64)


class Recorder(pl.LightningModule):
    """A linear classifier that keeps what each training_step received."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
        self.seen = []

    def training_step(self, batch, batch_idx):
        x, y_a, y_b, lam = batch
        self.seen.append({"batch": batch, "epoch": self.current_epoch, "dtype": x.dtype})
        return mixup_cross_entropy(self.net(x).float(), y_a, y_b, lam)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def trainer(callbacks=(), **kwargs):
    options = dict(
        accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    options.update(kwargs)
    return pl.Trainer(callbacks=list(callbacks), **options)


def fit(collate, num_workers=0, callbacks=None, ckpt_path=None, **kwargs):
    callbacks = [MixupCallback(collate)] if callbacks is None else callbacks
    loader = DataLoader(
        Pictures(), batch_size=BATCH, shuffle=True, num_workers=num_workers, collate_fn=collate,
        persistent_workers=num_workers > 0,
    )  # fmt: skip
    module = Recorder()
    trainer(callbacks, **kwargs).fit(module, loader, ckpt_path=ckpt_path)
    return module.seen


@pytest.mark.parametrize("num_workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_training_step_gets_the_finished_batch_with_perm_and_extras(num_workers):
    seen = fit(MixupCollate(alpha=1.0, seed=0, fold=False), num_workers)
    assert len(seen) == 2 * SAMPLES // BATCH
    for step in seen:
        batch = step["batch"].finish()  # what unpacking it in training_step gave
        assert isinstance(batch, MixedBatch)
        index, perm = batch.extras["index"], batch.perm
        assert perm.shape == (BATCH,) and index.shape == (BATCH,)
        own = torch.stack([picture(int(i)) for i in index])
        lam = batch.lam.double().reshape(-1, 1, 1, 1)
        expected = lam * own + (1 - lam) * own[perm]  # float64 reference from the extras and perm that arrived
        torch.testing.assert_close(batch.x.double(), expected, rtol=1e-6, atol=1e-5)
        assert torch.equal(batch.y_b, batch.y_a[perm])
    assert {int(i) for step in seen[:4] for i in step["batch"].extras["index"]} == set(range(SAMPLES))


def test_the_callback_sets_the_epoch_so_off_epoch_stops_mixing_in_time():
    collate = MixupCollate(alpha=1.0, seed=0, off_epoch=1)
    seen = fit(collate)
    assert [s["epoch"] for s in seen] == [0] * 4 + [1] * 4
    assert all(bool((s["batch"].lam < 1).any()) for s in seen[:4])
    assert all(bool((s["batch"].lam == 1).all()) for s in seen[4:])
    assert collate.epoch == 1


def test_without_the_callback_the_epoch_never_changes():
    collate = MixupCollate(alpha=1.0, seed=0, off_epoch=1)
    seen = fit(collate, callbacks=[])
    assert all(bool((s["batch"].lam < 1).any()) for s in seen)  # still mixing in epoch 1: nobody called set_epoch


@pytest.mark.parametrize(("precision", "dtype"), [("64-true", torch.float64), ("bf16-true", torch.bfloat16)])
def test_true_precisions_get_inputs_in_the_model_dtype(precision, dtype):
    collate = MixupCollate(alpha=1.0, seed=0)
    seen = fit(collate, precision=precision, max_epochs=1)
    assert {s["dtype"] for s in seen} == {dtype}
    assert collate.dtype is None  # handed back as it came


def test_without_the_callback_a_true_precision_meets_float32_inputs():
    """Documents why the callback sets the dtype: Lightning's input conversion cannot reach inside the batch."""
    with pytest.raises(RuntimeError, match="dtype"):
        fit(MixupCollate(alpha=1.0, seed=0), callbacks=[], precision="64-true", max_epochs=1)


def test_mixed_precision_leaves_the_collate_dtype_alone():
    collate = MixupCollate(alpha=1.0, seed=0, dtype=torch.float32)
    seen = fit(collate, precision="bf16-mixed", max_epochs=1)
    assert {s["dtype"] for s in seen} == {torch.float32}
    assert collate.dtype == torch.float32


def test_a_collate_dtype_that_contradicts_the_precision_is_refused():
    with pytest.raises(ValueError, match=r"precision='64-true'.*MixupCollate\(dtype=torch.float32\)"):
        fit(MixupCollate(alpha=1.0, dtype=torch.float32), precision="64-true", max_epochs=1)


def test_a_callback_holding_another_collate_is_refused():
    loader_collate = MixupCollate(alpha=1.0)
    with pytest.raises(ValueError, match="different MixupCollate"):
        fit(loader_collate, callbacks=[MixupCallback(MixupCollate(alpha=1.0))], max_epochs=1)


def test_the_callback_takes_a_mixup_collate():
    with pytest.raises(TypeError, match="takes a MixupCollate, got function"):
        MixupCallback(lambda samples: samples)


def lams(seen):
    return [(s["epoch"], s["batch"].lam, s["batch"].perm) for s in seen]


@pytest.mark.parametrize("step", [2, 4, 6], ids=["mid-epoch-0", "end-of-epoch-0", "mid-epoch-1"])
def test_a_checkpoint_resumes_the_stream_where_it_stopped(tmp_path, step):
    """A run resumed from a checkpoint draws exactly what the uninterrupted run drew after that step.

    The resumed collate has no seed of its own: base seed, epoch and position all come from the checkpoint.
    """
    saver = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=2, save_top_k=-1)
    collate = MixupCollate(alpha=1.0, seed=7)
    full = lams(fit(collate, callbacks=[MixupCallback(collate), saver], enable_checkpointing=True))
    (path,) = tmp_path.glob(f"*step={step}.ckpt")
    assert "MixupCallback" in torch.load(path, weights_only=True)["callbacks"]

    resumed_collate = MixupCollate(alpha=1.0)
    resumed = lams(fit(resumed_collate, ckpt_path=str(path)))
    assert len(resumed) == len(full) - step
    for (epoch, lam, perm), (epoch_full, lam_full, perm_full) in zip(resumed, full[step:]):
        assert epoch == epoch_full
        assert torch.equal(lam, lam_full) and torch.equal(perm, perm_full)


def test_the_example_trains(tmp_path):
    result = load_example("lightning_example").main(
        ["--epochs", "2", "--samples", "64", "--workers", "0", "--out", str(tmp_path)]
    )
    assert result["epochs_seen"] == [0, 1]
    assert result["last_loss"] < result["first_loss"]


def test_only_the_lightning_module_imports_lightning():
    """``import mixup_collate`` must work without Lightning: no other module imports it or mixup_collate.lightning."""
    assert not modules_importing(("pytorch_lightning", "lightning"), "lightning")
