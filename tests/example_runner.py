"""Helpers for the tests that run the examples in this process: load one by path, keep global state as it was."""

import importlib.util
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module (registered, so its classes pickle by reference)."""
    module_name = f"example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@contextmanager
def global_state_kept() -> Iterator[None]:
    """Restore torch's, numpy's and Python's global RNGs and torch's thread count after an example seeds or sets them."""
    threads, torch_rng = torch.get_num_threads(), torch.get_rng_state()
    python_rng, numpy_rng = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_rng_state(torch_rng)
        random.setstate(python_rng)
        np.random.set_state(numpy_rng)
