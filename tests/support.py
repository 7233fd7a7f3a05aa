"""Shared test helpers: the CUDA marker, the devices to parametrise over, and sample data as a dataset returns it."""

import pytest
import torch

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def devices():
    """The devices every device-parametrised test runs on: the CPU always, CUDA where present."""
    return ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, CUDA])]


def image_samples(n, shape=(3, 4, 4), dtype=torch.float32, seed=0, num_classes=10):
    """``n`` random ``(image, class)`` samples and the stacked images, as a dataset would return them."""
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        xs = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)
    else:
        xs = torch.rand((n, *shape), generator=g, dtype=dtype)
    return [(xs[i].clone(), i % num_classes) for i in range(n)], xs
