"""DistributedDataParallel under torchrun (examples/train_ddp.py): every rank mixes its own batches, reproducibly.

One real ``torchrun`` launch pair checks the launcher path end to end; forked ranks (no torch import
per process) check the rest cheaply.
"""

import json
import subprocess
import sys

import pytest
import torch
from integration_support import ROOT, global_state_kept, load_example, run_ranks

pytestmark = pytest.mark.slow

ARGS = ["--epochs", "3", "--samples", "256", "--batch-size", "32", "--seed", "3"]


TWO_GPUS = torch.cuda.is_available() and torch.cuda.device_count() >= 2


def torchrun(record_dir):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += [str(ROOT / "examples" / "train_ddp.py"), *ARGS, "--workers", "0", "--record", str(record_dir)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def recorded(record_dir):
    return [json.loads((record_dir / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def test_torchrun_ranks_mix_on_their_device_independently_and_reproducibly(tmp_path):
    runs = [tmp_path / "run", tmp_path / "rerun"]
    for run in runs:
        run.mkdir()
    launches = [torchrun(run) for run in runs]  # side by side: most of each launch is importing torch
    for launch in launches:
        output, _ = launch.communicate(timeout=240)
        assert launch.returncode == 0, output[-3000:]

    first, again = recorded(runs[0]), recorded(runs[1])
    for rank, result in enumerate(first):
        assert (result["rank"], result["world"]) == (rank, 2)
        expected = f"cuda:{rank}" if TWO_GPUS else "cpu"
        assert result["device"] == expected
        assert {step["device"] for step in result["steps"]} == {expected}
        assert len(result["steps"]) == 3 * 256 // 2 // 32
    lams = [[step["lam"] for step in result["steps"]] for result in first]
    assert all(a != b for a, b in zip(*lams)), "the ranks drew the same lam for a batch"
    assert [r["steps"] for r in again] == [r["steps"] for r in first], "a rerun with the same seed drew differently"
    losses = first[0]["epoch_losses"]
    assert losses == first[1]["epoch_losses"]  # all-reduced: the same on every rank
    assert losses[-1] < losses[0]


def forked_rank(rank, argv, out_dir):
    result = load_example("train_ddp").main(argv)
    (out_dir / f"rank{rank}.json").write_text(json.dumps(result))


@pytest.mark.parametrize("workers", [0, 2])
def test_forked_ranks_draw_the_same_for_any_number_of_workers(tmp_path, workers):
    """The rank's stream, not the worker that stacked a batch, decides its draws."""
    baseline, run = tmp_path / "baseline", tmp_path / "run"
    for path, n in ((baseline, 0), (run, workers)):
        path.mkdir()
        # Forked children cannot use CUDA once the parent has: the ranks run on the CPU.
        run_ranks(forked_rank, 2, ARGS + ["--epochs", "2", "--workers", str(n), "--device", "cpu"], path)
    assert [r["steps"] for r in recorded(run)] == [r["steps"] for r in recorded(baseline)]


def test_a_plain_python_run_is_a_group_of_one():
    with global_state_kept():
        result = load_example("train_ddp").main(ARGS + ["--epochs", "2", "--workers", "0"])
    assert (result["rank"], result["world"]) == (0, 1)
    assert len(result["steps"]) == 2 * 256 // 32
    assert not torch.distributed.is_initialized()
