"""MixedBatch is a 4-tuple with extras; PendingBatch finishes itself on first use, in the main process."""

import pickle

import torch

from mixup_collate import MixedBatch, MixupCollate, PendingBatch
from mixup_collate.stack import stack_samples


def pending(n=4, seed=0):
    samples = [(torch.full((2,), float(i)), i) for i in range(n)]
    return PendingBatch(MixupCollate(device="cpu", seed=seed), stack_samples(samples))


def test_mixed_batch_unpacks_as_four_and_carries_perm_and_extras():
    t = torch.zeros(2)
    batch = MixedBatch(t, t, t, t, perm=torch.tensor([1, 0]), extras={"id": [1, 2]})
    x, y_a, y_b, lam = batch
    assert batch._fields == ("x", "y_a", "y_b", "lam") and len(batch) == 4
    assert batch.perm.tolist() == [1, 0] and batch.extras == {"id": [1, 2]}
    assert batch.pin_memory() is batch
    restored = pickle.loads(pickle.dumps(batch))
    assert restored.perm.tolist() == [1, 0] and restored.extras == {"id": [1, 2]}


def test_pending_batch_finishes_on_unpack_and_only_once():
    p = pending()
    assert "pending" in repr(p)
    x, y_a, y_b, lam = p
    assert "finished" in repr(p)
    assert p.finish() is p.finish()
    assert p[0] is x and p.lam is lam and len(p) == 4
    assert isinstance(p.finish(), MixedBatch)


def test_pending_batch_finishes_on_index_or_attribute():
    p = pending()
    assert p[3].shape == (4,)
    q = pending()
    assert q.perm.shape == (4,)


def test_pin_memory_without_a_cuda_target_leaves_the_batch_as_is():
    p = pending()
    assert p.pin_memory() is p
    assert not p._stacked.x.is_pinned()


def test_pending_batch_crosses_processes_with_the_main_stream():
    collate = MixupCollate(device="cpu", seed=0)
    p = PendingBatch(collate, stack_samples([(torch.rand(2), 0), (torch.rand(2), 1)]))
    restored = pickle.loads(pickle.dumps(p))
    assert restored._collate is collate
