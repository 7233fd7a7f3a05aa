"""MixedBatch and SoftTargetBatch: named tuples of the training step's inputs, with perm, lam and extras attached."""

import pickle

import torch

from mixup_collate import MixedBatch, SoftTargetBatch


def test_mixed_batch_unpacks_as_four_and_carries_perm_and_extras():
    t = torch.zeros(2)
    batch = MixedBatch(t, t, t, t, perm=torch.tensor([1, 0]), extras={"id": [1, 2]})
    x, y_a, y_b, lam = batch
    assert batch._fields == ("x", "y_a", "y_b", "lam") and len(batch) == 4
    assert batch.perm.tolist() == [1, 0] and batch.extras == {"id": [1, 2]}
    assert batch.pin_memory() is batch
    restored = pickle.loads(pickle.dumps(batch))
    assert restored.perm.tolist() == [1, 0] and restored.extras == {"id": [1, 2]}


def test_soft_target_batch_unpacks_as_a_pair_and_carries_lam_perm_and_extras():
    t = torch.zeros(2)
    batch = SoftTargetBatch(t, torch.ones(2, 3), lam=torch.ones(2), perm=torch.tensor([1, 0]), extras={"k": "v"})
    x, target = batch
    assert batch._fields == ("x", "target") and target.shape == (2, 3)
    assert batch.lam.tolist() == [1.0, 1.0] and batch.perm.tolist() == [1, 0] and batch.extras == {"k": "v"}
    restored = pickle.loads(pickle.dumps(batch))
    assert restored.lam.tolist() == [1.0, 1.0] and restored.extras == {"k": "v"}


def test_to_moves_every_tensor_and_keeps_the_rest():
    # 'meta' stands in for an accelerator: a device other than the CPU.
    t = torch.zeros(2)
    extras = {"id": torch.tensor([4, 5]), "name": ["a", "b"], "nested": [torch.ones(1), "c"]}
    moved = MixedBatch(t, t, t, t, perm=torch.tensor([1, 0]), extras=extras).to("meta")
    assert type(moved) is MixedBatch
    assert all(f.device.type == "meta" for f in (*moved, moved.perm, moved.extras["id"], moved.extras["nested"][0]))
    assert moved.extras["name"] == ["a", "b"] and moved.extras["nested"][1] == "c"
    soft = SoftTargetBatch(t, t, lam=t, perm=torch.tensor([0, 1])).to("meta")
    assert type(soft) is SoftTargetBatch and soft.lam.device.type == "meta" and soft.perm.device.type == "meta"
