"""Batches pinned from earlier versions: the same seed and settings give the same batches.

Partners, weights, per-sample modes, boxes and targets bit for bit; pixels up to float32 rounding.
The records are ``tests/data/pinned.pt`` and ``tests/data/pinned_shapes.pt`` (``python tests/pinned.py [--shapes]``
on the version each pins): images, and clips, spectrograms and waveforms cut over their last two dimensions,
which the default ``cutmix_dims=(-2, -1)`` keeps doing.
"""

import pytest
import torch
from pinned import CONFIGS, PINNED, PINNED_SHAPES, SHAPE, SHAPED, B, batches, draw_args
from support import CUDA

from mixup_collate import MixupCollate
from mixup_collate.params import BLENDED, CUT, UNMIXED, draw_params

RECORD = torch.load(PINNED, weights_only=True)
RECORD_SHAPES = torch.load(PINNED_SHAPES, weights_only=True)


def assert_same_batches(got, expected, tolerance):
    for a, b in zip(got, expected, strict=True):
        assert a.keys() == b.keys()
        for field, value in b.items():
            if field == "x":
                torch.testing.assert_close(a[field], value, rtol=tolerance, atol=tolerance)
            else:
                assert a[field].dtype == value.dtype and torch.equal(a[field], value), field


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_batches_are_the_recorded_ones(name):
    assert_same_batches(batches(name, MixupCollate), RECORD[name]["batches"], 2**-22)


@pytest.mark.parametrize("name", list(SHAPED))
def test_samples_of_other_ranks_give_the_recorded_batches(name):
    assert_same_batches(batches(name, MixupCollate), RECORD_SHAPES[name]["batches"], 2**-22)


@pytest.mark.parametrize("name", list(SHAPED))
def test_samples_of_other_ranks_get_the_recorded_draws(name):
    recorded = RECORD_SHAPES[name]["params"]
    drawn = draw_params(B, SHAPED[name]["shape"], **draw_args(name), generator=torch.Generator().manual_seed(11))
    for field in ("perm", "lam", "mode"):
        assert torch.equal(getattr(drawn, field), recorded[field]), field
    assert (drawn.boxes is None) == (recorded["boxes"] is None)
    assert drawn.boxes is None or torch.equal(drawn.boxes, recorded["boxes"])


@CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("name", list(CONFIGS) + list(SHAPED))
def test_on_cuda_every_configuration_gives_the_cpus_batches(name):
    """The device paths (mask pastes, per-pixel lam, targets) against the CPU's, configuration by configuration."""
    assert_same_batches(batches(name, MixupCollate, device="cuda"), batches(name, MixupCollate), 1e-6)


@pytest.mark.parametrize("name", [n for n in CONFIGS if n != "disabled"])
def test_the_draws_are_the_recorded_ones(name):
    recorded = RECORD[name]["params"]
    drawn = draw_params(B, SHAPE, **draw_args(name), generator=torch.Generator().manual_seed(11))
    assert torch.equal(drawn.perm, recorded["perm"]) and torch.equal(drawn.lam, recorded["lam"])
    blended = torch.ones(B, dtype=torch.bool)
    if recorded["rows"] is not None:
        blended = torch.zeros(B, dtype=torch.bool)
        blended[recorded["rows"]] = True
    assert torch.equal(drawn.mode == BLENDED, blended)
    if recorded["boxes"] is None:
        assert drawn.boxes is None and not bool((drawn.mode == CUT).any())
    else:
        cut = drawn.mode == CUT
        assert torch.equal(drawn.boxes, recorded["boxes"])
        assert torch.equal(cut | blended, drawn.mode != UNMIXED)
