"""The segmentation examples train on generated data in seconds; the torchvision segmentation patch is sound.

``examples/segmentation.py`` (a tiny FCN with and without per-sample CutMix),
``examples/torchvision_segmentation_recipe.py`` (torchvision's segmentation reference in miniature, on a
generated VOC-like folder) and
``examples/torchvision_segmentation.diff`` (the patch for the real script that the recipe mirrors).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from integration_support import EXAMPLES, load_example
from test_examples import balanced_call, hunks
from torch.utils.data import DataLoader

from mixup_collate import MixupCollate

pytestmark = [pytest.mark.usefixtures("kept_global_state"), pytest.mark.slow]

# The segmentation page quotes this count (added + removed lines); its diff block is the patch file.
PATCH, PATCH_CHANGED_LINES = "torchvision_segmentation.diff", 9
PAGE = EXAMPLES.parent / "docs" / "segmentation.md"


@pytest.fixture(scope="module")
def seg():
    return load_example("segmentation")


@pytest.fixture(scope="module")
def recipe_module():
    return load_example("torchvision_segmentation_recipe")


def neighbours_of_another_class(mask):
    """Pairs of 4-neighbouring pixels, both not void, whose classes differ (the count)."""
    valid = mask != 255
    down = (mask[1:] != mask[:-1]) & valid[1:] & valid[:-1]
    right = (mask[:, 1:] != mask[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    return int(down.sum() + right.sum())


class TestGeneratedShapes:
    def test_samples_are_uint8_images_and_uint8_masks_of_the_classes_and_void(self, seg):
        data = seg.Shapes(12, size=24, seed=3)
        for image, mask in (data[i] for i in range(len(data))):
            assert image.shape == (3, 24, 24) and image.dtype == torch.uint8
            assert mask.shape == (24, 24) and mask.dtype == torch.uint8
            assert set(mask.unique().tolist()) <= {*range(seg.NUM_CLASSES), 255}
        assert (data.masks == 255).any() and (data.masks > 0).logical_and(data.masks < 255).any()

    def test_void_separates_every_pair_of_classes(self, seg):
        """Two touching pixels of different classes never both count: the boundary band between them is void."""
        data = seg.Shapes(16, size=24, seed=4)
        assert all(neighbours_of_another_class(mask) == 0 for mask in data.masks)

    def test_flip_mirrors_image_and_mask_together(self, seg):
        plain, flipping = seg.Shapes(6, size=16, seed=5), seg.Shapes(6, size=16, seed=5, flip=True)
        torch.manual_seed(0)
        flipped = 0
        for i in range(6):
            for _ in range(4):
                image, mask = flipping[i]
                as_is = torch.equal(image, plain.images[i]) and torch.equal(mask, plain.masks[i])
                mirrored = torch.equal(image, plain.images[i].flip(-1)) and torch.equal(mask, plain.masks[i].flip(-1))
                assert as_is or mirrored
                flipped += mirrored and not as_is
        assert flipped > 0


class TestMeanIoU:
    @staticmethod
    def oracle(pred, target, num_classes):
        """Per class, in float64 loops: intersection over union of the non-void pixels; classes never seen skipped."""
        ious = []
        valid = target != 255
        for c in range(num_classes):
            inter = ((pred == c) & (target == c) & valid).sum().double()
            union = (((pred == c) | (target == c)) & valid).sum().double()
            if union > 0:
                ious.append(inter / union)
        return float(torch.stack(ious).mean())

    @pytest.mark.parametrize("seed", range(5))
    def test_equals_the_per_class_formula(self, seg, seed):
        g = torch.Generator().manual_seed(seed)
        target = torch.randint(0, seg.NUM_CLASSES, (3, 9, 9), generator=g, dtype=torch.uint8)
        target[torch.rand(target.shape, generator=g) < 0.2] = 255
        pred = torch.randint(0, seg.NUM_CLASSES, (3, 9, 9), generator=g)
        assert seg.mean_iou(pred, target) == pytest.approx(self.oracle(pred, target, seg.NUM_CLASSES), abs=1e-12)

    def test_void_pixels_never_count(self, seg):
        target = torch.tensor([[0, 1, 255, 255]])
        assert seg.mean_iou(torch.tensor([[0, 1, 2, 3]]), target) == 1.0


class TestSegmentationExample:
    def test_trains_with_and_without_cutmix_and_writes_the_picture(self, seg, tmp_path, capsys):
        picture = tmp_path / "cutmix.png"
        argv = ["--samples", "16", "--size", "16", "--epochs", "1", "-b", "8", "--device", "cpu"]
        results = seg.main([*argv, "--picture", str(picture)])
        assert set(results) == {"plain", "cutmix"}
        assert all(len(v) == 1 and 0 <= v[0] <= 1 for v in results.values())
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        out = capsys.readouterr().out
        assert "plain: mean IoU" in out and "cutmix: mean IoU" in out

    def test_cutmix_run_trains_on_per_sample_boxes_cut_from_images_and_masks_alike(self, seg):
        samples = [seg.Shapes(8, size=20, seed=6)[i] for i in range(8)]
        collate = seg.cutmix_collate(torch.device("cpu"), seed=0)
        assert isinstance(collate, MixupCollate) and (collate.alpha, collate.cutmix_alpha) == (0.0, 1.0)
        x, y_a, y_b, lam = collate(samples)
        images = seg.normalize(torch.stack([s[0] for s in samples]))
        masks = torch.stack([s[1] for s in samples]).long()
        assert lam.shape == (8, 20, 20) and lam.dtype == torch.float32
        assert set(lam.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(y_a, masks)
        perm = [next(j for j in range(8) if torch.equal(y_b[i], masks[j])) for i in range(8)]
        for i, j in enumerate(perm):
            inside = lam[i] == 0
            rows, cols = inside.any(1).nonzero(), inside.any(0).nonzero()
            if inside.any():  # the pasted region is one box
                assert inside.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            expected = torch.where(inside, images[j], images[i])
            torch.testing.assert_close(x[i], expected, rtol=0, atol=1e-5)
        assert (lam == 0).any(), "alpha=0, cutmix_alpha=1: some sample gets a box"


def recipe(module, root, *argv):
    base = ["--data-path", str(root), "--device", "cpu", "-b", "4", "-j", "0", "--epochs", "1", "--print-freq", "100"]
    base += ["--base-size", "32", "--crop-size", "32"]
    return module.main(module.get_args_parser().parse_args([*base, *argv]))


def scripts_criterion(inputs, target):
    """The criterion of torchvision's references/segmentation/train.py before the patch (its formula, restated)."""
    losses = {name: F.cross_entropy(x, target, ignore_index=255) for name, x in inputs.items()}
    return losses["out"] if len(losses) == 1 else losses["out"] + 0.5 * losses["aux"]


class TestTorchvisionSegmentationRecipe:
    def test_the_generated_folder_is_what_VOCSegmentation_reads(self, recipe_module, tmp_path):
        recipe_module.write_voc_like(tmp_path, train=5, val=2, size=24)
        data = torchvision.datasets.VOCSegmentation(tmp_path, image_set="train")
        assert len(data) == 5 and len(torchvision.datasets.VOCSegmentation(tmp_path, image_set="val")) == 2
        masks = torch.stack([torch.as_tensor(np.array(data[i][1])) for i in range(5)])
        assert set(masks.unique().tolist()) <= {*range(recipe_module.NUM_CLASSES), 255} and (masks == 255).any()

    def test_trains_with_cutmix_on_masks_and_the_aux_loss(self, recipe_module, tmp_path):
        result = recipe(recipe_module, tmp_path, "--generate", "8", "--cutmix", "--aux-loss")
        collate = result["collate_fn"]
        assert isinstance(collate, MixupCollate) and collate.enabled and collate.cutmix_alpha == 1.0
        assert result["model"].aux_classifier is not None
        assert len(result["losses"]) == 2 and all(math.isfinite(v) for v in result["losses"])
        assert 0 <= result["miou"] <= 1

    def test_without_cutmix_the_criterion_is_the_scripts_cross_entropy(self, recipe_module, tmp_path):
        """Unmixed batches (``lam = 1``): the patched criterion gives the script's loss, for ``out`` and ``aux``."""
        result = recipe(recipe_module, tmp_path, "--generate", "4", "--aux-loss", "--epochs", "0")
        assert result["collate_fn"].enabled is False
        loader = DataLoader(train_set(recipe_module, tmp_path), batch_size=4, collate_fn=result["collate_fn"])
        image, *target = next(iter(loader))
        y_a, y_b, lam = target
        assert torch.equal(y_a, y_b) and bool((lam == 1).all()) and (y_a == 255).any()
        model = result["model"].double()
        with torch.no_grad():
            output = model(image.double())
        patched = recipe_module.criterion(output, target)
        torch.testing.assert_close(patched, scripts_criterion(output, y_a), rtol=1e-6, atol=1e-6)


def train_set(module, root):
    """The recipe's training set: the generated folder through its train preset (crops of 32)."""
    return torchvision.datasets.VOCSegmentation(root, image_set="train", transforms=module.Preset(True, 32, 32))


class TestSegmentationPatch:
    def test_is_a_well_formed_unified_diff_of_the_counted_size(self):
        text = (EXAMPLES / PATCH).read_text()
        assert text.startswith("--- a/references/segmentation/train.py\n+++ b/references/segmentation/train.py\n")
        changed = 0
        for _, old_count, _, new_count, lines in hunks(text):
            assert all(line[:1] in (" ", "-", "+") for line in lines), "a hunk line without its prefix"
            assert sum(line[:1] in " -" for line in lines) == old_count
            assert sum(line[:1] in " +" for line in lines) == new_count
            changed += sum(line[:1] in "-+" for line in lines)
        assert changed == PATCH_CHANGED_LINES
        assert all(len(line) <= 121 for line in text.splitlines()), "the script's own line length is 120"

    def test_the_runnable_recipe_makes_the_same_collate_call_and_criterion_as_the_patch(self):
        added = [line[1:] for line in (EXAMPLES / PATCH).read_text().splitlines() if line.startswith("+ ")]
        runner = (EXAMPLES / "torchvision_segmentation_recipe.py").read_text().splitlines()
        assert balanced_call(added) == balanced_call(runner)
        loss_line = next(line for line in added if "mixup_cross_entropy(" in line)
        assert loss_line in runner and "ignore_index=255" in loss_line
        assert any("for image, *target in " in line for line in added)

    def test_the_section_prints_the_patch_file_and_its_count(self):
        section = PAGE.read_text()
        block = section.split("```diff\n", 1)[1].split("```", 1)[0]
        assert block == (EXAMPLES / PATCH).read_text()
        body = [line for line in block.splitlines() if not line.startswith(("--- a/", "+++ b/"))]
        added, removed = (sum(line.startswith(c) for line in body) for c in "+-")
        assert f"{PATCH}`, {PATCH_CHANGED_LINES} lines: +{added} -{removed})" in section
