import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", max_examples=40, deadline=None)
settings.load_profile("ci")

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def devices():
    """The devices every device-parametrised test runs on: the CPU always, CUDA where present."""
    return ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, CUDA])]
