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


def finished(collate, samples):
    """The batch ``collate`` makes of ``samples``, finished (drawn and mixed) at once."""
    return collate(samples).finish()


# The detection samples' image size.
H, W = 24, 30


def boxes_for(n, g):
    xy = torch.rand(n, 2, generator=g) * torch.tensor([W - 6.0, H - 6.0])
    wh = torch.rand(n, 2, generator=g) * 12 + 1
    return torch.cat([xy, torch.minimum(xy + wh, torch.tensor([float(W), float(H)]))], 1)


def detection_samples(b=None, seed=0, masks=False, counts=None):
    """``b`` uint8 images whose pixels say which sample they are, with 0-4 boxes each (plus per-box fields)."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(len(counts) if counts is not None else b or 8):
        n = counts[i] if counts is not None else int(torch.randint(0, 5, (), generator=g))
        image = torch.full((3, H, W), 10 * i, dtype=torch.uint8) + torch.randint(0, 5, (3, H, W), generator=g).byte()
        target = {"boxes": boxes_for(n, g), "labels": torch.randint(1, 9, (n,), generator=g), "image_id": i}
        target["iscrowd"] = torch.zeros(n, dtype=torch.int64)
        if masks:
            target["masks"] = torch.rand(n, H, W, generator=g) > 0.3
        samples.append((image, target))
    return samples
