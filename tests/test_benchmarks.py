"""Each benchmark runs end to end at tiny sizes, so none can rot (no timing assertions)."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


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
