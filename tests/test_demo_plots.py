"""The demo's pictures: the folded Beta density drawn over the ``lam`` histogram."""

import pytest
import torch

from mixup_collate.demo.plots import folded_beta_pdf

stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("alpha", [0.2, 0.4, 1.0, 3.0])
def test_folded_beta_pdf_is_twice_the_beta_density(alpha):
    t = torch.linspace(0.5, 0.999, 101, dtype=torch.float64)
    expected = 2 * stats.beta.pdf(t.numpy(), alpha, alpha)
    assert folded_beta_pdf(t, alpha).numpy() == pytest.approx(expected, rel=1e-10)
