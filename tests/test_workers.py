"""Worker processes stay drop-in: workers only stack, the main process moves, draws and mixes.

The matrix: num_workers 0 and 2, pin_memory off and on, fork and spawn. Every configuration
yields the very batches that num_workers=0 yields for the same seed, and no worker touches CUDA.
"""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from mixup_collate import MixupCollate

pytestmark = pytest.mark.slow


class Images(Dataset):
    """18 uint8 'images' whose pixels encode their index (module level, so spawn can import it)."""

    def __len__(self):
        return 18

    def __getitem__(self, i):
        return torch.full((3, 4, 4), i, dtype=torch.uint8), i % 5


class CudaTouched(RuntimeError):
    pass


def forbid_cuda(worker_id):
    """worker_init_fn: make every way into CUDA raise inside this worker."""

    def refuse(*args, **kwargs):
        raise CudaTouched(f"CUDA touched in worker {worker_id}")

    for name in ("is_available", "device_count", "current_device", "init", "_lazy_init", "set_device", "synchronize"):
        setattr(torch.cuda, name, refuse)
    for name in ("is_available", "current_accelerator", "device_count"):
        setattr(torch.accelerator, name, refuse)
    original_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        target = kwargs.get("device", args[0] if args else None)
        if isinstance(target, (str, torch.device)) and torch.device(target).type != "cpu":
            refuse()
        return original_to(self, *args, **kwargs)

    torch.Tensor.to = to
    torch.Tensor.cuda = refuse
    torch.Tensor.pin_memory = refuse


def batches(num_workers=0, pin_memory=False, context=None, device="cpu", seed=0, **kwargs):
    loader = DataLoader(
        Images(),
        batch_size=5,
        collate_fn=MixupCollate(0.4, device=device, seed=seed),
        num_workers=num_workers,
        pin_memory=pin_memory,
        multiprocessing_context=context if num_workers else None,
        worker_init_fn=forbid_cuda if num_workers else None,
        **kwargs,
    )
    return [tuple(batch) + (batch.perm,) for batch in loader]


@pytest.fixture(scope="module")
def reference():
    return batches()


@pytest.mark.filterwarnings("ignore:.*pin_memory.*:UserWarning")
@pytest.mark.parametrize("pin_memory", [False, True])
@pytest.mark.parametrize("num_workers, context", [(0, None), (2, "fork"), (2, "spawn")])
def test_same_batches_for_every_worker_configuration(reference, num_workers, pin_memory, context):
    got = batches(num_workers, pin_memory, context)
    assert len(got) == len(reference) == 4
    for ours, ref in zip(got, reference):
        for a, b in zip(ours, ref):
            assert torch.equal(a, b)


def test_batches_are_mixed_with_fresh_parameters_in_every_worker(reference):
    # The classic bug: forked workers repeating one random stream. Here batch 0 (worker 0)
    # and batch 1 (worker 1) must differ, as must every other pair.
    got = batches(num_workers=2, context="fork")
    lams = [b[3] for b in got]
    for i in range(len(lams)):
        for j in range(i):
            assert not torch.equal(lams[i][:3], lams[j][:3])


def test_unseeded_workers_are_independent_too():
    torch.manual_seed(0)
    got = batches(num_workers=2, context="fork", seed=None)
    assert not torch.equal(got[0][3], got[1][3])


def test_persistent_workers_draw_new_parameters_each_epoch():
    loader = DataLoader(
        Images(), batch_size=6, collate_fn=MixupCollate(device="cpu", seed=0), num_workers=2, persistent_workers=True
    )
    first, second = [[b.lam for b in loader] for _ in range(2)]
    assert not any(torch.equal(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_no_cuda_call_in_a_worker_for_a_non_cpu_device(context):
    # 'meta' stands in for CUDA on a machine without one: the target is not the CPU, so a worker
    # that moved, pinned or queried anything would raise CudaTouched.
    got = batches(num_workers=2, context=context, device="meta")
    assert all(x.device.type == "meta" and lam.device.type == "meta" for x, _, _, lam, _ in got)


def test_a_worker_that_touches_cuda_is_caught():
    # The guard has teeth: a collate that asks CUDA for its device inside a worker fails.
    class Eager(MixupCollate):
        def __call__(self, samples):
            torch.cuda.is_available()
            return super().__call__(samples)

    loader = DataLoader(
        Images(),
        batch_size=5,
        collate_fn=Eager(device="cpu"),
        num_workers=1,
        worker_init_fn=forbid_cuda,
        multiprocessing_context="fork",
    )
    with pytest.raises(CudaTouched):
        next(iter(loader))


def test_finishing_inside_a_worker_is_refused():
    collate = MixupCollate(device="cpu")

    class Finishing(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return collate([(torch.rand(2), 0), (torch.rand(2), 1)]).finish().x

    with pytest.raises(RuntimeError, match="main process only"):
        next(iter(DataLoader(Finishing(), batch_size=2, num_workers=1, multiprocessing_context="fork")))


def test_cpu_batches_from_workers_are_mixed_on_one_thread_and_threads_restored(monkeypatch):
    # Workers keep the host cores busy; the main process's intra-op threads would compete with them.
    seen = []
    original = MixupCollate._finish

    def spy(self, stacked):
        seen.append(torch.get_num_threads())
        return original(self, stacked)

    monkeypatch.setattr(MixupCollate, "_finish", spy)
    threads = torch.get_num_threads()
    batches(num_workers=2, context="fork")
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == threads
    seen.clear()
    batches(num_workers=0)
    assert set(seen) == {threads}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("num_workers, context", [(2, "fork"), (2, "spawn")])
def test_cuda_batches_through_the_pin_memory_thread_match_the_main_process(num_workers, context):
    # The live path of the pin-memory thread: PendingBatch.pin_memory() runs there, the mix on the GPU.
    reference = [tuple(t.cpu() for t in b) for b in batches(device="cuda")]
    got = batches(num_workers, pin_memory=True, context=context, device="cuda")
    assert all(t.is_cuda for b in got for t in b)
    for ours, ref in zip(got, reference):
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a.cpu(), b)
