"""examples/detection.py: torchvision's Faster R-CNN trains on mixed detection batches, in miniature."""

import re

import pytest
import torch
from integration_support import load_example

pytestmark = [pytest.mark.usefixtures("kept_global_state"), pytest.mark.slow]

pytest.importorskip("torchvision")


def test_every_run_trains_and_reports_its_recall_and_the_picture_is_drawn(tmp_path):
    picture = tmp_path / "mixed.png"
    results = load_example("detection").main(["--steps", "2", "--eval-samples", "8", "--picture", str(picture)])
    assert set(results) == {"plain", "mixup", "cutmix"} and all(0 <= r <= 1 for r in results.values())
    assert picture.stat().st_size > 1000


def test_the_generated_boxes_frame_their_shapes_exactly():
    shapes = load_example("detection").Shapes(16, 0)
    for i in range(len(shapes)):
        image, target = shapes[i]
        for x0, y0, x1, y1 in target["boxes"].int().tolist():
            inside = image[:, y0:y1, x0:x1].float().mean(0)
            assert inside.max() > image.float().mean(0).median(), "the shape is brighter than the background"


PATCH, PATCH_CHANGED_LINES = "torchvision_detection.diff", 16


def recipe(*argv):
    module = load_example("torchvision_detection_recipe")
    return module.main(module.get_args_parser().parse_args(["--steps", "2", *argv]))


class TestTorchvisionDetectionPatch:
    def test_is_a_well_formed_unified_diff_of_the_counted_size(self):
        from integration_support import EXAMPLES

        lines = (EXAMPLES / PATCH).read_text().splitlines()
        assert lines[0] == "--- a/references/detection/train.py" and lines[1] == "+++ b/references/detection/train.py"
        changed = 0
        hunks = [i for i, line in enumerate(lines) if line.startswith("@@")]
        for start, end in zip(hunks, [*hunks[1:], len(lines)]):
            old, new = (int(n) for n in re.findall(r",(\d+)", lines[start])[:2])
            body = lines[start + 1 : end]
            assert sum(line[:1] in " -" for line in body) == old and sum(line[:1] in " +" for line in body) == new
            changed += sum(line[:1] in "+-" for line in body)
        assert changed == PATCH_CHANGED_LINES <= 16
        assert all(len(line) <= 121 for line in lines), "the script's own line length is 120"

    def test_the_miniature_has_the_patchs_collate_block_line_for_line(self):
        from integration_support import EXAMPLES

        added = [line[1:] for line in (EXAMPLES / PATCH).read_text().splitlines() if line.startswith("+ ")]
        block = [line for line in added if "parser.add_argument" not in line]
        runner = (EXAMPLES / "torchvision_detection_recipe.py").read_text()
        assert "\n".join(block) in runner.replace("\n\n", "\n")

    def test_trains_with_mixup_and_cutmix_on_one_size_per_batch(self):
        result = recipe("--data-augmentation", "lsj", "--mixup-alpha", "1.5", "--cutmix-alpha", "1.0")
        assert result["collate_fn"].box_targets and len(result["losses"]) == 2

    def test_the_lsj_crop_leaves_area_and_iscrowd_stale_as_the_scripts_does_which_box_target_keys_leaves_out(self):
        from mixup_collate import MixupCollate

        module = load_example("torchvision_detection_recipe")
        dataset = module.CocoLike(16, module.preset("lsj"))
        torch.manual_seed(5)  # the crop draws from the global generator (restored after the test): 2 drop boxes
        samples = [dataset[i] for i in range(len(dataset))]
        stale = [i for i, (_, t) in enumerate(samples) if len(t["area"]) != len(t["boxes"])]
        assert stale, "the miniature's crop drops boxes, as the script's does"
        with pytest.raises(ValueError, match=f"sample {stale[0]}'s target 'area'.*box_target_keys"):
            MixupCollate(1.0, box_targets=True, device="cpu")(samples)

    def test_another_policy_is_refused_with_one_clear_line(self):
        with pytest.raises(RuntimeError, match="needs one image size per batch: use --data-augmentation lsj"):
            recipe("--mixup-alpha", "1.5")

    def test_without_mixing_the_script_keeps_its_own_collate(self):
        assert recipe()["collate_fn"].__name__ == "collate_fn"

    def test_the_page_prints_the_patch_and_its_count(self):
        from integration_support import EXAMPLES

        page = (EXAMPLES.parent / "docs" / "detection.md").read_text()
        assert f"```diff\n{(EXAMPLES / PATCH).read_text()}```" in page
        lines = (EXAMPLES / PATCH).read_text().splitlines()[2:]
        added, removed = (sum(line.startswith(c) for line in lines) for c in "+-")
        assert f"`examples/{PATCH}`, {PATCH_CHANGED_LINES} lines: +{added} -{removed}" in page
