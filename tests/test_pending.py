"""PendingBatch: what the loop receives reads like the finished batch, finishes once, and all or nothing."""

import pickle
import signal
import threading

import pytest
import torch
from oracles import mixup_reference
from support import image_samples
from torch.utils import _pytree as pytree

from mixup_collate import MixedBatch, MixupCollate, SoftTargetBatch
from mixup_collate import mix as M
from mixup_collate.pending import PendingBatch


def pending(n=6, seed=0, dtype=torch.float32, **kwargs):
    samples, xs = image_samples(n, dtype=dtype, seed=seed)
    return MixupCollate(device="cpu", seed=seed, **kwargs)(samples), xs


def test_the_loop_receives_a_pending_batch_that_reads_like_the_finished_one():
    batch, xs = pending()
    assert isinstance(batch, PendingBatch) and "pending" in repr(batch)
    assert len(batch) == 4 and "pending" in repr(batch), "len() does not finish the batch"
    assert hasattr(batch, "to") and hasattr(batch, "pin_memory") and "pending" in repr(batch)
    x, y_a, y_b, lam = batch
    assert "finished" in repr(batch)
    assert batch[0] is x and batch[-1] is lam and batch.x is x and batch.lam is lam
    assert batch.y_a is y_a and batch.y_b is y_b and batch.perm.shape == (6,) and batch.extras == {}
    assert isinstance(batch.finish(), MixedBatch) and batch.finish() is batch.finish()
    torch.testing.assert_close(x.double(), mixup_reference(xs, batch.perm, lam))


def test_any_first_use_finishes_it():
    for use in (lambda b: b[1], lambda b: b.perm, lambda b: list(b), lambda b: b.finish()):
        batch, _ = pending()
        use(batch)
        assert "finished" in repr(batch)


def test_soft_target_batches_read_as_pairs():
    batch, _ = pending(soft_targets=True, num_classes=10)
    assert len(batch) == 2
    x, target = batch
    assert target.shape == (6, 10) and batch.target is target and batch.lam.shape == (6,)
    assert isinstance(batch.finish(), SoftTargetBatch)


def test_to_names_the_device_without_using_the_batch():
    # What Lightning's and accelerate's transfers call; 'meta' stands in for a GPU.
    batch, _ = pending()
    assert batch.to("meta") is batch and "pending" in repr(batch), "moving is not using: nothing drawn yet"
    x, _, _, lam = batch
    assert x.device.type == "meta" and lam.device.type == "meta" and batch.perm.device.type == "meta"
    done, _ = pending()
    done.finish()
    moved = done.to("meta")
    assert isinstance(moved, MixedBatch) and moved.perm.device.type == "meta" and done.x.device.type == "cpu"
    with pytest.raises(TypeError, match="dtype"):
        done.to(torch.float16)


def test_a_batch_moved_then_skipped_draws_nothing():
    collate = MixupCollate(device="cpu", seed=0)
    samples, _ = image_samples(6)
    collate(samples).to("cpu")  # a framework moves it, the loop skips it
    after_skip = collate(samples).finish()
    fresh = MixupCollate(device="cpu", seed=0)
    assert torch.equal(after_skip.lam, fresh(samples).finish().lam)


def test_pytree_sees_the_finished_tensors_and_keeps_perm_and_extras():
    samples = [{"image": torch.rand(2, 3, 3), "label": i, "id": torch.tensor(i)} for i in range(5)]
    batch = MixupCollate(device="cpu", seed=0)(samples)
    leaves, spec = pytree.tree_flatten(batch)
    finished = batch.finish()
    assert len(leaves) == 6 and leaves[4] is finished.perm and leaves[5] is finished.extras["id"]
    mapped = pytree.tree_map(lambda t: t + 0, batch)
    assert type(mapped) is MixedBatch
    assert torch.equal(mapped.perm, finished.perm) and torch.equal(mapped.extras["id"], torch.arange(5))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_a_batch_first_used_under_inference_mode_still_trains(dtype):
    batch, _ = pending(dtype=dtype)
    with torch.inference_mode():
        float(batch.lam.mean())  # logging lam first
    layer = torch.nn.Linear(4, 1)
    loss = layer(batch.x).mean() * batch.lam.mean()
    loss.backward()
    assert layer.weight.grad is not None and not batch.x.is_inference()


def reference_batch(**kwargs):
    batch, _ = pending(n=9, **kwargs)
    return batch.finish()


def assert_same_batch(a, b):
    for u, v in zip((*a, a.perm), (*b, b.perm)):
        assert torch.equal(u, v)


def test_a_failure_before_the_mix_leaves_the_batch_to_be_finished_with_the_same_draws(monkeypatch):
    expected = reference_batch()
    batch, _ = pending(n=9)
    calls = []

    def fail_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("out of memory (simulated)")
        return original(*args, **kwargs)

    original = M.affine_constants
    monkeypatch.setattr(M, "affine_constants", fail_once)
    with pytest.raises(RuntimeError, match="simulated"):
        batch.finish()
    assert_same_batch(batch.finish(), expected)
    assert batch.finish() is batch.finish(), "finishing twice gives the same batch"


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler (KeyboardInterrupt) for the test, whatever this process inherited, then restored.

    A suite started in the background (``nohup``, ``&``) inherits SIGINT ignored; the deferral keeps an
    ignored Ctrl-C ignored, so a test of what Ctrl-C does must install the handler it means.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_in_the_middle_of_the_mix_waits_until_the_batch_is_complete(kernel_path, monkeypatch, ctrl_c_raises):
    expected = reference_batch()
    batch, _ = pending(n=9)
    original = torch.Tensor.addcmul_
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C after the first in-place write, before the rest
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "addcmul_", interrupted)
    with pytest.raises(KeyboardInterrupt):
        batch.finish()
    monkeypatch.undo()
    assert len(calls) == (9 if kernel_path == "row_loop" else 1), "the mix ran to its end before the interrupt"
    assert_same_batch(batch.finish(), expected)


def test_an_error_in_the_middle_of_an_in_place_mix_is_never_mixed_twice(monkeypatch):
    monkeypatch.setattr(M, "ROW_LOOP_MIN_BYTES", 0)
    monkeypatch.setattr(M, "CACHE_BYTES", 0)
    batch, _ = pending(n=9)
    original = torch.Tensor.addcmul_
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("failure halfway through (simulated)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "addcmul_", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        batch.finish()
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="cannot be finished again; skip the batch"):
        batch.finish()


def test_a_finished_batch_pickles_as_its_tensors():
    batch, _ = pending()
    batch.finish()
    restored = pickle.loads(pickle.dumps(batch))
    assert_same_batch(restored.finish(), batch.finish())


def test_a_pending_batch_pickled_in_this_process_is_pickled_finished():
    collate = MixupCollate(device="cpu", seed=0)
    batch = collate(image_samples(4)[0])
    restored = pickle.loads(pickle.dumps(batch))
    assert restored._batch is not None and restored._owner is None, "the bytes hold the finished batch"
    assert_same_batch(restored.finish(), batch.finish())


def pickled_in_a_worker(batch, monkeypatch):
    """The bytes a DataLoader worker sends for ``batch`` (the worker is simulated in this process)."""
    import mixup_collate.pending as pending_module

    monkeypatch.setattr(pending_module, "get_worker_info", lambda: object())
    data = pickle.dumps(batch)
    monkeypatch.undo()
    return data


def test_a_worker_pickles_the_stacked_batch_for_its_collate(monkeypatch):
    collate = MixupCollate(device="cpu", seed=0)
    restored = pickle.loads(pickled_in_a_worker(collate(image_samples(4)[0]), monkeypatch))
    assert restored._batch is None and restored._owner is collate and restored._from_worker


def draws_of(collate, samples, count):
    """The params-level identity of ``count`` successive batches: (perm, lam) pairs."""
    return [(b.perm, b.lam) for b in (collate(samples).finish() for _ in range(count))]


def assert_same_draws(got, want):
    assert len(got) == len(want)
    for (perm_a, lam_a), (perm_b, lam_b) in zip(got, want):
        assert torch.equal(perm_a, perm_b) and torch.equal(lam_a, lam_b)


@pytest.fixture
def python_sigint():
    """SIGINT raises KeyboardInterrupt during the test, whatever the suite inherited (nohup, a background job)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


COLLATES = {
    "seeded float": lambda: MixupCollate(device="cpu", seed=0),
    "uint8, CutMix": lambda: MixupCollate(alpha=0.4, cutmix_alpha=1.0, device="cpu", seed=0),
    "generator, dtype": lambda: MixupCollate(device="cpu", dtype="float16", generator=torch.Generator().manual_seed(3)),
}


class TestAnInterruptedDrawKeepsTheStream:
    @pytest.mark.parametrize("make", COLLATES)
    def test_an_error_inside_the_draw_claims_nothing(self, make, monkeypatch):
        samples, _ = image_samples(6, dtype=torch.uint8, shape=(3, 6, 6))
        want = draws_of(COLLATES[make](), samples, 3)
        collate = COLLATES[make]()
        from mixup_collate import collate as collate_module

        original, calls = collate_module.draw_params, []

        def failing_once(*args, **kwargs):
            params = original(*args, **kwargs)  # the generator has been drawn from: the stream must not move
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("interrupted draw (simulated)")
            return params

        monkeypatch.setattr(collate_module, "draw_params", failing_once)
        first = collate(samples)
        with pytest.raises(RuntimeError, match="simulated"):
            first.finish()
        got = [(first.finish().perm, first.finish().lam), *draws_of(collate, samples, 2)]
        assert_same_draws(got, want)

    @pytest.mark.parametrize("make", COLLATES)
    def test_ctrl_c_inside_the_draw_waits_until_the_batch_is_complete(self, make, monkeypatch, python_sigint):
        samples, _ = image_samples(6, dtype=torch.uint8, shape=(3, 6, 6))
        want = draws_of(COLLATES[make](), samples, 2)
        collate = COLLATES[make]()
        from mixup_collate import collate as collate_module

        original, calls = collate_module.draw_params, []

        def interrupted(*args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                signal.raise_signal(signal.SIGINT)
            return original(*args, **kwargs)

        monkeypatch.setattr(collate_module, "draw_params", interrupted)
        first = collate(samples)
        with pytest.raises(KeyboardInterrupt):
            first.finish()
        assert "finished" in repr(first), "the interrupt came after the batch was complete"
        assert_same_draws([(first.perm, first.lam), *draws_of(collate, samples, 1)], want)


class TestCopiesOfAPendingBatchAreTheSameBatch:
    @pytest.mark.parametrize("make_copy", ["copy", "deepcopy", "pickle"])
    @pytest.mark.parametrize("copy_first", [True, False])
    def test_a_copy_finishes_to_the_same_batch_and_moves_the_stream_once(self, make_copy, copy_first):
        import copy

        samples, _ = image_samples(6)
        want = draws_of(MixupCollate(device="cpu", seed=0), samples, 2)
        collate = MixupCollate(device="cpu", seed=0)
        original = collate(samples)
        twin = {"copy": copy.copy, "deepcopy": copy.deepcopy, "pickle": lambda b: pickle.loads(pickle.dumps(b))}[
            make_copy
        ](original)
        order = (twin, original) if copy_first else (original, twin)
        batches = [b.finish() for b in order]
        assert_same_batch(*batches)
        assert_same_draws([(batches[0].perm, batches[0].lam), *draws_of(collate, samples, 1)], want)

    @pytest.mark.parametrize("name", list(COLLATES))
    def test_two_unpickles_of_one_blob_are_one_batch_after_the_original_is_gone(self, name):
        import gc

        samples, _ = image_samples(6, dtype=torch.uint8)
        collate = COLLATES[name]()
        data = pickle.dumps(collate(samples))
        gc.collect()  # the original pending batch is gone
        first, second = pickle.loads(data).finish(), pickle.loads(data).finish()
        assert_same_batch(first, second)
        fresh = COLLATES[name]()
        fresh(samples).finish()
        assert_same_batch(collate(samples).finish(), fresh(samples).finish()), "one index of the stream taken"

    @pytest.mark.parametrize("make_copy", ["deepcopy", "pickle"])
    def test_a_copy_taken_while_another_thread_finishes_is_the_finished_batch(self, make_copy, monkeypatch):
        import copy
        import threading

        from mixup_collate import finish as finish_module

        samples, _ = image_samples(8, shape=(3, 16, 16))
        collate = MixupCollate(alpha=0.4, cutmix_alpha=1.0, device="cpu", seed=0)
        batch = collate(samples)
        entered, release = threading.Event(), threading.Event()
        real = finish_module.mix_inputs

        def slow_mix(*args, **kwargs):  # the finishing thread is inside the mix, in place, when the copy is taken
            entered.set()
            release.wait(5)
            return real(*args, **kwargs)

        monkeypatch.setattr(finish_module, "mix_inputs", slow_mix)
        worker = threading.Thread(target=batch.finish)
        worker.start()
        assert entered.wait(5)
        copier = threading.Thread(target=lambda: copies.append(take(batch)))
        take = copy.deepcopy if make_copy == "deepcopy" else (lambda b: pickle.loads(pickle.dumps(b)))
        copies = []
        copier.start()
        copier.join(0.2)
        assert copier.is_alive(), "the copy waits for the batch's lock"
        release.set()
        worker.join(5)
        copier.join(5)
        assert_same_batch(copies[0].finish(), batch.finish())

    def test_a_deep_copy_has_its_own_tensors(self):
        import copy

        batch, _ = pending()
        twin = copy.deepcopy(batch)
        assert twin.x is not batch.x and torch.equal(twin.x, batch.x)
        assert copy.copy(batch) is batch, "a shallow copy is the batch itself, as for a tuple"


class TestThreads:
    def test_threads_finishing_their_own_batches_each_take_one_stream_index(self):
        samples, xs = image_samples(8)
        want = draws_of(MixupCollate(device="cpu", seed=0), samples, 60)
        collate = MixupCollate(device="cpu", seed=0)
        batches = [collate(samples) for _ in range(60)]
        start = threading.Barrier(4)

        def work(part):
            start.wait()
            for b in part:
                b.finish()

        threads = [threading.Thread(target=work, args=(batches[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        key = lambda d: d[1].tolist()  # noqa: E731
        got = sorted(((b.perm, b.lam) for b in batches), key=key)
        assert_same_draws(got, sorted(want, key=key))
        for b in batches:
            torch.testing.assert_close(b.x.double(), mixup_reference(xs, b.perm, b.lam))

    def test_threads_finishing_the_same_batch_get_it_once(self):
        samples, xs = image_samples(8)
        collate = MixupCollate(device="cpu", seed=0)
        for _ in range(20):
            batch = collate(samples)
            start, results = threading.Barrier(3), []

            def work(batch=batch, start=start, results=results):
                start.wait()
                results.append(batch.finish())

            threads = [threading.Thread(target=work) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert all(r is results[0] for r in results)
            torch.testing.assert_close(results[0].x.double(), mixup_reference(xs, results[0].perm, results[0].lam))


class TestTo:
    @pytest.mark.parametrize(
        "args, kwargs",
        [(("cpu", torch.float16), {}), (("cpu",), {"dtype": torch.float16}), ((torch.float16,), {})],
    )
    def test_a_dtype_is_refused_in_every_form(self, args, kwargs):
        batch, _ = pending()
        with pytest.raises(TypeError, match=r"MixupCollate\(dtype=...\)"):
            batch.to(*args, **kwargs)

    def test_device_and_non_blocking_in_every_form(self):
        for args, kwargs in [(("meta",), {}), (("meta", True), {}), ((), {"device": "meta", "non_blocking": True})]:
            batch, _ = pending()
            assert batch.to(*args, **kwargs) is batch and batch.x.device.type == "meta"

    def test_other_arguments_are_named(self):
        batch, _ = pending()
        with pytest.raises(TypeError, match="copy"):
            batch.to("cpu", copy=True)
        with pytest.raises(TypeError, match="needs a device"):
            batch.to("gpu0")


def test_a_worker_batch_unpickled_where_its_collate_is_gone_says_so(monkeypatch):
    import gc

    collate = MixupCollate(device="cpu", seed=0)
    batch = collate(image_samples(4)[0])
    data = pickled_in_a_worker(batch, monkeypatch)
    del collate, batch
    gc.collect()
    with pytest.raises(RuntimeError, match=r"does not exist.*pickle it in the main process, which finishes it first"):
        pickle.loads(data)
