"""The random stream that ``lam``, the partners and the boxes are drawn from.

One stream per :class:`~mixup_collate.MixupCollate`, living in the main process (workers never draw),
so batches are the same for any ``num_workers``, and the forked-workers-repeat-their-random-numbers
bug cannot happen. Ranks and epochs get independent streams: the seed is spread with the rank and
the epoch through numpy's ``SeedSequence``. Nothing random is pickled: a stream sent to a worker
carries its seed and epoch only.
"""

from __future__ import annotations

import os
from numbers import Integral
from typing import Any

import numpy as np
import torch

__all__ = ["RandomStream", "check_seed", "current_rank", "stream_seed"]


def current_rank() -> int:
    """This process's distributed rank: from ``torch.distributed`` once initialised, else ``$RANK``, else 0."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def stream_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """A 63-bit seed for ``rank``'s stream in ``epoch``, statistically independent of every other pair's."""
    entropy = np.random.SeedSequence([seed, rank, epoch])
    return int(entropy.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def check_seed(seed: object, name: str = "seed") -> int | None:
    """``seed`` as an int if it is ``None`` or a non-negative integer (numpy integers included), else a clear error."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer or None, got {name}={seed!r}")
    return int(seed)


class RandomStream:
    """A lazily created CPU ``torch.Generator``, one per epoch.

    ``seed`` fixes the stream (per rank and epoch); ``generator`` uses the caller's generator as is
    (the caller then owns its seeding, per rank and epoch too); with neither, a base seed is drawn
    from torch's global RNG at the first draw, so ``torch.manual_seed`` governs it as it governs the
    DataLoader's shuffling. :meth:`set_epoch` starts the epoch's own stream.
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
        self._own_generator = generator is None
        self._base: int | None = self.seed
        self._generator = generator

    @property
    def generator(self) -> torch.Generator:
        """The generator the current epoch draws from (created, and for an unseeded stream seeded, on first use)."""
        if self._generator is None:
            if self._base is None:
                self._base = int(torch.randint(0, 2**62, (1,)).item())
            self._generator = torch.Generator().manual_seed(stream_seed(self._base, current_rank(), self.epoch))
        return self._generator

    def set_epoch(self, epoch: int) -> None:
        """Draw from ``epoch``'s stream from now on (a caller's own generator just continues)."""
        self.epoch = epoch
        if self._own_generator:
            self._generator = None

    def state_dict(self) -> dict[str, Any]:
        """Epoch, base seed and generator state; taking it never draws from torch's global RNG."""
        state = None if self._generator is None else self._generator.get_state()
        return {"epoch": self.epoch, "base_seed": self._base, "rng_state": state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where :meth:`state_dict` was taken."""
        self.epoch = int(state["epoch"])
        if self._own_generator:
            self._base = state["base_seed"]
            self._generator = None
        if state["rng_state"] is not None:
            self.generator.set_state(state["rng_state"])

    def clone(self) -> RandomStream:
        """An independent stream in the same state: it draws what this one would draw next."""
        twin = RandomStream.__new__(RandomStream)
        twin.__dict__.update(self.__dict__)
        if self._generator is not None:
            twin._generator = torch.Generator().set_state(self._generator.get_state())
        return twin

    def __getstate__(self) -> dict[str, Any]:
        # Nothing random travels: a pickled stream (e.g. into a worker, which never draws) keeps its seed only.
        return {"seed": self.seed, "epoch": self.epoch}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["seed"])
        self.epoch = state["epoch"]
