"""Helpers for the integration tests: run an example in this process, keep global state, fork a few ranks."""

import ast
import importlib.util
import os
import random
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module (registered, so its classes pickle by reference)."""
    module_name = f"example_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


@contextmanager
def global_state_kept(threads: int = 1) -> Iterator[None]:
    """Run on ``threads`` intra-op threads, then restore them, the global RNGs and the environment.

    One thread by default: on a busy 2-core machine torch's second thread spins waiting for a core, which
    made a tiny model's training step a hundred times slower than on one thread here.
    """
    previous_threads, torch_rng = torch.get_num_threads(), torch.get_rng_state()
    python_rng, numpy_rng = random.getstate(), np.random.get_state()
    environ = dict(os.environ)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.set_rng_state(torch_rng)
        random.setstate(python_rng)
        np.random.set_state(numpy_rng)
        os.environ.clear()
        os.environ.update(environ)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_entry(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    # A forked child cannot use the intra-op thread pool its parent started (it hangs in the first parallel op);
    # one thread per rank is also what torchrun gives each process (OMP_NUM_THREADS=1).
    torch.set_num_threads(1)
    fn(rank, *args)


def run_ranks(fn: Callable[..., Any], world: int, *args: Any) -> None:
    """Run ``fn(rank, *args)`` in ``world`` forked processes with torchrun's environment (CPU only: no CUDA in forks).

    Forking skips the seconds each process would spend importing torch (and the torch._dynamo that
    DistributedDataParallel imports on first use, imported here once for all). A rank's exception is
    re-raised here (``torch.multiprocessing.ProcessRaisedException``) after the other ranks are stopped.
    """
    import torch._dynamo  # noqa: F401

    mp.start_processes(_rank_entry, args=(world, free_port(), fn, args), nprocs=world, start_method="fork")


def modules_importing(roots: tuple[str, ...], own: str) -> list[str]:
    """The library's modules, ``mixup_collate/<own>.py`` aside, that import a package in ``roots`` or ``<own>``.

    What keeps ``import mixup_collate`` working where an optional integration is not installed.
    """
    import mixup_collate

    package = Path(mixup_collate.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path == package / f"{own}.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{'.' * node.level}{node.module or ''}"]
            else:
                continue
            if any(n.split(".")[0] in roots or n.endswith(own) for n in names):
                offenders.append(f"{path.relative_to(package)}: {names}")
    return offenders
