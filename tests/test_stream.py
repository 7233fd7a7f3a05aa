"""RandomStream: one seeded generator per batch, independent across ranks, epochs and batches, resumable anywhere."""

import pickle
import re
import socket

import pytest
import torch
import torch.distributed as dist

from mixup_collate import MixupCollate
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


@pytest.fixture
def global_rng_kept():
    """Tests that seed torch's global RNG give it back as they found it."""
    with torch.random.fork_rng(devices=[]):
        yield


class TestUnseededStreamFollowsTheGlobalSeed:
    def test_the_same_global_seed_gives_the_same_stream(self, global_rng_kept):
        torch.manual_seed(1)
        a = draw(RandomStream())
        torch.manual_seed(1)
        b = draw(RandomStream())
        torch.manual_seed(2)
        c = draw(RandomStream())
        assert torch.equal(a, b) and not torch.equal(a, c)

    def test_the_base_is_fixed_at_construction_whatever_draws_from_the_global_rng_after(self, global_rng_kept):
        # A per-sample random transform in the main process (num_workers=0) draws between construction and the
        # first batch; in workers it does not. The stream must not see the difference.
        torch.manual_seed(0)
        untouched = RandomStream()
        torch.manual_seed(0)
        touched = RandomStream()
        torch.rand(100)
        assert torch.equal(draw(touched), draw(untouched))

    def test_neither_constructing_nor_drawing_takes_a_number_from_the_global_rng(self, global_rng_kept):
        # So building a collate before the model leaves the model's initial weights as they were.
        torch.manual_seed(0)
        expected = torch.rand(8)
        torch.manual_seed(0)
        stream = RandomStream()
        stream.state_dict()
        draw(stream)
        assert torch.equal(torch.rand(8), expected)

    def test_its_state_carries_the_base_and_resumes_it(self, global_rng_kept):
        torch.manual_seed(0)
        stream = RandomStream()
        state = stream.state_dict()
        assert set(state) == {"epoch", "base_seed", "batches"} and isinstance(state["base_seed"], int)
        expected = draw(stream)
        torch.manual_seed(5)
        other = RandomStream()
        other.load_state_dict(state)
        assert torch.equal(draw(other), expected)

    def test_a_pickled_copy_keeps_the_base_it_was_built_with(self, global_rng_kept):
        # A worker's global RNG is seeded per worker: a copy there must not read a base of its own.
        torch.manual_seed(0)
        stream = RandomStream()
        expected = draw(stream.clone())
        torch.manual_seed(7)
        assert torch.equal(draw(pickle.loads(pickle.dumps(stream))), expected)


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


class TestRankIsLookedUpPerEpoch:
    def test_the_rank_is_looked_up_again_after_set_epoch(self, monkeypatch):
        # E.g. the process group is initialised (or RANK set) after a first epoch drawn as rank 0.
        monkeypatch.setenv("RANK", "0")
        stream = RandomStream(seed=1)
        draw(stream)
        monkeypatch.setenv("RANK", "1")
        stream.set_epoch(1)
        expected = RandomStream(seed=1)
        expected.set_epoch(1)
        assert torch.equal(draw(stream), draw(expected))

    @pytest.mark.parametrize("value", ["abc", "-1", "1.5", ""])
    def test_a_malformed_rank_variable_is_named(self, monkeypatch, value):
        monkeypatch.setenv("RANK", value)
        with pytest.raises(ValueError, match=f"RANK.*non-negative integer.*RANK={value!r}"):
            draw(RandomStream(seed=1))


def seeded_state():
    stream = RandomStream(seed=3)
    stream.set_epoch(2)
    draw(stream)
    return stream.state_dict()


def generator_state():
    stream = RandomStream(generator=torch.Generator().manual_seed(3))
    draw(stream)
    return stream.state_dict()


class TestLoadStateDictRefusesWhatItCannotResume:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("epoch", 1.9),
            ("epoch", "1"),
            ("epoch", True),
            ("epoch", -1),
            ("batches", -1),
            ("batches", 2.0),
            ("batches", None),
            ("base_seed", "abc"),
            ("base_seed", [1, 2]),
            ("base_seed", -5),
            ("base_seed", 1.5),
        ],
    )
    def test_a_malformed_field_is_named_and_nothing_is_loaded(self, field, value):
        stream = RandomStream(seed=0)
        draw(stream)
        before = stream.state_dict()
        with pytest.raises(ValueError, match=re.escape(f"{field}={value!r}")):
            stream.load_state_dict({**seeded_state(), field: value})
        assert stream.state_dict() == before

    @pytest.mark.parametrize("state", [[0, 3, 1], None, "state", (("epoch", 0),)])
    def test_a_state_that_is_not_a_dict_is_refused(self, state):
        with pytest.raises(TypeError, match="the dict state_dict"):
            RandomStream(seed=0).load_state_dict(state)

    def test_missing_and_unknown_fields_are_named(self):
        with pytest.raises(ValueError, match=r"\['base_seed', 'batches', 'epoch'\].*got \['base_seed', 'epoch'\]"):
            RandomStream(seed=0).load_state_dict({"epoch": 0, "base_seed": 1})
        with pytest.raises(ValueError, match="'seed'"):
            RandomStream(seed=0).load_state_dict({**seeded_state(), "seed": 3})

    def test_a_seeded_state_is_refused_by_a_generator_stream(self):
        stream = RandomStream(generator=torch.Generator().manual_seed(9))
        before = stream._caller_generator.get_state()
        with pytest.raises(ValueError, match="generator= it was given.*base_seed=3, no rng_state"):
            stream.load_state_dict(seeded_state())
        assert torch.equal(stream._caller_generator.get_state(), before)

    @pytest.mark.parametrize("seed", [5, None])
    def test_a_generator_state_is_refused_by_a_seeded_or_unseeded_stream(self, seed):
        with pytest.raises(ValueError, match="rng_state: it comes from a collate made with generator="):
            RandomStream(seed=seed).load_state_dict(generator_state())

    @pytest.mark.parametrize(
        ("rng_state", "shown"),
        [
            (b"\x00" * 5056, "bytes"),
            (torch.zeros(8, dtype=torch.uint8), "a torch.uint8 tensor of 8 elements"),
            ([1, 2], "list"),
        ],
    )
    def test_an_rng_state_that_is_not_a_generator_state_is_named(self, rng_state, shown):
        with pytest.raises(ValueError, match=f"rng_state must be a CPU generator's state.*got {shown}"):
            RandomStream(generator=torch.Generator()).load_state_dict({**generator_state(), "rng_state": rng_state})

    @pytest.mark.parametrize(
        "rng_state",
        [
            torch.zeros(5056, dtype=torch.uint8),
            torch.randint(0, 256, (5056,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)),
            torch.empty(5056, dtype=torch.uint8, device="meta"),
        ],
        ids=["zero bytes", "random bytes", "on meta"],
    )
    def test_malformed_generator_bytes_are_named_and_change_nothing(self, rng_state):
        g = torch.Generator().manual_seed(4)
        before = g.get_state()
        with pytest.raises(ValueError, match="rng_state is not a CPU generator's state"):
            RandomStream(generator=g).load_state_dict({**generator_state(), "rng_state": rng_state})
        assert torch.equal(g.get_state(), before)

    def test_a_non_contiguous_copy_of_a_state_resumes_it(self):
        state = generator_state()
        state["rng_state"] = torch.Generator().manual_seed(9).get_state().repeat_interleave(2)[::2]
        g = torch.Generator()
        RandomStream(generator=g).load_state_dict(state)
        assert torch.equal(g.get_state(), torch.Generator().manual_seed(9).get_state())

    def test_the_collate_refuses_a_state_of_the_other_kind(self):
        seeded, drawing = MixupCollate(device="cpu", seed=0), MixupCollate(device="cpu", generator=torch.Generator())
        with pytest.raises(ValueError, match="generator="):
            drawing.load_state_dict(seeded.state_dict())
        with pytest.raises(ValueError, match="generator="):
            seeded.load_state_dict(drawing.state_dict())


class TestBatchIndices:
    """Batch ``k`` of an epoch draws from the seed of its coordinates; only mixed batches take an index."""

    def test_batch_k_is_drawn_from_the_seed_of_seed_rank_epoch_and_k(self, monkeypatch):
        from support import image_samples

        from mixup_collate.params import draw_params
        from mixup_collate.stream import batch_seed

        monkeypatch.delenv("RANK", raising=False)
        samples, _ = image_samples(6)
        collate = MixupCollate(alpha=0.4, device="cpu", seed=5)
        collate.set_epoch(2)
        for k in range(3):
            batch = collate(samples).finish()
            drawn = draw_params(
                6, (3, 4, 4), alpha=0.4, generator=torch.Generator().manual_seed(batch_seed(5, 0, 2, k))
            )
            assert torch.equal(batch.perm, drawn.perm) and torch.equal(batch.lam, drawn.lam), f"batch {k}"

    def test_an_unmixed_batch_takes_no_index(self):
        from support import image_samples

        samples, _ = image_samples(6)
        collate, reference = MixupCollate(device="cpu", seed=1), MixupCollate(device="cpu", seed=1)
        collate.enabled = False
        collate(samples).finish()
        collate.enabled = True
        assert collate.state_dict()["batches"] == 0
        assert torch.equal(collate(samples).finish().lam, reference(samples).finish().lam)


class TestAClaimIsAtomic:
    """``with stream.claim() as generator:`` claims the batch's index only if the block completes."""

    @pytest.mark.parametrize("own_generator", [False, True], ids=["seeded", "caller's generator"])
    def test_a_failed_block_leaves_the_stream_and_the_callers_generator_where_they_were(self, own_generator):
        stream = RandomStream(
            seed=None if own_generator else 3, generator=torch.Generator().manual_seed(5) if own_generator else None
        )
        with stream.claim() as generator:
            torch.rand(2, generator=generator)
        expected = draw(stream.clone())
        with pytest.raises(KeyboardInterrupt), stream.claim() as generator:
            torch.rand(7, generator=generator)
            raise KeyboardInterrupt
        assert stream.batches == 1
        assert torch.equal(draw(stream), expected)

    def test_a_completed_block_claims_one_index(self):
        stream = RandomStream(seed=3)
        with stream.claim():
            pass
        assert stream.batches == 1
