"""MixedBatch and SoftTargetBatch: named tuples of the training step's inputs, with perm, lam and extras attached."""

import pickle
from typing import NamedTuple

import pytest
import torch

from mixup_collate import MixedBatch, MixupCollate, SoftTargetBatch
from mixup_collate.batch import to_device


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


class Point(NamedTuple):
    """A named-tuple field, as ``default_collate`` returns for samples holding named tuples."""

    x: torch.Tensor
    y: torch.Tensor


def mixed_batch(extras=None):
    """A float batch of 3 whose class indices and partners are beyond float16's exact integers (2048)."""
    x = torch.rand(3, 2, dtype=torch.float64)
    y = torch.tensor([4097, 2049, 3])
    perm = torch.tensor([2, 0, 1])
    return MixedBatch(x, y, y[perm], torch.tensor([0.6, 0.7, 0.9]), perm=perm, extras=extras or {})


class TestNamedTupleExtrasMove:
    def test_to_device_moves_the_tensors_inside_named_tuples(self):
        moved = to_device({"where": Point(torch.zeros(2), torch.ones(2)), "list": [Point(torch.zeros(1), 5)]}, "meta")
        assert type(moved["where"]) is Point and type(moved["list"][0]) is Point
        assert moved["where"].x.device.type == "meta" and moved["where"].y.device.type == "meta"
        assert moved["list"][0].x.device.type == "meta" and moved["list"][0].y == 5

    def test_a_batch_moves_named_tuple_extras(self):
        moved = mixed_batch({"where": Point(torch.zeros(3), torch.ones(3))}).to("meta")
        assert type(moved.extras["where"]) is Point
        assert {t.device.type for t in moved.extras["where"]} == {"meta"}

    def test_extras_to_device_moves_named_tuples_a_dataset_returns(self):
        samples = [
            {"image": torch.rand(3, 4, 4), "label": i, "where": Point(torch.ones(2), torch.tensor(i))} for i in range(4)
        ]
        batch = MixupCollate(0.4, device="meta", seed=0, extras_to_device=True)(samples).finish()
        assert type(batch.extras["where"]) is Point
        assert {t.device.type for t in batch.extras["where"]} == {"meta"}

    def test_a_batch_inside_extras_keeps_its_attached_fields(self):
        inner = mixed_batch()
        moved = to_device({"inner": inner}, "meta")["inner"]
        assert type(moved) is MixedBatch and moved.perm.device.type == "meta"


class TestDtypeConvertsFloatingFieldsOnly:
    def test_class_indices_and_perm_keep_their_dtype_and_values(self):
        batch = mixed_batch({"weight": torch.rand(3, dtype=torch.float64), "id": torch.tensor([5000, 6001, 7002])})
        half = batch.to(torch.float16)
        assert type(half) is MixedBatch
        assert half.x.dtype == torch.float16 and torch.equal(half.x, batch.x.half())
        assert half.y_a.dtype == torch.int64 and torch.equal(half.y_a, batch.y_a)
        assert half.y_b.dtype == torch.int64 and torch.equal(half.y_b, batch.y_b)
        assert half.perm.dtype == torch.int64 and torch.equal(half.perm, batch.perm)
        assert half.extras["weight"].dtype == torch.float16 and torch.equal(half.extras["id"], batch.extras["id"])

    def test_lam_stays_float32_for_the_loss(self):
        batch = mixed_batch()
        assert batch.to(torch.bfloat16).lam.dtype == torch.float32
        assert torch.equal(batch.to(torch.bfloat16).lam, batch.lam)
        soft = SoftTargetBatch(torch.rand(2, 3), torch.rand(2, 4), lam=torch.rand(2), perm=torch.tensor([1, 0]))
        converted = soft.to(torch.float16)
        assert converted.x.dtype == converted.target.dtype == torch.float16
        assert converted.lam.dtype == torch.float32 and converted.perm.dtype == torch.int64

    def test_float_targets_are_converted_like_the_inputs(self):
        y = torch.eye(3, dtype=torch.float64)
        batch = MixedBatch(torch.rand(3, 2), y, y[[1, 2, 0]], torch.ones(3), perm=torch.tensor([1, 2, 0]))
        half = batch.to(torch.float16)
        assert half.y_a.dtype == half.y_b.dtype == torch.float16

    @pytest.mark.parametrize(
        "call",
        [
            lambda b: b.to("meta", torch.float16),
            lambda b: b.to(torch.device("meta"), dtype=torch.float16),
            lambda b: b.to(device="meta", dtype=torch.float16, non_blocking=True),
        ],
        ids=["positional", "device-then-keyword", "keywords"],
    )
    def test_device_and_dtype_together(self, call):
        moved = call(mixed_batch())
        assert {t.device.type for t in (*moved, moved.perm)} == {"meta"}
        assert moved.x.dtype == torch.float16 and moved.y_a.dtype == moved.perm.dtype == torch.int64

    def test_dtype_alone_keeps_the_device_and_a_device_alone_keeps_the_dtypes(self):
        batch = mixed_batch()
        assert batch.to(dtype=torch.float32).x.device.type == "cpu"
        moved = batch.to("meta")
        assert [t.dtype for t in moved] == [t.dtype for t in batch]

    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (lambda b: b.to(torch.int64), r"floating dtype.*torch\.int64"),
            (lambda b: b.to(dtype="half"), r"floating dtype.*'half'"),
            (lambda b: b.to("meta", torch.float16, "x"), r"\(device, dtype\)"),
            (lambda b: b.to("cpu", device="meta"), "device twice"),
            (lambda b: b.to(memory_format=torch.channels_last), "memory_format"),
            (lambda b: b.to("no-such-device"), r"device='no-such-device'"),
        ],
    )
    def test_what_it_cannot_do_is_named(self, call, message):
        with pytest.raises(TypeError, match=message):
            call(mixed_batch())
