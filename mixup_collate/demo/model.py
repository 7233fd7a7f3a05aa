"""The demo's model: a small VGG-style CNN sized to the images."""

from __future__ import annotations

import math

from torch import nn

__all__ = ["build_cnn"]


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def build_cnn(in_channels: int, num_classes: int, image_size: int, width: int = 32) -> nn.Sequential:
    """A small VGG-style CNN: conv stages halving the size down to about 4 px, then global average pooling.

    Maps ``(N, in_channels, image_size, image_size)`` images to ``(N, num_classes)`` logits.
    """
    stages = max(1, round(math.log2(image_size / 4)))
    layers: list[nn.Module] = []
    c = in_channels
    for i in range(stages):
        out = width * 2 ** min(i, 2)
        layers += [_conv(c, out), _conv(out, out), nn.MaxPool2d(2)]
        c = out
    layers += [_conv(c, 2 * c), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * c, num_classes)]
    return nn.Sequential(*layers)
