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
    assert {r["case"] for r in results} >= {"copy", "mixup_collate (torch path, mixup)"}
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
    args += ["--detection-cells", "--video-cells"]
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


def test_collate_overhead_dense_rows(tmp_path, capsys):
    out = tmp_path / "overhead.json"
    # 2x3x8x8 runs; 3x3x16x16 (0.009 MB as float32) is over --max-mb and skipped.
    args = ["--batch-sizes", "--dense-cells", "2x8", "3x16", "--max-mb", "0.004", "--rounds", "1", "--out", str(out)]
    assert load("collate_overhead").main([*args, "--detection-cells", "--video-cells"]) == 0
    payload = json.loads(out.read_text())
    assert payload["results"] == [] and payload["dense_skipped"] == ["dense 3x3x16x16 (over --max-mb)"]
    (row,) = payload["dense_results"]
    assert (row["batch"], row["shape"], row["mask"]) == (2, [3, 8, 8], [8, 8])
    assert set(row["seconds"]) == {"plain", "ours", "composer_inloop"}
    assert row["ours_over_plain"] == row["seconds"]["ours"]["median"] / row["seconds"]["plain"]["median"]
    assert "composer_inloop / plain" in capsys.readouterr().out


def test_loader_throughput_dense_pipeline(tmp_path):
    args = ["--device", "cpu", "--pipelines", "dense", "--dense-cells", "2x8", "--dense-samples", "4"]
    args += ["--workers", "0", "--rounds", "1", "--batch-sizes", "2", "--out", str(tmp_path)]
    assert load("loader_throughput").main(args) == 0
    results = json.loads((tmp_path / "loader_throughput.json").read_text())["results"]
    expected = {("none", "plain"), ("dense_cutmix", "composer_inloop"), ("dense_cutmix", "mixup_collate_dense")}
    assert {(r["mode"], r["strategy"]) for r in results} == expected
    assert all(r["pipeline"] == "dense" and r["shape"] == [3, 8, 8] and r["batch"] == 2 for r in results)


def test_batch_cutmix_cuts_one_box_from_images_and_masks_alike():
    """The composer-style reference the dense rows compare with: one box, the same pixels of image and mask."""
    spec = importlib.util.spec_from_file_location("bench_common", BENCHMARKS / "_common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 16, 16).clone()
    y = torch.arange(4).view(4, 1, 1).expand(4, 16, 16).clone()
    for seed in range(8):
        xc, yc = common.batch_cutmix(x.clone(), y.clone(), generator=torch.Generator().manual_seed(seed))
        assert torch.equal(xc[:, 0].long(), yc) and torch.equal(xc[:, 0], xc[:, 2])  # cut together, pixel for pixel
        regions = [r for r in yc != y if r.any()]
        assert all(torch.equal(r, regions[0]) for r in regions), "one box for the whole batch"
        if regions:
            rows, cols = regions[0].any(1).nonzero(), regions[0].any(0).nonzero()
            assert regions[0].sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)


def test_collate_overhead_video_rows(tmp_path, capsys):
    out = tmp_path / "overhead.json"
    args = ["--batch-sizes", "--dense-cells", "--detection-cells", "--video-cells", "3x4x8", "--rounds", "1"]
    assert load("collate_overhead").main([*args, "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["video_results"]
    assert (row["batch"], row["shape"], row["cutmix_dims"]) == (3, [4, 3, 8, 8], [-4, -2, -1])
    assert set(row["seconds"]) == {"plain", "ours", "pytorchvideo_inloop", "default_collate", "ours_collate_fn"}
    assert row["ours_over_plain"] == row["seconds"]["ours"]["median"] / row["seconds"]["plain"]["median"]
    assert "pytorchvideo_inloop / plain" in capsys.readouterr().out


def test_flipped_clip_cutmix_pastes_one_box_from_the_flipped_batch_into_every_frame():
    """The pytorchvideo-style reference the video rows compare with."""
    spec = importlib.util.spec_from_file_location("bench_common", BENCHMARKS / "_common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1, 1).expand(4, 5, 3, 12, 10).clone()
    for seed in range(8):
        out, y = common.flipped_clip_cutmix(
            x.clone(), torch.arange(4), 4, generator=torch.Generator().manual_seed(seed)
        )
        pasted = out != x
        assert torch.equal(out[pasted], x.flip(0)[pasted]), "pasted from the flipped batch"
        assert all(torch.equal(pasted[i, t, c], pasted[0, 0, 0]) for i in (0, 3) for t in range(5) for c in range(3))
        kept = 1 - pasted[0, 0, 0].double().mean()
        assert torch.allclose(y[0].double(), torch.tensor([kept, 0, 0, 1 - kept], dtype=torch.float64))


def test_fixed_cost(tmp_path, capsys):
    out = tmp_path / "fixed.json"
    assert load("fixed_cost").main(["--batch", "8", "--rounds", "1", "--repeats", "1", "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert [r["mode"] for r in results] == ["mixup", "cutmix", "switched", "dense switched"]
    assert all(r["tensor_ops"] > 0 and r["ratio"] > 0 for r in results)
    assert "tensor ops" in capsys.readouterr().out


def test_detection(tmp_path, capsys):
    out = tmp_path / "detection.json"
    args = ["--side", "32", "--batch", "4", "--samples", "8", "--rounds", "1", "--workers", "0", "--out", str(out)]
    assert load("detection").main(args) == 0
    results = json.loads(out.read_text())
    assert {r["strategy"] for r in results["collate"]} == {
        "stack",
        "dataset_mixup",
        "ours_mixup",
        "ours_cutmix",
        "load_only",
    }
    assert len(results["loader"]) == 4 and "x stack" in capsys.readouterr().out


def test_collate_overhead_detection_rows(tmp_path, capsys):
    out = tmp_path / "overhead.json"
    args = ["--batch-sizes", "--dense-cells", "--detection-cells", "2x16", "--video-cells", "--rounds", "1"]
    assert load("collate_overhead").main([*args, "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["detection_results"]
    assert {r["strategy"] for r in rows} == {"stack", "dataset_mixup", "ours_mixup", "ours_cutmix", "load_only"}
    assert all((r["batch"], r["side"]) == (2, 16) for r in rows) and "detection targets" in capsys.readouterr().out


def test_loader_throughput_detection_pipeline(tmp_path):
    args = ["--device", "cpu", "--pipelines", "detection", "--detection-cells", "2x16", "--detection-samples", "4"]
    args += ["--workers", "0", "--rounds", "1", "--out", str(tmp_path)]
    assert load("loader_throughput").main(args) == 0
    results = json.loads((tmp_path / "loader_throughput.json").read_text())["results"]
    expected = {("none", "plain"), ("mixup", "dataset_mixup"), ("mixup", "mixup_collate_boxes"),
                ("cutmix", "mixup_collate_boxes")}  # fmt: skip
    assert {(r["mode"], r["strategy"]) for r in results} == expected
