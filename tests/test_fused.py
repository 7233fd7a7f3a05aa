"""The fused kernel (``mixup_collate.fused``): every mode, dtype, region rank, channel dimension, layout and dense
target kind against a float64 oracle and against the torch path.

Without a GPU the kernel runs under Triton's interpreter, which is a per-process switch: ``test_the_kernel_under_
the_interpreter`` runs this module's ``TestKernel`` in a subprocess with ``TRITON_INTERPRET=1`` and
``MIXUP_COLLATE_KERNEL=triton`` (there the tests run; anywhere else they skip). CUDA tests compare the compiled
kernel with the torch path, check that finishing waits for nothing, and count the launches.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from oracles import mixup_reference, paste_reference
from support import CUDA

from mixup_collate import MixupCollate
from mixup_collate.params import BLENDED, CUT, UNMIXED, draw_params

triton = pytest.importorskip("triton")
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1" and os.environ.get("MIXUP_COLLATE_KERNEL") == "triton"
interpreted = pytest.mark.skipif(not INTERPRETED, reason="runs in test_the_kernel_under_the_interpreter's subprocess")


def batch(shape, dtype, seed=0, n=5):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)
    return torch.rand((n, *shape), generator=g).to(dtype)


def every_mode(n, shape, dims, seed=0):
    """Draws with unmixed, blended and cut samples in one batch."""
    for s in range(seed, seed + 200):
        g = torch.Generator().manual_seed(s)
        p = draw_params(n, shape, alpha=0.8, cutmix_alpha=1.0, prob=0.8, cutmix_dims=dims, generator=g)
        if {UNMIXED, BLENDED, CUT} <= set(p.mode.tolist()):
            return p
    raise AssertionError("no draw with every mode")


def oracle(x, p, scale, shift):
    """Float64: blended rows by the Mixup formula, cut rows with their region pasted, then ``* scale + shift``."""
    mixed = x.double().clone()
    blend = p.mode == BLENDED
    mixed[blend] = mixup_reference(x, p.perm, p.lam)[blend]
    if p.boxes is not None:
        cut = p.mode == CUT
        pasted = paste_reference(x, p.perm.tolist(), p.boxes.tolist(), p.dims)
        mixed[cut] = pasted[cut]
    return mixed * scale + shift


def pixel_lam_reference(p, sizes, dims):
    """Float64 ``(B, *sizes)``: ``lam`` where blended, 0 inside a cut sample's region and 1 outside, 1 unmixed."""
    out = torch.ones((len(p.perm), *sizes), dtype=torch.float64)
    for i, (mode, lam) in enumerate(zip(p.mode.tolist(), p.lam.tolist())):
        if mode == BLENDED:
            out[i] = lam
        elif mode == CUT:
            edges = p.boxes[i].tolist()
            out[(i, *(slice(a, b) for a, b in zip(edges[0::2], edges[1::2])))] = 0.0
    return out


def tolerance(dtype):
    return {torch.float32: 1e-6, torch.bfloat16: 2**-7, torch.float16: 2**-10}[dtype]


def finished_with(kernel, collate_kwargs, samples):
    """The batch a collate finishes with ``MIXUP_COLLATE_KERNEL=kernel``; the environment is restored after."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MIXUP_COLLATE_KERNEL", kernel)
        return MixupCollate(**collate_kwargs, device=collate_kwargs.pop("device", "cpu"), seed=3)(samples).finish()


def interpreter_case(device):
    """The kernel's outputs for fixed draws on ``device``: every mode, three region ranks, a normalisation."""
    from mixup_collate.fused import finish_inputs, move_draws
    from mixup_collate.mix import affine_constants

    outputs = []
    for shape, dims in [((3, 11), (-1,)), ((3, 5, 7), (-2, -1)), ((3, 4, 5, 6), (-3, -2, -1))]:
        x = batch(shape, torch.uint8).to(device)
        p = every_mode(5, shape, dims)
        scale, shift = affine_constants(x, (0.4, 0.5, 0.6), (0.2, 0.3, 0.25), torch.float32)
        draws = move_draws(p.perm, p.lam, p.mode.long(), p.boxes, None, lambda t: t.to(device))
        outputs.append(finish_inputs(x, draws, p.dims, torch.float32, scale, shift, None, False).cpu())
    return outputs


@interpreted
class TestKernel:
    @pytest.mark.parametrize("in_dtype", [torch.uint8, torch.float32, torch.float16, torch.bfloat16])
    @pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16, torch.float16])
    def test_every_mode_matches_the_float64_oracle(self, in_dtype, out_dtype):
        from mixup_collate.fused import finish_inputs, move_draws
        from mixup_collate.mix import affine_constants

        x = batch((3, 5, 7), in_dtype)
        p = every_mode(5, (3, 5, 7), (-2, -1))
        mean, std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.25)
        scale, shift = affine_constants(x, mean, std, out_dtype)
        draws = move_draws(p.perm, p.lam, p.mode.long(), p.boxes, None, lambda t: t)
        got = finish_inputs(x, draws, p.dims, out_dtype, scale, shift, None, False)
        unit = 1 / 255 if in_dtype == torch.uint8 else 1.0
        m, s = (torch.tensor(v, dtype=torch.float64).view(3, 1, 1) for v in (mean, std))
        want = oracle(x, p, unit / s, -m / s)
        assert got.dtype == out_dtype
        torch.testing.assert_close(got.double(), want, rtol=tolerance(out_dtype), atol=tolerance(out_dtype) * 4)

    @pytest.mark.parametrize(
        "shape, dims, channel_dim",
        [
            ((3, 11), (-1,), None),
            ((2, 5, 7), (-2, -1), None),
            ((3, 4, 5, 6), (-3, -2, -1), None),
            ((4, 3, 5, 6), (-4, -2, -1), -3),
            ((3, 4, 5, 6), (-4,), -4),
            ((1, 9, 13), (-1,), None),
        ],
    )
    def test_regions_over_one_to_three_dimensions_and_any_channel_dimension(self, shape, dims, channel_dim):
        from mixup_collate.fused import finish_inputs, move_draws
        from mixup_collate.mix import affine_constants

        x = batch(shape, torch.uint8, seed=len(shape))
        p = every_mode(5, shape, dims)
        channels = shape[0 if channel_dim is None else len(shape) + channel_dim]
        mean, std = tuple(0.1 * (c + 1) for c in range(channels)), tuple(0.2 + 0.05 * c for c in range(channels))
        scale, shift = affine_constants(x, mean, std, torch.float32, channel_dim)
        draws = move_draws(p.perm, p.lam, p.mode.long(), p.boxes, None, lambda t: t)
        got = finish_inputs(x, draws, p.dims, torch.float32, scale, shift, channel_dim, False)
        view = [1] * len(shape)
        view[0 if channel_dim is None else len(shape) + channel_dim] = channels
        m, s = (torch.tensor(v, dtype=torch.float64).view(view) for v in (mean, std))
        torch.testing.assert_close(got.double(), oracle(x, p, 1 / 255 / s, -m / s), rtol=1e-6, atol=4e-6)

    @pytest.mark.parametrize(
        "target_shape, dims, dtype, mixed",
        [
            ((5, 7), (-2, -1), torch.uint8, False),
            ((5, 7), (-2, -1), torch.int64, False),
            ((11,), (-1,), torch.int32, False),
            ((3, 4, 5), (-3, -2, -1), torch.uint8, False),
            ((2, 5, 7), (-2, -1), torch.float32, False),
            ((2, 5, 7), (-2, -1), torch.float32, True),
            ((5, 7), (-2, -1), torch.float16, True),
        ],
    )
    def test_dense_targets_in_one_launch_match_the_float64_oracle(self, target_shape, dims, dtype, mixed):
        from oracles import dense_mix_reference

        from mixup_collate.fused import finish_dense, move_draws

        sizes = target_shape[-len(dims) :]
        p = every_mode(5, (3, *sizes), dims)
        y = batch(target_shape, dtype if dtype.is_floating_point else torch.uint8).to(dtype)
        draws = move_draws(p.perm, p.lam, p.mode.long(), p.boxes, None, lambda t: t)
        y_a, y_b, lam = finish_dense(y, draws, sizes, mixed)
        assert lam.dtype == torch.float32 and lam.shape == (5, *sizes)
        torch.testing.assert_close(lam.double(), pixel_lam_reference(p, sizes, dims), rtol=0, atol=1e-7)
        if mixed:
            want = dense_mix_reference(y, p.perm, pixel_lam_reference(p, sizes, dims))
            torch.testing.assert_close(y_a.double(), want, rtol=tolerance(dtype), atol=tolerance(dtype))
            assert y_b is y_a
        else:
            assert y_a.dtype == y_b.dtype == (dtype if dtype.is_floating_point else torch.int64)
            assert torch.equal(y_a, y.to(y_a.dtype)) and torch.equal(y_b, y[p.perm].to(y_b.dtype))

    def test_channels_last_writes_the_same_values_in_the_other_layout(self):
        from mixup_collate.fused import finish_inputs, move_draws

        x = batch((3, 5, 7), torch.uint8)
        p = every_mode(5, (3, 5, 7), (-2, -1))
        draws = move_draws(p.perm, p.lam, p.mode.long(), p.boxes, None, lambda t: t)
        got = finish_inputs(x, draws, p.dims, torch.float32, 1 / 255, None, None, True)
        assert got.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(got.double(), oracle(x, p, 1 / 255, 0.0), rtol=1e-6, atol=1e-6)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"alpha": 0.8},
            {"alpha": 0.8, "cutmix_alpha": 1.0, "prob": 0.8},
            {"alpha": 0, "cutmix_alpha": 1.0, "mean": (0.4, 0.5, 0.6), "std": (0.2, 0.3, 0.25)},
            {"alpha": 0.8, "cutmix_alpha": 1.0, "dtype": "bfloat16", "channels_last": True},
            {"alpha": 0.8, "cutmix_alpha": 1.0, "soft_targets": True, "num_classes": 3},
            {"alpha": 0.8, "cutmix_alpha": 1.0, "prob": 0.8, "dense_targets": True},
            {"alpha": 0.8, "cutmix_alpha": 1.0, "dense_targets": True, "stack_y": False, "float_maps": True},
            {"enabled": False},
        ],
    )
    def test_the_collate_finishes_as_on_the_torch_path(self, kwargs):
        kwargs = dict(kwargs)
        float_maps, dense = kwargs.pop("float_maps", False), kwargs.get("dense_targets", False)
        x = batch((3, 5, 7), torch.uint8, n=6)
        g = torch.Generator().manual_seed(1)
        targets = torch.rand(6, 5, 7, generator=g) if float_maps else torch.randint(0, 3, (6, 5, 7), generator=g)
        samples = [(x[i], targets[i] if dense else i % 3) for i in range(6)]
        torch_path = finished_with("torch", dict(kwargs), samples)
        fused_path = finished_with("triton", dict(kwargs), samples)
        assert type(fused_path) is type(torch_path)
        for a, b in zip(torch_path, fused_path):
            assert a.dtype == b.dtype and a.shape == b.shape
            if a.is_floating_point():
                torch.testing.assert_close(b.float(), a.float(), rtol=tolerance(a.dtype), atol=tolerance(a.dtype) * 4)
            else:
                assert torch.equal(a, b)
        assert torch.equal(fused_path.perm, torch_path.perm)


@pytest.mark.slow
def test_the_kernel_under_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "MIXUP_COLLATE_KERNEL": "triton"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::TestKernel"],
        cwd=Path(__file__).parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout.splitlines()[-1]


class TestTheHostStep:
    """Finishing a batch dispatches the same number of tensor operations whatever its size: nothing per sample."""

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"alpha": 0.4},
            {"alpha": 0, "cutmix_alpha": 1.0},
            {"alpha": 0.8, "cutmix_alpha": 1.0, "prob": 0.8},
            {"alpha": 0.8, "cutmix_alpha": 1.0, "prob": 0.8, "dense_targets": True},
        ],
    )
    def test_tensor_operations_do_not_grow_with_the_batch(self, kwargs):
        from torch.utils._python_dispatch import TorchDispatchMode

        class Count(TorchDispatchMode):
            count = 0

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                Count.count += 1
                return func(*args, **(kwargs or {}))

        counts = []
        for n in (8, 64):
            x = batch((3, 4, 4), torch.uint8, n=n)
            dense = kwargs.get("dense_targets", False)
            samples = [(x[i], torch.zeros(4, 4, dtype=torch.uint8) if dense else i % 3) for i in range(n)]
            collate = MixupCollate(**kwargs, device="cpu", seed=0)
            collate(samples).finish()  # the first batch builds its constants
            Count.count = 0
            with Count():
                collate(samples).finish()
            counts.append(Count.count)
        assert counts[0] == counts[1], counts


@pytest.mark.cuda
@CUDA
class TestOnCuda:
    CASES = [
        {"alpha": 0.4},
        {"alpha": 0, "cutmix_alpha": 1.0},
        {"alpha": 0.8, "cutmix_alpha": 1.0, "prob": 0.8},
        {"alpha": 0.8, "cutmix_alpha": 1.0, "prob": 0.8, "dense_targets": True},
    ]

    def samples(self, kwargs, n=16):
        x = batch((3, 32, 32), torch.uint8, n=n)
        dense = kwargs.get("dense_targets", False)
        return [(x[i], torch.randint(0, 3, (32, 32)) if dense else i % 3) for i in range(n)]

    @pytest.mark.parametrize("kwargs", CASES)
    def test_the_compiled_kernel_gives_the_torch_paths_batch(self, kwargs):
        samples = self.samples(kwargs)
        torch_path = finished_with("torch", {**kwargs, "device": "cuda"}, samples)
        fused_path = finished_with("auto", {**kwargs, "device": "cuda"}, samples)
        for a, b in zip(torch_path, fused_path):
            if a.is_floating_point():
                torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
            else:
                assert torch.equal(a, b)

    def test_the_compiled_kernel_gives_the_interpreters_values(self, tmp_path):
        script = (
            "import sys, torch\n"
            "sys.path.insert(0, 'tests')\n"
            "from test_fused import interpreter_case\n"
            "torch.save(interpreter_case('cpu'), sys.argv[1])\n"
        )
        env = {**os.environ, "TRITON_INTERPRET": "1", "MIXUP_COLLATE_KERNEL": "triton"}
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "interpreted.pt")],
            cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        interpreted = torch.load(tmp_path / "interpreted.pt")
        compiled = interpreter_case("cuda")
        for a, b in zip(interpreted, compiled):
            torch.testing.assert_close(b.cpu(), a, rtol=1e-6, atol=1e-6)

    @pytest.mark.parametrize("kwargs", CASES)
    def test_finishing_waits_for_nothing_and_launches_three_times_for_classification(self, kwargs):
        samples = self.samples(kwargs)
        collate = MixupCollate(**kwargs, device="cuda", seed=0)
        collate(samples).finish()  # warm: constants, the compiled kernel
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            torch.cuda.set_sync_debug_mode("error")  # any wait for the device raises
            try:
                collate(samples).finish()
            finally:
                torch.cuda.set_sync_debug_mode("default")
            torch.cuda.synchronize()
        launches = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        # The input's and the draws' copies and one kernel; dense targets add their copy and one kernel.
        assert len(launches) <= (5 if kwargs.get("dense_targets") else 3), [e.name for e in launches]
