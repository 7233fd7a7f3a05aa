"""The demo's command lines end to end with tiny settings, their options, and the torch thread count they borrow."""

import json
import math
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow  # runs the demo, the package, a framework or torchrun

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")
pytest.importorskip("tqdm")

from mixup_collate.demo import cli  # noqa: E402

TINY = ["--epochs", "1", "--max-batches", "3", "--seeds", "1", "--device", "cpu"]
FILES = (
    "mixed_samples.png",
    "cutmix_samples.png",
    "lam_histogram.png",
    "curves.png",
    "reliability.png",
    "results.json",
)


@pytest.fixture(autouse=True)
def global_rng():
    """The demo seeds torch's global RNG; every test here leaves it as it found it."""
    with torch.random.fork_rng(devices=[]):
        yield


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


def is_kept_share(lam, pixels):
    """Whether ``lam`` is a share of an image of ``pixels`` pixels kept whole: ``k / pixels`` in ``[0.5, 1]``."""
    return 0.5 <= lam <= 1 and lam * pixels == round(lam * pixels)


def check_outputs(out, pixels, mixup_alpha=0.4, cutmix_alpha=1.0):
    """The files exist, ``results.json`` holds finite numbers, and its ``samples`` describe both sample pictures.

    ``pixels`` is H x W of the images, the share a CutMix sample keeps being a whole number of them.
    """
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    values = list(numbers(results))
    assert values and all(math.isfinite(v) for v in values)
    config, samples = results["config"], results["samples"]
    assert set(samples) == {"mixed_samples.png", "cutmix_samples.png"}
    mixed, cut = samples["mixed_samples.png"], samples["cutmix_samples.png"]
    assert (mixed["alpha"], mixed["trained"]) == (mixup_alpha, config["alpha"] > 0)
    assert (cut["cutmix_alpha"], cut["trained"]) == (cutmix_alpha, config["cutmix_alpha"] > 0)
    for shown in (mixed, cut):
        assert len(shown["label_a"]) == len(shown["label_b"]) == len(shown["lam"]) == min(24, config["n_train"])
        assert set(shown["label_a"] + shown["label_b"]) <= set(config["classes"])
    assert all(is_kept_share(lam, pixels) for lam in cut["lam"]) and min(cut["lam"]) < 1
    assert not any(is_kept_share(lam, pixels) for lam in mixed["lam"] if lam < 1)
    check_calibration(results)
    return results


def check_calibration(results):
    """Each run of each seed carries its last epoch's 15 bins over the whole validation set, its ECE and mean
    confidence follow from them, its bins' accuracy is the run's final accuracy, and the summary holds them all."""
    n_val = results["config"]["n_val"]
    for run, summary in results["summary"].items():
        for history in results["histories"]:
            c = history[run]["calibration"]
            assert len(c["counts"]) == len(c["correct"]) == len(c["confidence_sum"]) == 15
            assert sum(c["counts"]) == n_val
            assert sum(c["correct"]) == round(history[run]["val_acc"][-1] * n_val) and 0 < c["mean_confidence"] <= 1
            filled = [(n, a, conf) for n, a, conf in zip(c["counts"], c["bin_accuracy"], c["bin_confidence"]) if n]
            assert c["ece"] == pytest.approx(sum(n / n_val * abs(a - conf) for n, a, conf in filled))
            assert c["mean_confidence"] == pytest.approx(sum(c["confidence_sum"]) / n_val)
        for key, field in (("final_ece", "ece"), ("final_confidence", "mean_confidence")):
            assert summary[key]["values"] == [h[run]["calibration"][field] for h in results["histories"]]


def test_demo_on_digits(tmp_path, capsys):
    assert cli.main([*TINY, "--out", str(tmp_path)]) == 0
    results = check_outputs(tmp_path, pixels=8 * 8)
    (history,) = results["histories"]
    assert list(history) == ["seed", "plain", "mixup"]
    for run in ("plain", "mixup"):
        assert len(history[run]["val_acc"]) == 1
        assert 0 <= history[run]["val_acc"][0] <= 1
    assert results["config"]["n_train"] + results["config"]["n_val"] == 1797
    assert results["lam"]["count"] == 3 * 64
    assert results["verdict"].startswith("Verdict:")
    printed = capsys.readouterr().out
    assert "plain" in printed and "mixup" in printed and results["verdict"] in printed
    assert "final ECE" in printed and results["verdict"].splitlines()[1].startswith("Calibration: ")
    assert "cutmix" not in printed.replace("cutmix_samples.png", "")
    wrote = printed.split("Wrote:")[1].split()
    assert wrote == [str(tmp_path / name) for name in FILES]


def test_results_carry_the_calibration_of_each_run_and_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(cli.plots, "write_all", lambda *args: ([], {}))  # the pictures are checked above
    assert cli.main([*TINY, "--max-batches", "1", "--seeds", "3,5", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert [h["seed"] for h in results["histories"]] == [3, 5]
    check_calibration(results)
    for run in ("plain", "mixup"):
        assert len(results["summary"][run]["final_ece"]["values"]) == 2
    assert results["verdict"].splitlines()[1].startswith("Calibration: ") and "2 seeds" in results["verdict"]


def test_cutmix_only_demo_names_its_run_cutmix_and_still_draws_mixup(tmp_path, capsys):
    argv = [*TINY, "--max-batches", "1", "--alpha", "0", "--cutmix-alpha", "2"]
    assert cli.main([*argv, "--out", str(tmp_path)]) == 0
    results = check_outputs(tmp_path, pixels=8 * 8, cutmix_alpha=2.0)
    (history,) = results["histories"]
    assert list(history) == ["seed", "plain", "cutmix"] and list(results["summary"]) == ["plain", "cutmix"]
    assert results["verdict"].startswith("Verdict: cutmix ")
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in table[2:4]] == ["plain", "cutmix"]
    assert (results["config"]["alpha"], results["config"]["cutmix_alpha"]) == (0.0, 2.0)


def test_cutmix_alpha_is_off_by_default_and_turns_cutmix_on():
    assert cli.parse_args([]).cutmix_alpha == 0
    args = cli.parse_args(["--alpha", "0", "--cutmix-alpha", "1"])
    assert (args.alpha, args.cutmix_alpha) == (0, 1)
    assert cli._settings(args).runs == ("plain", "cutmix")
    assert cli._settings(cli.parse_args(["--cutmix-alpha", "0.5"])).runs == ("plain", "mixup+cutmix")


@pytest.mark.parametrize("argv", [["--cutmix-alpha", "-1"], ["--cutmix-alpha", "inf"], ["--alpha", "-0.1"]])
def test_negative_or_infinite_concentrations_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(argv)
    assert exit_info.value.code == 2
    assert f"argument {argv[0]}: must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--alpha", "0"], ["--alpha", "0", "--cutmix-alpha", "0"]])
def test_alpha_zero_without_cutmix_is_refused_naming_both_options(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--alpha 0 turns Mixup off" in err and "--cutmix-alpha > 0 for CutMix" in err


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
    assert cli.main([*argv, "--out", str(out)]) == 0
    results = check_outputs(out, pixels=16 * 16)
    assert results["config"]["classes"] == ["cats", "dogs"]
    assert (results["config"]["n_train"], results["config"]["n_val"]) == (10, 2)


def test_mixup_collate_demo_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.command(["demo", "--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("usage: mixup-collate demo") and "--max-batches" in printed


def test_mixup_collate_without_a_command_lists_the_commands(capsys):
    assert cli.command([]) == 2
    printed = capsys.readouterr().out
    assert printed.startswith("usage: mixup-collate") and "demo" in printed


def test_python_m_mixup_collate_demo_runs_the_demo():
    done = subprocess.run(
        [sys.executable, "-m", "mixup_collate.demo", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m mixup_collate.demo") and "--max-batches" in done.stdout


def test_seeds_option():
    assert cli.parse_args(["--seeds", "2"]).seeds == [0, 1]
    assert cli.parse_args(["--seeds", "4,7"]).seeds == [4, 7]
    with pytest.raises(SystemExit):
        cli.parse_args(["--seeds", "0"])


def test_missing_extra_names_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(SystemExit, match=r"scikit-learn: install the demo extra, pip install \"\.\[demo\]\""):
        cli.main([*TINY, "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())


@pytest.fixture
def callers_threads():
    """The caller's torch thread count: neither the demo's ``--threads`` default of 1 nor the count found here."""
    before = torch.get_num_threads()
    count = 3 if before != 3 else 4
    torch.set_num_threads(count)
    yield count
    torch.set_num_threads(before)


def test_the_run_uses_threads_and_restores_the_callers_count(callers_threads, monkeypatch, tmp_path):
    seen = []
    real = cli.run_experiment

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "run_experiment", spy)
    assert cli.main([*TINY, "--max-batches", "1", "--threads", "2", "--out", str(tmp_path)]) == 0
    assert seen == [2]
    assert torch.get_num_threads() == callers_threads


def test_a_failing_run_restores_the_callers_thread_count(callers_threads, monkeypatch, tmp_path):
    seen = []

    def failing_load(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("no data today")

    monkeypatch.setattr(cli, "load_data", failing_load)
    with pytest.raises(RuntimeError, match="no data today"):
        cli.main([*TINY, "--threads", "2", "--out", str(tmp_path)])
    assert seen == [2]
    assert torch.get_num_threads() == callers_threads
