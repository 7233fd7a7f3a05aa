"""Each benchmark runs end to end at tiny sizes, so none can rot (no timing assertions)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(autouse=True)
def torch_threads_restored():
    """The benchmarks set torch's thread count for their measurements; the next test gets the count it had."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mix_kernel(tmp_path, capsys):
    out = tmp_path / "mix.json"
    assert (
        load("mix_kernel").main(["--device", "cpu", "--sizes", "8", "--batch", "5", "--rounds", "1", "--out", str(out)])
        == 0
    )
    results = json.loads(out.read_text())["results"]
    assert {r["case"] for r in results} >= {"copy", "mixup_collate"}
    assert "x copy" in capsys.readouterr().out


def test_loss(tmp_path):
    out = tmp_path / "loss.json"
    args = ["--device", "cpu", "--classes", "3", "--batch", "4", "--rounds", "1", "--repeats", "1", "--out", str(out)]
    assert load("loss").main(args) == 0
    assert len(json.loads(out.read_text())["results"]) == 3


@pytest.mark.parametrize("pipeline", ["memory", "decode"])
def test_loader_throughput(tmp_path, pipeline):
    args = ["--device", "cpu", "--pipelines", pipeline, "--workers", "0", "--batch-sizes", "4", "--rounds", "1"]
    args += ["--samples", "16", "--decode-samples", "8", "--out", str(tmp_path)]
    assert load("loader_throughput").main(args) == 0
    results = json.loads((tmp_path / "loader_throughput.json").read_text())["results"]
    strategies = {r["strategy"] for r in results}
    assert {"plain", "two_loader", "inloop", "torchvision_v2", "mixup_collate", "mixup_collate_uint8"} <= strategies
    assert (tmp_path / "loader_throughput.png").stat().st_size > 0


def test_loader_throughput_modes(tmp_path):
    args = ["--device", "cpu", "--pipelines", "memory", "--modes", "cutmix", "switch", "--workers", "0"]
    args += ["--batch-sizes", "4", "--rounds", "1", "--samples", "16", "--out", str(tmp_path)]
    assert load("loader_throughput").main(args) == 0
    results = json.loads((tmp_path / "loader_throughput.json").read_text())["results"]
    peers = ["torchvision_v2", "timm_inloop", "timm_fast", "mixup_collate", "mixup_collate_uint8"]
    expected = {("none", "plain")} | {(mode, name) for mode in ("cutmix", "switch") for name in peers}
    assert {(r["mode"], r["strategy"]) for r in results} == expected
    assert all(r["vs_two_loader"] is None for r in results if r["mode"] != "none")


def test_loader_throughput_refuses_odd_batches_for_timm(capsys):
    with pytest.raises(SystemExit):
        load("loader_throughput").main(["--batch-sizes", "5"])
    assert "even" in capsys.readouterr().err


def test_collate_overhead(tmp_path, capsys):
    out = tmp_path / "overhead.json"
    # 4x3x8x8 float32 is 0.003 MB and runs; 6x3x8x8 (0.005 MB) is over --max-mb and skipped.
    args = ["--batch-sizes", "4", "6", "--sizes", "8", "--max-mb", "0.004", "--rounds", "1", "--out", str(out)]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert load("collate_overhead").main(args) == 0
        assert torch.get_num_threads() == 2, "the benchmark runs on one thread and restores the caller's count"
    finally:
        torch.set_num_threads(threads)
    payload = json.loads(out.read_text())
    assert [(r["batch"], r["dtype"]) for r in payload["results"]] == [(4, "float32"), (4, "uint8")]
    assert len(payload["skipped"]) == 1 and payload["skipped"][0].startswith("6x3x8x8")
    cases = {"plain", "ours", "stack_samples", "draw", "apply", "default_collate", "torch.stack"}
    for r in payload["results"]:
        assert set(r["seconds"]) == cases and all(s["median"] > 0 for s in r["seconds"].values())
        assert r["ours_over_plain"] == r["seconds"]["ours"]["median"] / r["seconds"]["plain"]["median"]
    assert "ours / plain" in capsys.readouterr().out
