"""The random stream that ``lam``, the partners and the boxes are drawn from.

One stream per :class:`~mixup_collate.MixupCollate`, living in the main process (workers never draw),
so batches are the same for any ``num_workers``, and the forked-workers-repeat-their-random-numbers
bug cannot happen. Every batch gets its own generator, seeded from the base seed, the distributed
rank, the epoch and the batch's index in the epoch (the order in which the loop first uses batches).
So ranks, epochs and batches are independent, and the state to resume from is three integers that
mean the same on every rank: a checkpoint written by rank 0 (as Lightning and accelerate write them)
restores every rank's own stream. Nothing random is pickled: a stream sent to a worker carries its
seed and epoch only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from numbers import Integral
from typing import Any, TypeVar

import torch

T = TypeVar("T")

__all__ = ["RandomStream", "batch_seed", "check_seed", "current_rank"]


def current_rank() -> int:
    """This process's distributed rank: from ``torch.distributed`` once initialised, else ``$RANK``, else 0."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


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


class RandomStream:
    """Hands out one seeded CPU ``torch.Generator`` per batch.

    ``seed`` fixes the stream (per rank, epoch and batch); ``generator`` uses the caller's generator
    as is, batch after batch (the caller then owns its seeding and its per-rank state); with neither,
    a base seed is drawn from torch's global RNG at the first draw, so ``torch.manual_seed`` governs it
    as it governs the DataLoader's shuffling. :meth:`set_epoch` starts the epoch's batches at 0.
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
        self._base: int | None = self.seed
        self._caller_generator = generator
        self._generator = generator if generator is not None else torch.Generator()

    def next_generator(self) -> torch.Generator:
        """The generator to draw the next batch from (the caller's own, or one seeded for this batch)."""
        if self._caller_generator is None:
            if self._base is None:
                self._base = int(torch.randint(0, 2**62, (1,)).item())
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

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where :meth:`state_dict` was taken, on this process's rank."""
        self.epoch, self.batches, self._rank = int(state["epoch"]), int(state["batches"]), None
        if self._caller_generator is None:
            self._base = state["base_seed"]
        elif state.get("rng_state") is not None:
            self._caller_generator.set_state(state["rng_state"])

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
        # Nothing random travels: a pickled stream (e.g. into a worker, which never draws) keeps its seed only.
        return {"seed": self.seed, "epoch": self.epoch}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["seed"])
        self.epoch = state["epoch"]

    def draw(self, draw: Callable[[torch.Generator], T]) -> T:
        """``draw(generator)`` for the next batch, which claims the batch's index only if it returns.

        An exception (or Ctrl-C) inside ``draw`` leaves the stream where it was, the caller's own
        generator included, so drawing the batch again gives the draws it would have had. Not
        thread-safe by itself: the collate holds a lock around it.
        """
        batches = self.batches
        caller = self._caller_generator
        state = caller.get_state() if caller is not None else None
        try:
            return draw(self.next_generator())
        except BaseException:
            self.batches = batches
            if caller is not None:
                caller.set_state(state)
            raise
