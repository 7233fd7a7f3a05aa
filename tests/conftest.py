import pytest
import torch
from hypothesis import HealthCheck, settings

# The only function-scoped fixtures used with @given pick a code path once per test (no state).
settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("ci")

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def devices():
    """The devices every device-parametrised test runs on: the CPU always, CUDA where present."""
    return ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, CUDA])]
