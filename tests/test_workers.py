"""Worker processes stay drop-in: workers only stack, the main process draws and mixes at the batch's first use.

The contract: with the same seed, the same loop sees the same batches for num_workers 0 and 2,
fork and spawn, whether it uses every batch in order, skips some, uses them in another order, or
resumes by skipping the batches it has already seen. No worker touches CUDA.
"""

import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision.transforms.v2 import RandomHorizontalFlip

from mixup_collate import MixupCollate
from mixup_collate.finish import Finisher
from mixup_collate.pending import PendingBatch

pytestmark = pytest.mark.slow

NO_ACCELERATOR = "pin_memory needs an accelerator: without one the DataLoader skips pinning (these cases would repeat)"


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
        if hasattr(torch, "accelerator"):
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


def loader(num_workers=0, pin_memory=False, context=None, collate=None, **kwargs):
    return DataLoader(
        Images(),
        batch_size=5,
        collate_fn=collate if collate is not None else MixupCollate(0.4, device="cpu", seed=0),
        num_workers=num_workers,
        pin_memory=pin_memory,
        multiprocessing_context=context if num_workers else None,
        worker_init_fn=forbid_cuda if num_workers else None,
        **kwargs,
    )


def as_tensors(batch):
    return (*batch, batch.perm)


def in_order(batches):
    return [as_tensors(b) for b in batches]


def skipping(batches):
    return [as_tensors(b) for i, b in enumerate(batches) if i % 2 == 1]


def reordered(batches):
    held = list(batches)  # collected, unused
    return [as_tensors(held[i]) for i in (2, 0, 3, 1)]


def resumed(make_loader):
    """Use two batches and save the state; a new run loads it, skips those two unused, and goes on."""
    first = make_loader()
    seen = []
    for i, batch in enumerate(first):
        seen.append(as_tensors(batch))
        if i == 1:
            state = first.collate_fn.state_dict()
            break
    second = make_loader()
    second.collate_fn.load_state_dict(state)
    rest = [as_tensors(b) for i, b in enumerate(second) if i >= 2]
    return seen + rest


def assert_same(got, expected):
    assert len(got) == len(expected) > 0
    for ours, ref in zip(got, expected):
        for a, b in zip(ours, ref):
            assert torch.equal(a, b)


@pytest.fixture(scope="module")
def reference():
    return {way.__name__: way(loader()) for way in (in_order, skipping, reordered)}


CONFIGS = [
    pytest.param(0, False, None, id="0 workers"),
    pytest.param(2, False, "fork", id="2 workers fork"),
    pytest.param(2, False, "spawn", id="2 workers spawn"),
    pytest.param(
        0,
        True,
        None,
        id="0 workers pinned",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_ACCELERATOR),
    ),
    pytest.param(
        2,
        True,
        "fork",
        id="2 workers fork pinned",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_ACCELERATOR),
    ),
]


@pytest.mark.parametrize("num_workers, pin_memory, context", CONFIGS)
def test_same_batches_in_order_for_every_worker_configuration(reference, num_workers, pin_memory, context):
    assert_same(in_order(loader(num_workers, pin_memory, context)), reference["in_order"])


@pytest.mark.parametrize("way", [skipping, reordered])
@pytest.mark.parametrize("num_workers", [0, 2])
def test_draws_follow_first_use_whatever_the_workers(reference, way, num_workers):
    got = way(loader(num_workers, context="fork"))
    assert_same(got, reference[way.__name__])
    if way is skipping:
        # The draws follow first use: the first batch used (the second yielded) gets the first draws.
        assert torch.equal(got[0][3], reference["in_order"][0][3])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resuming_by_skipping_the_seen_batches_is_exact(reference, num_workers):
    assert_same(resumed(lambda: loader(num_workers, context="fork")), reference["in_order"])


def test_what_the_loop_receives_is_the_same_whatever_the_workers():
    for num_workers in (0, 2):
        batch = next(iter(loader(num_workers, context="fork")))
        assert type(batch) is PendingBatch and len(batch) == 4 and not isinstance(batch, tuple)
        x, y_a, y_b, lam = batch
        assert batch[0] is x and batch.lam is lam and batch.perm.shape == (5,) and batch.extras == {}
        leaves, _ = pytree.tree_flatten(batch)
        assert len(leaves) == 5 and leaves[0] is x


def test_batches_are_mixed_with_fresh_parameters_in_every_worker():
    # The classic bug: forked workers repeating one random stream. Every pair of batches must differ.
    lams = [b[3] for b in in_order(loader(2, context="fork"))]
    for i in range(len(lams)):
        for j in range(i):
            assert not torch.equal(lams[i][:3], lams[j][:3])


def test_unseeded_workers_are_independent_too():
    torch.manual_seed(0)
    got = in_order(loader(2, context="fork", collate=MixupCollate(device="cpu")))
    assert not torch.equal(got[0][3], got[1][3])


def test_a_collate_with_a_generator_survives_spawned_workers():
    collate = MixupCollate(device="cpu", generator=torch.Generator().manual_seed(3))
    got = in_order(loader(2, context="spawn", collate=collate))
    expected = in_order(loader(collate=MixupCollate(device="cpu", generator=torch.Generator().manual_seed(3))))
    assert_same(got, expected)


def test_spawned_workers_with_a_distributed_sampler():
    collate = MixupCollate(device="cpu", seed=0)
    sampler = DistributedSampler(Images(), num_replicas=2, rank=1, shuffle=True, seed=0)
    sampler.set_epoch(1)
    got = in_order(loader(2, context="spawn", collate=collate, sampler=sampler))
    sampler.set_epoch(1)
    assert_same(got, in_order(loader(collate=MixupCollate(device="cpu", seed=0), sampler=sampler)))


def test_persistent_workers_draw_new_parameters_each_epoch():
    batches = loader(2, context="fork", persistent_workers=True)
    first, second = [[b.lam for b in batches] for _ in range(2)]
    assert not any(torch.equal(a, b) for a, b in zip(first, second))


def test_the_schedule_reaches_persistent_workers_at_once():
    # timm's off-epoch switch cannot reach a collate living in persistent workers; here workers never draw.
    collate = MixupCollate(0.4, device="cpu", seed=0, off_epoch=1)
    batches = loader(2, context="fork", collate=collate, persistent_workers=True)
    lams = []
    for epoch in range(3):
        collate.set_epoch(epoch)
        if epoch == 2:
            collate.enabled, collate.off_epoch, collate.alpha, collate.cutmix_alpha = True, None, 0.0, 1.0
        lams.append([b.lam for b in batches])
    assert all(bool((lam < 1).any()) for lam in lams[0])
    assert all(bool((lam == 1).all()) for lam in lams[1]), "off_epoch took effect in the persistent workers' epoch"
    images = [b.x for b in batches]  # CutMix now: pixels are copies of one sample or another, never blends
    assert all(bool(torch.isin((x * 255).round(), torch.arange(18.0)).all()) for x in images)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_no_cuda_call_in_a_worker_for_a_non_cpu_device(context):
    # 'meta' stands in for CUDA on a machine without one: the target is not the CPU, so a worker
    # that moved, pinned or queried anything would raise CudaTouched.
    got = in_order(loader(2, context=context, collate=MixupCollate(0.4, device="meta", seed=0)))
    assert all(t.device.type == "meta" for batch in got for t in batch)


def test_a_worker_that_touches_cuda_is_caught():
    # The guard has teeth: a collate that asks CUDA for its device inside a worker fails.
    class Eager(MixupCollate):
        def __call__(self, samples):
            torch.cuda.is_available()
            return super().__call__(samples)

    with pytest.raises(CudaTouched):
        next(iter(loader(1, context="fork", collate=Eager(device="cpu"))))


class FinishingInWorker(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return MixupCollate(device="cpu")([(torch.rand(2), 0), (torch.rand(2), 1)]).finish().x


def test_finishing_inside_a_worker_is_refused():
    with pytest.raises(RuntimeError, match="main process only"):
        next(iter(DataLoader(FinishingInWorker(), batch_size=2, num_workers=1, multiprocessing_context="fork")))


class StackedInWorker(Dataset):
    """Reports whether the collate, called inside a worker, stacked into shared memory."""

    def __len__(self):
        return 1

    def __getitem__(self, i):
        batch = MixupCollate(device="cpu")([(torch.rand(3, 2, 2), 0), (torch.rand(3, 2, 2), 1)])
        return torch.tensor(batch._stacked.x.is_shared())


def test_worker_batches_are_stacked_in_shared_memory():
    # Shared memory lets the batch cross to the main process without another copy, as default_collate does.
    (shared,) = DataLoader(StackedInWorker(), batch_size=None, num_workers=1, multiprocessing_context="fork")
    assert bool(shared)


@pytest.fixture
def three_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # neither 1 nor the default, so a forgotten restore cannot pass by accident
    yield 3
    torch.set_num_threads(before)


def test_cpu_batches_from_workers_are_mixed_on_one_thread_and_threads_restored(monkeypatch, three_threads):
    # Workers keep the host cores busy; the main process's intra-op threads would compete with them.
    seen = []
    original = Finisher._apply

    def spy(self, *args):
        seen.append(torch.get_num_threads())
        return original(self, *args)

    monkeypatch.setattr(Finisher, "_apply", spy)
    in_order(loader(2, context="fork"))
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == three_threads
    seen.clear()
    in_order(loader())
    assert set(seen) == {three_threads}


def test_a_worker_batch_first_used_under_inference_mode_still_trains():
    batch = next(iter(loader(2, context="fork")))
    with torch.inference_mode():
        float(batch.lam.mean())
    weight = torch.ones(4, requires_grad=True)
    (batch.x @ weight).sum().backward()
    assert weight.grad is not None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_cuda_batches_through_the_pin_memory_thread_match_the_main_process(context):
    # The live path of the pin-memory thread: PendingBatch.pin_memory() runs there, the mix on the GPU.
    cuda = lambda: MixupCollate(0.4, device="cuda", seed=0)  # noqa: E731
    expected = [tuple(t.cpu() for t in b) for b in in_order(loader(collate=cuda()))]
    got = in_order(loader(2, pin_memory=True, context=context, collate=cuda()))
    assert all(t.is_cuda for b in got for t in b)
    for ours, ref in zip(got, expected):
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a.cpu(), b)


class FlippedImages(Images):
    """Images with a random per-sample transform that draws from torch's global RNG (in whichever process loads)."""

    flip = RandomHorizontalFlip()

    def __getitem__(self, i):
        image, label = super().__getitem__(i)
        return self.flip(image.float() + torch.arange(4.0)), label


class TestAGlobalSeedAloneIsReproducible:
    """seed=None under torch.manual_seed: the same draws for any num_workers, and nothing else's draws change."""

    def draws(self, num_workers):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            collate = MixupCollate(0.4, device="cpu")
            batches = DataLoader(
                FlippedImages(), batch_size=5, collate_fn=collate, num_workers=num_workers,
                multiprocessing_context="fork" if num_workers else None,
            )  # fmt: skip
            return [(b.lam, b.perm) for b in batches]

    def test_workers_0_and_2_draw_the_same_with_a_random_transform_in_the_dataset(self):
        without, with_workers = self.draws(0), self.draws(2)
        assert len(without) == len(with_workers) == 4
        for (lam, perm), (lam2, perm2) in zip(without, with_workers):
            assert torch.equal(lam, lam2) and torch.equal(perm, perm2)

    def test_building_a_collate_leaves_the_models_initial_weights_alone(self):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            expected = torch.nn.Linear(4, 3).weight
            torch.manual_seed(0)
            MixupCollate(0.4, device="cpu")
            assert torch.equal(torch.nn.Linear(4, 3).weight, expected)
