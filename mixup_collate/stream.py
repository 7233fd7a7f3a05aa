"""The random stream that ``lam`` and the permutation are drawn from.

One stream per :class:`~mixup_collate.MixupCollate`, living in the main process (workers never draw),
so batches are the same for any ``num_workers``, and the forked-workers-repeat-their-random-numbers
bug cannot happen. Distributed ranks get independent streams: the seed is spread with the rank
through numpy's ``SeedSequence``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

__all__ = ["RandomStream", "current_rank"]


def current_rank() -> int:
    """This process's distributed rank: from ``torch.distributed`` once initialised, else ``$RANK``, else 0."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def stream_seed(seed: int, rank: int) -> int:
    """A 63-bit seed for ``rank``'s stream, statistically independent of every other rank's."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class RandomStream:
    """A lazily created CPU ``torch.Generator``.

    ``seed`` fixes the stream (per rank); ``generator`` uses the caller's generator as is (the caller
    then owns its seeding, per rank too); with neither, the seed is drawn from torch's global RNG
    at first use, so ``torch.manual_seed`` governs it as it governs the DataLoader's shuffling.
    """

    def __init__(self, seed: int | None = None, generator: torch.Generator | None = None) -> None:
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU generator (draws happen on the CPU), got {generator.device}")
        self.seed = seed
        self._generator = generator

    @property
    def generator(self) -> torch.Generator:
        if self._generator is None:
            base = self.seed
            if base is None:
                base = int(torch.randint(0, 2**62, (1,)).item())
            self._generator = torch.Generator().manual_seed(stream_seed(base, current_rank()))
        return self._generator

    def state_dict(self) -> dict[str, Any]:
        return {"rng_state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["rng_state"])
