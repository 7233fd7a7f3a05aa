"""The demo's CNN: logits of the right shape for the bundled digits and for resized ImageFolder images."""

import pytest
import torch

from mixup_collate.demo.model import build_cnn


@pytest.mark.parametrize("channels, classes, size", [(1, 10, 8), (3, 2, 16), (3, 5, 32)])
def test_cnn_maps_images_to_logits(channels, classes, size):
    torch.manual_seed(0)
    model = build_cnn(channels, classes, size).eval()
    assert model(torch.rand(4, channels, size, size)).shape == (4, classes)
