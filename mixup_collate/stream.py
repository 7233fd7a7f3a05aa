"""The random stream that ``lam``, the partners and the boxes are drawn from.

One stream per [`MixupCollate`][mixup_collate.MixupCollate], living in the main process (workers never draw),
so batches are the same for any ``num_workers``, and the forked-workers-repeat-their-random-numbers
bug cannot happen. Every batch gets its own generator, seeded from the base seed, the distributed
rank, the epoch and the batch's index in the epoch (the order in which the loop first uses batches).
So ranks, epochs and batches are independent, and the state to resume from is three integers that
mean the same on every rank: a checkpoint written by rank 0 (as Lightning and accelerate write them)
restores every rank's own stream. Nothing random is pickled: a stream sent to a worker carries its
seed, base and epoch only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from numbers import Integral
from typing import Any

import torch

__all__ = ["Claim", "RandomStream", "batch_seed", "check_seed", "current_rank", "global_base"]


def current_rank() -> int:
    """This process's distributed rank: from ``torch.distributed`` once initialised, else ``$RANK``, else 0."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    value = os.environ.get("RANK", "0")
    try:
        rank = int(value)
    except ValueError:
        rank = -1
    if rank < 0:
        raise ValueError(
            f"the environment variable RANK (this process's distributed rank) must be a non-negative integer, "
            f"got RANK={value!r}"
        )
    return rank


def global_base() -> int:
    """A base seed (< 2**62) from where torch's global CPU RNG stands now, read without drawing from it.

    Under ``torch.manual_seed`` it is the same in every run; reading it moves nothing the user's own
    code draws next (the model's initial weights stay what they would be without it).
    """
    state = torch.get_rng_state().numpy().tobytes()
    return int.from_bytes(hashlib.blake2b(state, digest_size=8).digest(), "little") >> 2


def batch_seed(seed: int, rank: int, epoch: int, batch: int) -> int:
    """A 63-bit seed for one batch's draws, a hash of its four coordinates (independent of every other's)."""
    key = f"{seed},{rank},{epoch},{batch}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def check_seed(seed: object, name: str = "seed") -> int | None:
    """``seed`` as an int if it is ``None`` or a non-negative integer (numpy integers included), else a clear error."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer or None, got {name}={seed!r}")
    return int(seed)


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"the state's {name} must be a non-negative integer, got {name}={value!r}")
    return int(value)


class RandomStream:
    """Hands out one seeded CPU ``torch.Generator`` per batch.

    ``seed`` fixes the stream (per rank, epoch and batch); ``generator`` uses the caller's generator
    as is, batch after batch (the caller then owns its seeding and its per-rank state); with neither,
    the base seed is read from where torch's global RNG stands at construction (``global_base``),
    before any data pipeline draws from it and without drawing from it, so ``torch.manual_seed`` fixes
    it for any ``num_workers`` and constructing a stream changes nothing else's draws. Streams built at
    the same point of the global RNG (nothing drawn between them) share their base: give each a seed
    to tell them apart. [`set_epoch`][mixup_collate.MixupCollate.set_epoch] starts the epoch's batches at 0.
    """

    def __init__(self, seed: int | None = None, generator: torch.Generator | None = None) -> None:
        self.seed = check_seed(seed)
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU generator (draws happen on the CPU), got {generator.device}")
        self.epoch = 0
        self.batches = 0  # batches drawn in this epoch
        self._rank: int | None = None  # looked up at the epoch's first draw (after the process group exists)
        self._base: int | None = None if generator is not None else global_base() if seed is None else self.seed
        self._caller_generator = generator
        self._generator = generator if generator is not None else torch.Generator()

    def next_generator(self) -> torch.Generator:
        """The generator to draw the next batch from (the caller's own, or one seeded for this batch)."""
        if self._caller_generator is None:
            if self._rank is None:
                self._rank = current_rank()
            self._generator.manual_seed(batch_seed(self._base, self._rank, self.epoch, self.batches))
        self.batches += 1
        return self._generator

    def set_epoch(self, epoch: int) -> None:
        """Draw ``epoch``'s batches from now on, from its first (a caller's own generator just continues)."""
        self.epoch, self.batches, self._rank = epoch, 0, None

    def state_dict(self) -> dict[str, Any]:
        """Epoch, base seed and batches drawn (the caller's generator's state too); never draws from torch."""
        state: dict[str, Any] = {"epoch": self.epoch, "base_seed": self._base, "batches": self.batches}
        if self._caller_generator is not None:
            state["rng_state"] = self._caller_generator.get_state()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly where ``state_dict`` was taken, on this process's rank.

        The whole state is checked before any of it is used: a malformed field, or a state from a stream
        of the other kind (``generator=`` against ``seed=``/none), is refused with an error naming it.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"a random stream's state is the dict state_dict() returns, got a {type(state).__name__}")
        fields = {"epoch", "base_seed", "batches"}
        missing, unknown = fields - set(state), set(state) - fields - {"rng_state"}
        if missing or unknown:
            raise ValueError(
                f"a random stream's state has the fields {sorted(fields)} (and rng_state with generator=), "
                f"got {sorted(map(str, state))}"
            )
        epoch, batches = _count(state["epoch"], "epoch"), _count(state["batches"], "batches")
        base = check_seed(state["base_seed"], "base_seed")
        rng_state = state.get("rng_state")
        if self._caller_generator is not None:
            if rng_state is None or base is not None:
                raise ValueError(
                    f"this stream draws from the generator= it was given, but the state (base_seed={base!r}, "
                    f"{'an' if rng_state is not None else 'no'} rng_state) comes from a stream without a generator: it "
                    "would resume another stream; load it into a collate made without one (seed= or none)"
                )
            size = self._caller_generator.get_state().numel()
            if not (
                isinstance(rng_state, torch.Tensor) and rng_state.dtype == torch.uint8 and rng_state.numel() == size
            ):
                raise ValueError(
                    f"the state's rng_state must be a CPU generator's state (a uint8 tensor of {size} bytes), "
                    + (
                        f"got a {rng_state.dtype} tensor of {rng_state.numel()} elements"
                        if isinstance(rng_state, torch.Tensor)
                        else f"got {type(rng_state).__name__}"
                    )
                )
            try:  # tried on a probe first: a malformed state leaves this stream as it was
                rng_state = rng_state.cpu().contiguous()
                torch.Generator().set_state(rng_state)
            except (RuntimeError, TypeError, NotImplementedError) as error:
                raise ValueError(
                    f"the state's rng_state is not a CPU generator's state ({error}); pass the rng_state that "
                    "state_dict() returned, unchanged"
                ) from error
            self._caller_generator.set_state(rng_state)
        elif rng_state is not None:
            raise ValueError(
                "the state has an rng_state: it comes from a collate made with generator=, whose stream this one "
                "(seeded, or seed=None) cannot resume; load it into a collate made with a generator"
            )
        elif base is not None:  # None: an old state taken before its first draw; this stream's own base stands
            self._base = base
        self.epoch, self.batches, self._rank = epoch, batches, None

    def clone(self) -> RandomStream:
        """An independent stream in the same state: it draws what this one would draw next."""
        twin = RandomStream.__new__(RandomStream)
        twin.__dict__.update(self.__dict__)
        twin._generator = torch.Generator()
        if self._caller_generator is not None:
            twin._caller_generator = twin._generator
            twin._generator.set_state(self._caller_generator.get_state())
        return twin

    def __getstate__(self) -> dict[str, Any]:
        # No generator travels: a pickled stream (e.g. into a worker, which never draws) keeps its seed and base,
        # not a base read from the RNG of the process that unpickles it (a worker's is seeded per worker).
        return {"seed": self.seed, "base": self._base, "epoch": self.epoch}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["seed"])
        if state.get("base") is not None:
            self._base = state["base"]
        self.epoch = state["epoch"]

    def claim(self) -> Claim:
        """The next batch's generator, as a block: ``with stream.claim() as generator: ...``.

        The batch's index is claimed only if the block completes: an exception (or Ctrl-C) in it leaves
        the stream where it was, the caller's own generator included, so drawing the batch again gives
        the draws it would have had. Not thread-safe by itself: the collate holds a lock around it.
        """
        return Claim(self)


class Claim:
    """One batch's claim on a ``RandomStream``: its generator, and the stream restored if the block fails."""

    __slots__ = ("_batches", "_state", "_stream")

    def __init__(self, stream: RandomStream) -> None:
        self._stream, self._batches = stream, stream.batches
        caller = stream._caller_generator
        self._state = caller.get_state() if caller is not None else None

    def __enter__(self) -> torch.Generator:
        return self._stream.next_generator()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:  # the batch is not claimed: the stream stays where it was
            self._stream.batches = self._batches
            if self._state is not None:
                self._stream._caller_generator.set_state(self._state)
