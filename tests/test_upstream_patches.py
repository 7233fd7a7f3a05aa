"""The torchvision patches apply as people apply them: GNU ``patch -p1 --fuzz=0`` and ``git apply``, to copies of
upstream's reference scripts (``tests/data/upstream``), in the order the recipe pages give; the patched detection
script's collate block is the miniature's, and it runs."""

import shutil
import subprocess
from pathlib import Path

import pytest
from integration_support import EXAMPLES, load_example

UPSTREAM = Path(__file__).parent / "data" / "upstream"
# Each diff, after the ones the page applies before it.
STACKS = {
    "torchvision_train.diff": [],
    "torchvision_presets.diff": ["torchvision_train.diff"],
    "torchvision_segmentation.diff": [],
    "torchvision_detection.diff": [],
}
TOOLS = {
    "patch": lambda diff: ["patch", "-p1", "--fuzz=0", "--forward", "--batch", "-i", str(EXAMPLES / diff)],
    "git apply": lambda diff: ["git", "apply", "--unidiff-zero", str(EXAMPLES / diff)],
}


def applied(tmp_path, diff, tool):
    """A copy of upstream's scripts with ``diff`` applied by ``tool`` after the diffs the page applies first."""
    if shutil.which(tool.split()[0]) is None:
        pytest.skip(f"{tool.split()[0]} is not installed")
    tree = tmp_path / "vision"
    shutil.copytree(UPSTREAM / "references", tree / "references")
    for step in [*STACKS[diff], diff]:
        done = subprocess.run(TOOLS[tool](step), cwd=tree, capture_output=True, text=True)
        assert done.returncode == 0, f"{tool} {step}:\n{done.stdout}{done.stderr}"
        assert not list(tree.rglob("*.rej")) and not list(tree.rglob("*.orig")), "no hunk applied with fuzz"
        if tool == "patch":
            assert "fuzz" not in done.stdout and "offset" not in done.stdout, done.stdout
    return tree


@pytest.mark.parametrize("tool", list(TOOLS))
@pytest.mark.parametrize("diff", list(STACKS))
def test_the_diff_applies_exactly_to_upstream(tmp_path, diff, tool):
    tree = applied(tmp_path, diff, tool)
    for line in (EXAMPLES / diff).read_text().splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            assert any(line[1:] in p.read_text() for p in tree.rglob("*.py"))


def test_the_patched_detection_script_runs_the_miniatures_collate_and_pairs_no_image_with_itself(tmp_path):
    import argparse

    import torch

    script = (applied(tmp_path, "torchvision_detection.diff", "patch") / "references/detection/train.py").read_text()
    lines = script.splitlines()
    start = lines.index("    if args.mixup_alpha > 0 or args.cutmix_alpha > 0:")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("    data_loader ="))
    block = "\n".join(line[4:] for line in lines[start:end])
    miniature = load_example("torchvision_detection_recipe")
    assert block.replace("\n\n", "\n") in Path(miniature.__file__).read_text().replace("\n\n", "\n").replace(
        "\n    ", "\n"
    ), "the miniature trains the patched script's block line for line"
    args = argparse.Namespace(mixup_alpha=1.5, cutmix_alpha=1.0, data_augmentation="lsj")
    scope = {"args": args, "device": torch.device("cpu"), "train_collate_fn": None}
    exec(compile(block, "references/detection/train.py", "exec"), scope)
    collate = scope["train_collate_fn"]
    dataset = miniature.CocoLike(8, miniature.preset("lsj"))
    torch.manual_seed(5)
    for size in (2, 3):
        images, targets = collate([dataset[i] for i in range(size)]).finish()
        assert len(targets) == size and all("area" not in t for t in targets)
    assert all(int(collate(samples).finish().perm[0]) == 1 for samples in [[dataset[0], dataset[1]]] * 4)
