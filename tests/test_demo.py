"""The demo end to end with tiny settings: every file appears and ``results.json`` holds finite numbers."""

import json
import math
import sys

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")
pytest.importorskip("tqdm")

from mixup_collate import cli, demo  # noqa: E402

TINY = ["--epochs", "1", "--max-batches", "3", "--seeds", "1", "--device", "cpu"]
FILES = ("mixed_samples.png", "lam_histogram.png", "curves.png", "results.json")


def numbers(node):
    """Every int and float in a JSON tree."""
    if isinstance(node, dict):
        for value in node.values():
            yield from numbers(value)
    elif isinstance(node, list):
        for value in node:
            yield from numbers(value)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield node


def check_outputs(out):
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    values = list(numbers(results))
    assert values and all(math.isfinite(v) for v in values)
    return results


def test_demo_on_digits(tmp_path, capsys):
    assert demo.main([*TINY, "--out", str(tmp_path)]) == 0
    results = check_outputs(tmp_path)
    (history,) = results["histories"]
    for run in ("plain", "mixup"):
        assert len(history[run]["val_acc"]) == 1
        assert 0 <= history[run]["val_acc"][0] <= 1
    assert results["config"]["n_train"] + results["config"]["n_val"] == 1797
    assert results["lam"]["count"] == 3 * 64
    assert results["verdict"].startswith("Verdict:")
    printed = capsys.readouterr().out
    assert "plain" in printed and "mixup" in printed and results["verdict"] in printed


def test_demo_on_image_folder(tmp_path):
    image = pytest.importorskip("PIL.Image")
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
            image.fromarray(pixels).save(tmp_path / "data" / label / f"{i}.png")
    out = tmp_path / "out"
    argv = [*TINY, "--data", str(tmp_path / "data"), "--image-size", "16", "--batch-size", "4", "--workers", "2"]
    assert demo.main([*argv, "--out", str(out)]) == 0
    results = check_outputs(out)
    assert results["config"]["classes"] == ["cats", "dogs"]
    assert (results["config"]["n_train"], results["config"]["n_val"]) == (10, 2)


def test_cli_demo_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--help"])
    assert exit_info.value.code == 0
    assert "--max-batches" in capsys.readouterr().out


def test_seeds_option():
    assert demo.parse_args(["--seeds", "2"]).seeds == [0, 1]
    assert demo.parse_args(["--seeds", "4,7"]).seeds == [4, 7]
    with pytest.raises(SystemExit):
        demo.parse_args(["--seeds", "0"])


def test_missing_extra_names_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(SystemExit, match=r"scikit-learn: pip install \"mixup-collate\[demo\]\""):
        demo.main([*TINY, "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())
