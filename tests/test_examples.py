"""Every example runs, on tiny generated data, on the CPU, for a few steps; the patches for the real scripts are sound.

The Lightning, accelerate and torchrun examples are run by their own test files (test_integrations_*.py).
"""

import math
import re

import pytest
import torch
from integration_support import EXAMPLES, load_example
from oracles import mixup_reference
from torch.utils.data import default_collate

from mixup_collate import MixupCollate

pytestmark = [pytest.mark.usefixtures("kept_global_state"), pytest.mark.slow]

# The recipe pages quote these counts (added + removed lines of each patch).
CHANGED_LINES = {
    "torchvision_train.diff": 14,
    "torchvision_presets.diff": 16,
    "timm_train.diff": 17,
    "accelerate_cv.diff": 14,
}
RECIPES = EXAMPLES.parent / "docs" / "recipes"
PAGES = {
    "torchvision_train.diff": "torchvision.md",
    "torchvision_presets.diff": "torchvision.md",
    "timm_train.diff": "timm.md",
    "accelerate_cv.diff": "accelerate.md",
}


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_drop_in_trains_with_the_device_it_is_given(workers):
    history = load_example("drop_in").main(
        ["--epochs", "1", "--workers", str(workers), "--device", "cpu", "--train-samples", "128"]
    )
    assert len(history) == 1
    assert math.isfinite(history[0]["train_loss"]) and 0 <= history[0]["val_accuracy"] <= 1


def recipe(*argv):
    module = load_example("torchvision_recipe")
    base = ["--device", "cpu", "--samples", "8", "-b", "8", "-j", "0", "--epochs", "1", "--print-freq", "100"]
    return module.main(module.get_args_parser().parse_args([*base, *argv]))


def test_torchvision_recipe_honours_cutmix_alpha_with_mixup_off():
    """``--mixup-alpha 0 --cutmix-alpha 1``: CutMix alone, with its own alpha, soft targets through the criterion."""
    result = recipe("--mixup-alpha", "0", "--cutmix-alpha", "1.0", "--label-smoothing", "0.1", "--random-erase", "0.5")
    collate = result["collate_fn"]
    assert isinstance(collate, MixupCollate) and collate.soft_targets
    assert (collate.alpha, collate.cutmix_alpha, collate.device) == (0.0, 1.0, torch.device("cpu"))
    assert len(result["losses"]) == 1 and math.isfinite(result["losses"][0])


def test_torchvision_recipe_without_mixing_keeps_default_collate():
    result = recipe("--epochs", "0")
    assert result["collate_fn"] is torch.utils.data.default_collate


def timm_loop(workers, *extra):
    module = load_example("timm_loop")
    argv = ["--model", "test_resnet", "--device", "cpu", "--samples", "16", "-b", "8", "-j", str(workers)]
    argv += ["--epochs", "2", "--mixup-off-epoch", "1", "--mixup", "0.4", "--cutmix", "1.0", "--reprob", "0.5"]
    return module.main(module.get_args_parser().parse_args([*argv, "--no-prefetcher", *extra]))


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_timm_loop_mixes_until_the_off_epoch_even_with_persistent_workers(workers):
    result = timm_loop(workers)
    assert result["persistent_workers"] == (workers > 0)  # timm's create_loader default
    assert [h["mixed_batches"] for h in result["history"]] == [2, 0]
    assert result["collate_fn"].mixup_enabled is False
    assert all(math.isfinite(h["loss"]) for h in result["history"])


def test_timm_patch_draws_timms_unfolded_lam_one_per_batch_by_default():
    collate = timm_loop(0, "--epochs", "1")["collate_fn"]
    assert (collate.fold, collate.per_sample, collate.seed) == (False, False, 0)  # --mixup-mode batch, timm's default
    assert timm_loop(0, "--epochs", "1", "--mixup-mode", "elem")["collate_fn"].per_sample


@pytest.mark.parametrize(
    "argv",
    [["--mixup-mode", "pair"], ["--mixup-mode", "half"], ["--aug-splits", "2"]],
    ids=["pair", "half", "aug-splits"],
)
def test_timm_patch_refuses_what_it_cannot_reproduce_before_building_anything(argv, monkeypatch):
    module = load_example("timm_loop")
    monkeypatch.setattr(module, "create_model", lambda *a, **k: pytest.fail("built a model before refusing"))
    with pytest.raises(SystemExit, match="MixupCollate: pass --no-prefetcher, no --aug-splits"):
        module.main(module.get_args_parser().parse_args(["--no-prefetcher", *argv]))


def test_timm_patch_refuses_the_prefetcher_before_building_anything(monkeypatch):
    module = load_example("timm_loop")
    monkeypatch.setattr(module, "create_model", lambda *a, **k: pytest.fail("built a model before refusing"))
    with pytest.raises(SystemExit, match="--no-prefetcher"):
        module.main(module.get_args_parser().parse_args([]))


def hunks(diff_text):
    """``(old_start, old_count, new_start, new_count, lines)`` of each hunk of a unified diff."""
    found = []
    for line in diff_text.splitlines():
        header = re.match(r"@@ -(\d+),(\d+) \+(\d+),(\d+) @@", line)
        if header:
            found.append((*map(int, header.groups()), []))
        elif found and not line.startswith(("--- ", "+++ ")):
            found[-1][4].append(line)
    return found


@pytest.mark.parametrize("name", sorted(CHANGED_LINES))
def test_each_patch_is_a_well_formed_unified_diff_of_the_counted_size(name):
    text = (EXAMPLES / name).read_text()
    assert text.startswith("--- a/") and "\n+++ b/" in text
    changed = 0
    for _, old_count, _, new_count, lines in hunks(text):
        assert all(line[:1] in (" ", "-", "+") for line in lines), f"{name}: a hunk line without its prefix"
        assert sum(line[:1] in " -" for line in lines) == old_count
        assert sum(line[:1] in " +" for line in lines) == new_count
        changed += sum(line[:1] in "-+" for line in lines)
    assert changed == CHANGED_LINES[name]
    assert all(len(line) <= 121 for line in text.splitlines()), "the scripts' own line length is 120"


@pytest.mark.parametrize(
    ("diff", "example"),
    [
        ("torchvision_train.diff", "torchvision_recipe.py"),
        ("timm_train.diff", "timm_loop.py"),
        ("accelerate_cv.diff", "accelerate_example.py"),
    ],
)
def test_the_runnable_example_makes_the_same_call_as_the_patch(diff, example):
    added = [line[1:] for line in (EXAMPLES / diff).read_text().splitlines() if line.startswith("+ ")]
    patch_call = balanced_call(added)
    assert patch_call in balanced_calls((EXAMPLES / example).read_text().splitlines())


def code(line):
    """A line without its indentation and trailing comment, in double quotes, an ``elif`` as an ``if``."""
    return re.sub(r"\s+#.*$", "", line).strip().replace("'", '"').removeprefix("el")


@pytest.mark.parametrize(
    ("diff", "example"), [("accelerate_cv.diff", "accelerate_example.py"), ("timm_train.diff", "timm_loop.py")]
)
def test_the_runnable_example_has_the_patchs_added_lines_in_order(diff, example):
    """The statements the patch adds (but the DataLoader call and the MixupCollate call, compared above) run in the
    example in the same order: the resume guard around ``set_epoch``, the refusals, the loop."""
    added = [line[1:] for line in (EXAMPLES / diff).read_text().splitlines() if line.startswith("+ ")]
    wanted = [code(line) for line in outside_the_call(added) if "DataLoader(" not in line and "import" not in line]
    lines = [code(line) for line in (EXAMPLES / example).read_text().splitlines()]
    position = 0
    for line in wanted:
        assert line in lines[position:], f"{example} lacks, after line {position}: {line}"
        position = lines.index(line, position) + 1


@pytest.mark.parametrize("name", sorted(CHANGED_LINES))
def test_the_recipe_page_prints_each_patch_as_it_is_with_its_count(name):
    text = (EXAMPLES / name).read_text()
    readme = (RECIPES / PAGES[name]).read_text()
    blank_context_kept = "\n".join(line.rstrip() for line in text.splitlines())  # a blank context line is " "
    assert f"```diff\n{blank_context_kept}\n```" in readme
    added = sum(line.startswith("+") and not line.startswith("+++") for line in text.splitlines())
    removed = sum(line.startswith("-") and not line.startswith("---") for line in text.splitlines())
    assert f"`examples/{name}`, {added + removed} lines: +{added} -{removed}" in readme


def outside_the_call(lines):
    """``lines`` without those of the first ``MixupCollate(...)`` call."""
    kept, depth, inside = [], 0, False
    for line in lines:
        if not inside and "MixupCollate(" in line and "import" not in line:
            inside = True
        if inside:
            depth += line.count("(") - line.count(")")
            inside = depth > 0
        else:
            kept.append(line)
    return kept


def balanced_call(lines, name="MixupCollate("):
    """The text of the first ``MixupCollate(...)`` call in ``lines``, without whitespace or comments."""
    return balanced_calls(lines, name)[0]


def balanced_calls(lines, name="MixupCollate("):
    """The texts of every ``name...)`` call in ``lines``, without whitespace or comments, in order."""
    text = "".join(re.sub(r"\s+|#.*$", "", line) for line in lines)
    calls, start = [], text.find(name)
    while start >= 0:
        depth = 0
        for end in range(start, len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0 and text[end] == ")":
                calls.append(text[start : end + 1])
                break
        else:
            raise AssertionError(f"unbalanced {name} call")
        start = text.find(name, end)
    assert calls, f"no {name} call"
    return calls


def hunks_by_file(diff_text):
    """``{path: [(old_start, new_start, lines), ...]}`` of a unified diff of one or more files."""
    files, path = {}, None
    for line in diff_text.splitlines():
        if line.startswith("+++ b/"):
            path = line.removeprefix("+++ b/")
            files[path] = []
        elif line.startswith("--- a/"):
            continue
        elif header := re.match(r"@@ -(\d+),\d+ \+(\d+),\d+ @@", line):
            files[path].append((int(header[1]), int(header[2]), []))
        elif files.get(path):
            files[path][-1][2].append(line)
    return files


def side(lines, kept):
    """The old (``kept="-"``) or new (``kept="+"``) side of a hunk's lines, without their prefixes."""
    return [line[1:] for line in lines if line[:1] in (" ", kept)]


PRESETS_DIFF = "torchvision_presets.diff"
MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(3, 1, 1)


def recipe_data(*argv):
    """The miniature recipe's datasets, loaders and collate, as its ``main`` builds them (CPU, 8 samples)."""
    module = load_example("torchvision_recipe")
    args = module.get_args_parser().parse_args(["--samples", "8", "-b", "8", "-j", "0", *argv])
    return module.loaders(args, torch.device("cpu"))


def through_both_presets(data, random_erase):
    """Each training picture through the patched (uint8) preset and the unpatched float one, with the same draws."""
    module = load_example("torchvision_recipe")
    float_preset = module.presets(True, 32, random_erase)
    patched, unpatched = [], []
    for i, image in enumerate(data["dataset"].images):
        torch.manual_seed(i)
        patched.append(data["dataset"][i])
        torch.manual_seed(i)
        unpatched.append(float_preset(image))
    return patched, torch.stack(unpatched).double()


class TestTorchvisionUint8Recipe:
    """``torchvision_presets.diff``: uint8 up to the collate, normalised there as the float preset would, erasing to
    the mean colour, evaluation as it was (``examples/torchvision_recipe.py --uint8-presets``)."""

    def test_samples_stay_uint8_until_the_collate_which_returns_float32_on_the_device(self, monkeypatch):
        reached = []
        original = MixupCollate.__call__

        def spy(self, samples):
            reached.extend(image.dtype for image, _ in samples)
            return original(self, samples)

        monkeypatch.setattr(MixupCollate, "__call__", spy)
        data = recipe_data("--uint8-presets", "--mixup-alpha", "0.2", "--cutmix-alpha", "1.0", "--random-erase", "0.5")
        image, target = next(iter(data["data_loader"]))
        assert reached == [torch.uint8] * 8
        assert (image.dtype, image.device, target.shape) == (torch.float32, torch.device("cpu"), (8, 4))

    def test_the_mixed_batch_is_the_float_presets_pictures_mixed_in_float64(self):
        data = recipe_data("--uint8-presets", "--mixup-alpha", "0.4")
        patched, unpatched = through_both_presets(data, random_erase=0.0)
        batch = data["collate_fn"](patched)
        image, _ = batch
        assert bool((batch.lam < 1).any())
        torch.testing.assert_close(image.double(), mixup_reference(unpatched, batch.perm, batch.lam), rtol=0, atol=1e-5)

    def test_random_erasing_fills_with_the_mean_colour_so_it_is_zero_after_normalisation(self):
        """The unpatched preset erases to 0 after ``Normalize`` (the mean colour); the uint8 one must erase to the
        mean in [0, 255] units, off by at most half a grey level, not to black (about -2 after normalisation)."""
        data = recipe_data("--uint8-presets", "--random-erase", "1.0")
        patched, unpatched = through_both_presets(data, random_erase=1.0)
        image, target = data["collate_fn"](patched)  # mixing off: normalised only
        erased = unpatched == 0
        assert bool(erased.any()) and bool((~erased).any())
        half_level = (0.5 / 255 / STD).expand_as(unpatched)
        assert bool((image.double()[erased].abs() <= half_level[erased] + 1e-6).all())
        torch.testing.assert_close(image.double()[~erased], unpatched[~erased], rtol=0, atol=1e-5)
        one_hot = torch.nn.functional.one_hot(torch.tensor(data["dataset"].targets), 4)
        torch.testing.assert_close(target, one_hot.float())

    def test_evaluation_keeps_its_float_preset_and_default_collate(self):
        patched = recipe_data("--uint8-presets", "--mixup-alpha", "0.2")
        unpatched = recipe_data("--mixup-alpha", "0.2")
        assert patched["data_loader_test"].collate_fn is default_collate
        (image, target), (plain_image, plain_target) = (
            next(iter(patched["data_loader_test"])),
            next(iter(unpatched["data_loader_test"])),
        )
        assert image.dtype == torch.float32 and torch.equal(image, plain_image) and torch.equal(target, plain_target)
        oracle = (patched["dataset_test"].images.double() / 255 - MEAN) / STD
        torch.testing.assert_close(image.double(), oracle, rtol=0, atol=1e-5)

    def test_the_patched_recipe_trains_with_mixup_cutmix_and_erasing(self):
        result = recipe("--uint8-presets", "--mixup-alpha", "0.2", "--cutmix-alpha", "1.0", "--random-erase", "0.5")
        assert len(result["losses"]) == 1 and math.isfinite(result["losses"][0])

    def test_the_example_makes_the_patchs_collate_calls_and_erases_with_its_value(self):
        files = hunks_by_file((EXAMPLES / PRESETS_DIFF).read_text())
        example = (EXAMPLES / "torchvision_recipe.py").read_text().splitlines()
        patched_train = [line for *_, lines in files[TRAIN_PY] for line in side(lines, "+")]
        assert len(balanced_calls(patched_train)) == 2
        assert set(balanced_calls(patched_train)) <= set(balanced_calls(example))
        patched_presets = [line for *_, lines in files[PRESETS_PY] for line in side(lines, "+")]
        erase_value = re.search(r"value=\[.*\]", "".join(balanced_calls(patched_presets, "RandomErasing(")))[0]
        assert [call for call in balanced_calls(example, "RandomErasing(") if erase_value in call]
        removed = [line[1:] for *_, lines in files[PRESETS_PY] for line in lines if line.startswith("-")]
        assert any("ToDtype(" in line for line in removed) and any("Normalize(" in line for line in removed)


TRAIN_PY, PRESETS_PY = "references/classification/train.py", "references/classification/presets.py"


def ignite_diffs():
    """The ignite page's two diffs (soft targets, the 4-tuple) and the counts its heading gives them."""
    section = (RECIPES / "ignite.md").read_text()
    blocks = re.findall(r"```diff\n(.*?)\n```", section, flags=re.S)
    counts = re.search(r"soft targets (\d+) lines: \+(\d+) -(\d+), the 4-tuple (\d+) lines: \+(\d+) -(\d+)", section)
    return [block.splitlines() for block in blocks], [tuple(map(int, counts.groups()[i : i + 3])) for i in (0, 3)]


class TestIgniteDiffs:
    """The ignite page's diffs are fragments of a user's script: the lines they keep and add are in the example."""

    def test_the_heading_counts_each_diffs_changed_lines(self):
        blocks, counts = ignite_diffs()
        assert len(blocks) == 2
        for lines, (total, added, removed) in zip(blocks, counts):
            assert all(line[:1] in " +-" for line in lines)
            assert (sum(line[:1] == "+" for line in lines), sum(line[:1] == "-" for line in lines)) == (added, removed)
            assert added + removed == total

    @pytest.mark.parametrize("form", [0, 1], ids=["soft-targets", "pairs"])
    def test_the_example_has_the_diffs_kept_and_added_lines_in_order(self, form):
        """Imports aside, every line the diff keeps or adds is in ``examples/ignite_example.py`` in that order (the
        loader's other arguments aside: its ``collate_fn=collate`` is checked)."""
        lines = ignite_diffs()[0][form]
        example_text = (EXAMPLES / "ignite_example.py").read_text()
        example = [code(line) for line in example_text.splitlines()]
        wanted = [code(line[1:]) for line in lines if line[:1] in " +" and "import" not in line]
        position = 0
        for line in wanted:
            loader = "DataLoader(" in line
            if loader:
                assert "collate_fn=collate" in line
                line = "train_loader = DataLoader("
            assert line in example[position:], f"ignite_example.py lacks, after line {position}: {line}"
            position = example.index(line, position) + 1
            if loader:
                call = balanced_call(example_text.splitlines()[position - 1 :], "DataLoader(")
                assert "collate_fn=collate" in call

    def test_the_example_imports_what_the_diffs_add(self):
        example = (EXAMPLES / "ignite_example.py").read_text()
        for lines in ignite_diffs()[0]:
            for line in lines:
                if line.startswith("+") and "import" in line:
                    names = line.split(" import ", 1)[1].split(", ")
                    assert all(re.search(rf"from mixup_collate import .*\b{name}\b", example) for name in names)
