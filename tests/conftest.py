import pytest
from hypothesis import HealthCheck, settings
from integration_support import global_state_kept

# The only function-scoped fixtures used with @given pick a code path once per test (no state).
settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("ci")


@pytest.fixture(params=["vectorised", "row_loop"])
def kernel_path(request, monkeypatch):
    """Run a test on the mix's vectorised kernel and on its in-place row-by-row loop (forced for any size)."""
    from mixup_collate import mix

    if request.param == "row_loop":
        monkeypatch.setattr(mix, "ROW_LOOP_MIN_BYTES", 0)
        monkeypatch.setattr(mix, "CACHE_BYTES", 0)
    return request.param


@pytest.fixture(params=["mask", "slices"])
def paste_path(request, monkeypatch):
    """Run a test with paste's batch-wide mask and with its box-by-box slices (forced for any size on the CPU)."""
    from mixup_collate import boxes

    monkeypatch.setattr(boxes, "SLICE_MIN_BYTES", 10**12 if request.param == "mask" else 0)
    return request.param


@pytest.fixture
def kept_global_state():
    """Threads, the global RNGs and the environment as they were, after a test that runs a script or a framework."""
    with global_state_kept():
        yield
