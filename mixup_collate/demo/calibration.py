"""Calibration of a classifier's predictions: reliability bins and the expected calibration error (ECE).

A prediction's confidence is the probability it gives its predicted class. The ``M`` equal-width bins are
``((k - 1) / M, k / M]`` (a confidence of exactly 0 goes in the first). Per bin the counts are kept, not the
ratios, so the bins of several runs add up exactly (``Reliability.pooled``). The ECE is the standard
``sum_k (n_k / n) |accuracy_k - confidence_k|`` over the non-empty bins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["BINS", "Reliability", "reliability", "reliability_of_logits"]

BINS = 15


@dataclass(frozen=True, eq=False)  # tensors do not compare to one bool
class Reliability:
    """Per confidence bin: ``counts`` (predictions), ``correct`` (those right) and ``confidence_sum``, each ``(M,)``."""

    counts: Tensor
    correct: Tensor
    confidence_sum: Tensor

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def edges(self) -> Tensor:
        """The ``M + 1`` bin edges ``k / M``, float64, from 0 to 1."""
        return _edges(len(self.counts))

    @property
    def share(self) -> Tensor:
        """Each bin's share of the predictions, ``(M,)``."""
        return self.counts.double() / self.total

    @property
    def accuracy(self) -> Tensor:
        """Accuracy per bin, ``(M,)``; NaN for an empty bin."""
        return self.correct.double() / self.counts.double()

    @property
    def confidence(self) -> Tensor:
        """Mean confidence per bin, ``(M,)``; NaN for an empty bin."""
        return self.confidence_sum / self.counts.double()

    @property
    def ece(self) -> float:
        """The expected calibration error: the share-weighted mean of ``|accuracy - confidence|`` over the bins."""
        gap = (self.correct.double() - self.confidence_sum).abs()
        return (gap.sum() / self.total).item()

    @property
    def mean_confidence(self) -> float:
        """The mean confidence of the predicted class over all predictions."""
        return (self.confidence_sum.sum() / self.total).item()

    @property
    def overall_accuracy(self) -> float:
        return int(self.correct.sum()) / self.total

    def as_dict(self) -> dict[str, Any]:
        """For ``results.json``: the counts, the per-bin ratios (None for an empty bin) and the totals."""
        return {
            "ece": self.ece,
            "mean_confidence": self.mean_confidence,
            "accuracy": self.overall_accuracy,
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "correct": self.correct.tolist(),
            "confidence_sum": self.confidence_sum.tolist(),
            "bin_accuracy": [None if v != v else v for v in self.accuracy.tolist()],
            "bin_confidence": [None if v != v else v for v in self.confidence.tolist()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reliability:
        """The bins back from ``as_dict``."""
        return cls(
            torch.tensor(d["counts"], dtype=torch.int64),
            torch.tensor(d["correct"], dtype=torch.int64),
            torch.tensor(d["confidence_sum"], dtype=torch.float64),
        )

    @classmethod
    def pooled(cls, parts: Iterable[Reliability]) -> Reliability:
        """The bins of all ``parts`` (same bin count) together, as if their predictions were binned at once."""
        parts = list(parts)
        if not parts or len({len(p.counts) for p in parts}) != 1:
            raise ValueError(f"pooled needs one or more Reliability with the same bin count, got {len(parts)}")
        return cls(*(torch.stack(t).sum(0) for t in zip(*((p.counts, p.correct, p.confidence_sum) for p in parts))))


def _edges(bins: int) -> Tensor:
    return torch.arange(bins + 1, dtype=torch.float64) / bins


def reliability(confidence: Tensor, correct: Tensor, bins: int = BINS) -> Reliability:
    """Bin ``N`` predictions by ``confidence`` (``(N,)``, in ``[0, 1]``).

    ``correct`` (``(N,)`` bool) marks the right ones.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    if confidence.dim() != 1 or correct.shape != confidence.shape or len(confidence) == 0:
        raise ValueError(
            f"confidence and correct must be 1-D of one non-zero length, got {tuple(confidence.shape)} and "
            f"{tuple(correct.shape)}"
        )
    if correct.dtype != torch.bool:
        raise ValueError(f"correct must be a bool tensor, got {correct.dtype}")
    conf = confidence.detach().double().cpu()
    if not bool(((conf >= 0) & (conf <= 1)).all()):
        raise ValueError(f"confidence must lie in [0, 1], got values from {conf.min().item()} to {conf.max().item()}")
    index = torch.bucketize(conf, _edges(bins)[1:-1])  # right-closed: edges[k-1] < c <= edges[k] goes in bin k
    right = correct.detach().cpu()
    counts = torch.bincount(index, minlength=bins)
    hits = torch.bincount(index[right], minlength=bins)
    sums = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, conf)
    return Reliability(counts, hits, sums)


def reliability_of_logits(logits: Tensor, labels: Tensor, bins: int = BINS) -> Reliability:
    """``reliability`` of ``(N, C)`` logits against ``(N,)`` class labels: softmax confidence of the argmax."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    confidence, predicted = logits.detach().double().softmax(1).max(1)
    return reliability(confidence, predicted == labels.to(predicted.device), bins)
