"""Hugging Face accelerate: ``prepare`` keeps the collate, ``skip_first_batches`` resumes with the right draws.

And what ``dispatch_batches=True`` (accelerate's default for an IterableDataset) does to a mixup batch:
it fails with accelerate's own TypeError; ``DataLoaderConfiguration(dispatch_batches=False)`` is the fix.
"""

import pytest
import torch
from integration_support import global_state_kept, load_example, run_ranks
from torch.utils.data import DataLoader, IterableDataset

from mixup_collate import MixupCollate

pytestmark = pytest.mark.slow  # runs the demo, the package, a framework or torchrun

accelerate = pytest.importorskip("accelerate")

from accelerate import Accelerator  # noqa: E402
from accelerate.state import AcceleratorState  # noqa: E402
from accelerate.utils import DataLoaderConfiguration  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """Each test builds its own Accelerator: forget the process-wide state a previous one left, before and after."""
    AcceleratorState._reset_state(True)
    with global_state_kept():
        yield
    AcceleratorState._reset_state(True)


def example(*argv):
    module = load_example("accelerate_example")
    return module.main(module.get_args_parser().parse_args(["--cpu", "--epochs", "2", "--samples", "64", *argv]))


@pytest.mark.parametrize("data", [[], ["--iterable"]], ids=["map-style", "iterable"])
def test_a_resumed_run_draws_what_the_uninterrupted_run_drew(tmp_path, data):
    """Interrupted after 3 of 8 steps, checkpointed, resumed: the same batches, mixed the same way, to the bit."""
    full = example(*data)["history"]
    stopped = example(*data, "--stop-at", "3", "--out", str(tmp_path))
    resumed = example(*data, "--resume", str(tmp_path))["history"]
    assert stopped["stopped"] and len(full) == 8 and len(resumed) == 5
    for before, after in zip(full[3:], resumed):
        assert (before["epoch"], before["step"]) == (after["epoch"], after["step"])
        assert torch.equal(before["y_a"], after["y_a"])  # the same samples (skipped, not re-drawn)
        assert torch.equal(before["lam"], after["lam"]) and torch.equal(before["inputs"], after["inputs"])
    assert resumed[-1]["loss"] == pytest.approx(full[-1]["loss"], rel=1e-5)


def test_the_example_learns():
    history = example("--epochs", "3", "--samples", "128")["history"]
    first, last = (sum(h["loss"] for h in history if h["epoch"] == e) for e in (0, 2))
    assert last < first


class Stream(IterableDataset):
    def __iter__(self):
        for i in range(16):
            yield {"image": torch.full((3, 4, 4), float(i)), "label": i % 3, "index": i}


def prepared(dispatch_batches):
    accelerator = Accelerator(cpu=True, dataloader_config=DataLoaderConfiguration(dispatch_batches=dispatch_batches))
    collate = MixupCollate(alpha=1.0, seed=0, device=accelerator.device)
    return accelerator.prepare(DataLoader(Stream(), batch_size=4, collate_fn=collate))


def test_dispatching_an_iterable_dataset_fails_in_accelerate_with_its_own_type_error():
    """accelerate dispatches an IterableDataset by default: plain tensors only (docs/recipes/accelerate.md)."""
    loader = prepared(dispatch_batches=None)
    assert type(loader).__name__ == "DataLoaderDispatcher"
    with pytest.raises(TypeError, match=r"Can only find the batch size of tensors but got .*PendingBatch"):
        next(iter(loader))


def test_without_dispatching_every_batch_arrives_whole():
    loader = prepared(dispatch_batches=False)
    assert type(loader).__name__ == "DataLoaderShard"
    batches = list(loader)
    assert [b.extras["index"].tolist() for b in batches] == [list(range(i, i + 4)) for i in range(0, 16, 4)]
    assert all(b.perm.shape == (4,) and bool((b.lam < 1).all()) for b in batches)


def accelerate_rank(rank, dispatch_batches, out_dir):
    AcceleratorState._reset_state(True)  # the forked parent's single-process state
    loader = prepared(dispatch_batches)
    draws = [(b.lam, b.extras["index"]) for b in loader]
    torch.save(draws, out_dir / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_dispatching_processes_fail_on_rank_0_with_accelerates_type_error(tmp_path):
    with pytest.raises(Exception, match=r"Can only concatenate tensors but got .*PendingBatch"):
        run_ranks(accelerate_rank, 2, None, tmp_path)


@pytest.mark.slow
def test_two_processes_without_dispatching_load_and_mix_their_own_shards(tmp_path):
    run_ranks(accelerate_rank, 2, False, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    indices = [torch.cat([index for _, index in draws]).tolist() for draws in ranks]
    assert sorted(indices[0] + indices[1]) == list(range(16)) and not set(indices[0]) & set(indices[1])
    assert all(not torch.equal(a, b) for (a, _), (b, _) in zip(*ranks))  # each rank its own stream
