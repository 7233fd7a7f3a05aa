"""RandomStream: seeded per rank, resumable, and governed by torch.manual_seed when unseeded."""

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
