"""RandomStream: one seeded generator per batch, independent across ranks, epochs and batches, resumable anywhere."""

import pickle
import socket

import pytest
import torch
import torch.distributed as dist

from mixup_collate.stream import RandomStream, batch_seed, current_rank


def draw(stream):
    return torch.rand(4, generator=stream.next_generator())


def test_seed_fixes_the_stream_and_every_coordinate_spreads_it():
    assert torch.equal(draw(RandomStream(seed=1)), draw(RandomStream(seed=1)))
    seeds = {batch_seed(s, r, e, b) for s in range(4) for r in range(4) for e in range(4) for b in range(16)}
    assert len(seeds) == 4 * 4 * 4 * 16 and all(0 <= s < 2**63 for s in seeds)


def test_successive_batches_draw_differently():
    stream = RandomStream(seed=1)
    assert not torch.equal(draw(stream), draw(stream)) and stream.batches == 2


def test_rank_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    assert current_rank() == 3
    monkeypatch.delenv("RANK")
    assert current_rank() == 0


def test_ranks_draw_independently(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    a = draw(RandomStream(seed=1))
    monkeypatch.setenv("RANK", "1")
    assert not torch.equal(a, draw(RandomStream(seed=1)))


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


def test_epochs_get_independent_streams_and_set_epoch_restarts_one():
    a = RandomStream(seed=1)
    first = draw(a)
    a.set_epoch(1)
    second = draw(a)
    a.set_epoch(0)
    assert torch.equal(draw(a), first) and not torch.equal(first, second)


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
    assert state == {"epoch": 0, "base_seed": None, "batches": 0}


def test_state_round_trip_keeps_the_epoch_and_the_batch():
    a = RandomStream(seed=0)
    a.set_epoch(3)
    draw(a)
    state = a.state_dict()
    expected = draw(a)
    b = RandomStream(seed=99)
    b.load_state_dict(state)
    assert b.epoch == 3 and torch.equal(draw(b), expected)


def test_one_state_resumes_every_rank_on_its_own_stream(monkeypatch):
    # Lightning and accelerate save rank 0's state only; every rank loads it and must go on with its own draws.
    streams = {}
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        streams[rank] = RandomStream(seed=0)
        draw(streams[rank])
    state = streams["0"].state_dict()
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        resumed = RandomStream(seed=0)
        resumed.load_state_dict(state)
        assert torch.equal(draw(resumed), draw(streams[rank]))


def test_a_callers_generator_is_used_as_is_and_its_state_saved():
    g = torch.Generator().manual_seed(4)
    stream = RandomStream(generator=g)
    assert stream.next_generator() is g
    state = stream.state_dict()
    expected = torch.rand(3, generator=g)
    other = RandomStream(generator=torch.Generator())
    other.load_state_dict(state)
    assert torch.equal(torch.rand(3, generator=other.next_generator()), expected)
    with pytest.raises(ValueError, match="either seed or generator"):
        RandomStream(seed=1, generator=g)


def test_clone_continues_independently():
    for make in (lambda: RandomStream(seed=5), lambda: RandomStream(generator=torch.Generator().manual_seed(5))):
        a = make()
        draw(a)
        twin = a.clone()
        assert torch.equal(draw(twin), draw(a))
        draw(a)
        assert not torch.equal(draw(twin), draw(a)), "drawing from one does not advance the other"


def test_pickling_carries_the_seed_and_epoch_but_nothing_random():
    g = torch.Generator().manual_seed(3)
    assert pickle.loads(pickle.dumps(RandomStream(generator=g)))._caller_generator is None
    a = RandomStream(seed=4)
    a.set_epoch(2)
    draw(a)
    b = pickle.loads(pickle.dumps(a))
    assert (b.seed, b.epoch, b.batches) == (4, 2, 0)
    fresh = RandomStream(seed=4)
    fresh.set_epoch(2)
    assert torch.equal(draw(b), draw(fresh)), "the copy starts the epoch afresh"


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_seeds_are_named(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        RandomStream(seed=seed)


def test_generator_must_be_a_cpu_torch_generator():
    with pytest.raises(TypeError, match="torch.Generator"):
        RandomStream(generator=42)
