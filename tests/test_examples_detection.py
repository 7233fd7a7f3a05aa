"""examples/detection.py: torchvision's Faster R-CNN trains on mixed detection batches, in miniature."""

import pytest
from integration_support import global_state_kept, load_example

pytest.importorskip("torchvision")


@pytest.fixture(autouse=True)
def kept_global_state():
    with global_state_kept():
        yield


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
