"""RandomStream: seeded per rank and epoch, resumable, copyable, and governed by torch.manual_seed when unseeded."""

import pickle
import socket

import pytest
import torch
import torch.distributed as dist

from mixup_collate.stream import RandomStream, current_rank, stream_seed


def draw(stream):
    return torch.rand(4, generator=stream.generator)


def test_seed_fixes_the_stream_and_ranks_spread_it():
    assert torch.equal(draw(RandomStream(seed=1)), draw(RandomStream(seed=1)))
    assert len({stream_seed(1, rank) for rank in range(64)}) == 64
    assert stream_seed(1, 0) != stream_seed(2, 0)


def test_rank_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    assert current_rank() == 3
    monkeypatch.delenv("RANK")
    assert current_rank() == 0


def test_rank_comes_from_an_initialised_process_group(monkeypatch):
    monkeypatch.setenv("RANK", "5")  # the process group wins over the environment
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        assert current_rank() == 0
    finally:
        dist.destroy_process_group()


def test_state_round_trip():
    a = RandomStream(seed=0)
    draw(a)
    state = a.state_dict()
    expected = draw(a)
    b = RandomStream(seed=99)
    b.load_state_dict(state)
    assert torch.equal(draw(b), expected)


def test_caller_generator_is_used_as_is():
    g = torch.Generator().manual_seed(4)
    assert RandomStream(generator=g).generator is g
    with pytest.raises(ValueError, match="either seed or generator"):
        RandomStream(seed=1, generator=g)


def test_epochs_get_independent_streams_and_set_epoch_restarts_one():
    a = RandomStream(seed=1)
    first = draw(a)
    a.set_epoch(1)
    second = draw(a)
    a.set_epoch(0)
    assert torch.equal(draw(a), first) and not torch.equal(first, second)
    assert len({stream_seed(1, 0, epoch) for epoch in range(64)}) == 64


def test_unseeded_stream_follows_torch_manual_seed():
    torch.manual_seed(1)
    a = draw(RandomStream())
    torch.manual_seed(1)
    b = draw(RandomStream())
    torch.manual_seed(2)
    c = draw(RandomStream())
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_state_dict_of_an_unused_unseeded_stream_does_not_touch_the_global_rng():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    stream = RandomStream()
    state = stream.state_dict()
    RandomStream().load_state_dict(state)
    assert torch.equal(torch.get_rng_state(), before)
    assert state == {"epoch": 0, "base_seed": None, "rng_state": None}


def test_state_round_trip_keeps_the_epoch():
    a = RandomStream(seed=0)
    a.set_epoch(3)
    draw(a)
    state = a.state_dict()
    expected = draw(a)
    b = RandomStream(seed=0)
    b.load_state_dict(state)
    assert b.epoch == 3 and torch.equal(draw(b), expected)


def test_clone_continues_independently():
    a = RandomStream(seed=5)
    draw(a)
    twin = a.clone()
    assert torch.equal(draw(twin), draw(a))
    draw(a)
    assert not torch.equal(draw(twin), draw(a)), "drawing from one does not advance the other"


def test_pickling_carries_the_seed_and_epoch_but_nothing_random():
    g = torch.Generator().manual_seed(3)
    assert pickle.loads(pickle.dumps(RandomStream(generator=g)))._generator is None
    a = RandomStream(seed=4)
    a.set_epoch(2)
    draw(a)
    b = pickle.loads(pickle.dumps(a))
    assert (b.seed, b.epoch, b._generator) == (4, 2, None)
    fresh = RandomStream(seed=4)
    fresh.set_epoch(2)
    assert torch.equal(draw(b), draw(fresh)), "the copy starts the epoch's stream afresh"


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_seeds_are_named(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        RandomStream(seed=seed)


def test_generator_must_be_a_cpu_torch_generator():
    with pytest.raises(TypeError, match="torch.Generator"):
        RandomStream(generator=42)
