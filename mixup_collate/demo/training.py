"""The demo's experiment: per seed, the same CNN trained twice, with ``default_collate`` and with ``MixupCollate``.

Both runs of a seed start from the same weights and see the same shuffling and schedule; only the collate
(and with it the loss) differs. The mixed run is named after what its collate does: "mixup", "cutmix" or
"mixup+cutmix" (see ``mixing_name``). Data flows: ``DemoData`` -> ``DataLoader`` (the collate) ->
training loop -> per-epoch validation history.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate

from mixup_collate import MixupCollate, mixup_cross_entropy

from .calibration import Reliability, reliability_of_logits
from .data import DemoData
from .model import build_cnn

__all__ = [
    "PLAIN",
    "SWITCH_PROB",
    "Settings",
    "evaluate",
    "mixing_name",
    "run_experiment",
    "run_names",
    "train_epoch",
    "train_run",
]

PLAIN = "plain"
SWITCH_PROB = 0.5  # with Mixup and CutMix both on, the chance that a sample is cut rather than blended
VAL_BATCH_SIZE = 512


def mixing_name(alpha: float, cutmix_alpha: float) -> str:
    """The mixed run's name: "mixup", "cutmix" or "mixup+cutmix", by which concentrations are on (> 0)."""
    return "+".join(name for name, on in (("mixup", alpha > 0), ("cutmix", cutmix_alpha > 0)) if on)


def run_names(history: dict) -> list[str]:
    """The runs in one seed's history (from ``run_experiment``): "plain", then the mixed run's name."""
    return [run for run in history if run != "seed"]


@dataclass(frozen=True)
class Settings:
    """The options the training loop reads (``max_batches`` None: every batch of each epoch).

    ``alpha`` and ``cutmix_alpha`` configure the mixed run's ``MixupCollate``; 0 turns Mixup or CutMix off.
    """

    epochs: int
    alpha: float
    batch_size: int
    lr: float
    weight_decay: float
    seeds: list[int]
    device: torch.device
    workers: int = 0
    max_batches: int | None = None
    cutmix_alpha: float = 0.0

    @property
    def runs(self) -> tuple[str, str]:
        """The names of the two runs per seed: "plain" and the mixed run's (``mixing_name``)."""
        return PLAIN, mixing_name(self.alpha, self.cutmix_alpha)

    def collate(self, seed: int) -> MixupCollate:
        """The mixed run's collate: Mixup and/or CutMix (each sample cut with ``SWITCH_PROB`` when both are on)."""
        return MixupCollate(
            self.alpha, cutmix_alpha=self.cutmix_alpha, switch_prob=SWITCH_PROB, device=self.device, seed=seed
        )


def _as_input(x: Tensor, device: torch.device) -> Tensor:
    """Inputs on the device as float; ``uint8`` images scaled to ``[0, 1]`` as ``MixupCollate`` does."""
    x = x.to(device)
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def _loader(ds: Dataset, settings: Settings, collate: Callable, seed: int | None) -> DataLoader:
    """A training loader shuffled by ``seed``, or (``seed`` None) an unshuffled validation loader."""
    shuffle = seed is not None
    return DataLoader(
        ds,
        batch_size=settings.batch_size if shuffle else VAL_BATCH_SIZE,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        collate_fn=collate,
        num_workers=settings.workers,
        persistent_workers=settings.workers > 0,
    )


def train_epoch(
    model: nn.Module, loader: DataLoader, opt: Any, sched: Any, settings: Settings
) -> tuple[float, list[Tensor]]:
    """One epoch (at most ``max_batches`` steps): the mean training loss and the ``(B,)`` ``lam`` of each mixed batch.

    A loader batch is ``(x, y)`` from ``default_collate`` or ``(x, y_a, y_b, lam)`` from ``MixupCollate``.
    """
    model.train()
    total, steps, lams = 0.0, 0, []
    for step, batch in enumerate(loader):
        if settings.max_batches and step >= settings.max_batches:
            break
        if len(batch) == 4:
            x, y_a, y_b, lam = batch
            loss = mixup_cross_entropy(model(x), y_a, y_b, lam)
            lams.append(lam.detach().cpu())
        else:
            x, y = batch
            loss = F.cross_entropy(model(_as_input(x, settings.device)), y.to(settings.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total, steps = total + loss.item(), steps + 1
    return total / max(steps, 1), lams


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, float, Reliability]:
    """Plain cross-entropy, accuracy and the reliability bins (``calibration``) over ``(x, y)`` batches."""
    model.eval()
    loss, correct, n = 0.0, 0, 0
    all_logits, labels = [], []
    for x, y in loader:
        logits = model(_as_input(x, device))
        y = y.to(device)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
        all_logits.append(logits)
        labels.append(y)
    return loss / n, correct / n, reliability_of_logits(torch.cat(all_logits), torch.cat(labels))


def train_run(
    state: dict, data: DemoData, settings: Settings, seed: int, run: str
) -> tuple[dict[str, Any], list[Tensor]]:
    """Train a CNN from ``state`` for ``epochs``: with ``default_collate`` if ``run`` is "plain", else mixed.

    Returns the per-epoch ``train_loss``, ``val_loss`` and ``val_acc``, the last epoch's validation
    ``calibration`` (``Reliability.as_dict``), and the ``lam`` of every mixed batch.
    """
    from tqdm import tqdm

    model = build_cnn(data.shape[0], len(data.classes), data.shape[-1]).to(settings.device)
    model.load_state_dict(state)
    collate = default_collate if run == PLAIN else settings.collate(seed)
    train = _loader(data.train, settings, collate, seed)
    val = _loader(data.val, settings, default_collate, None)
    steps = min(len(train), settings.max_batches or len(train))
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=settings.epochs * steps)
    history: dict[str, Any] = {"train_loss": [], "val_loss": [], "val_acc": []}
    lams: list[Tensor] = []
    bar = tqdm(range(settings.epochs), desc=f"seed {seed} {run}", leave=False, unit="epoch")
    for _ in bar:
        train_loss, epoch_lams = train_epoch(model, train, opt, sched, settings)
        history["train_loss"].append(train_loss)
        lams += epoch_lams
        val_loss, val_acc, bins = evaluate(model, val, settings.device)
        history["val_loss"].append(val_loss)
        history["val_acc"].append(val_acc)
        bar.set_postfix(val_acc=f"{100 * val_acc:.1f}%")
    history["calibration"] = bins.as_dict()
    return history, lams


def run_experiment(data: DemoData, settings: Settings) -> tuple[list[dict], Tensor]:
    """Per seed, the plain and the mixed run from the same initial weights.

    Returns one ``{"seed": s, "plain": history, name: history}`` per seed (``name`` the mixed run's, e.g.
    "mixup"), and every drawn ``lam`` as one 1-D tensor (empty when no batch was mixed).
    """
    histories, lams = [], []
    for seed in settings.seeds:
        torch.manual_seed(seed)
        state = copy.deepcopy(build_cnn(data.shape[0], len(data.classes), data.shape[-1]).state_dict())
        runs = {}
        for run in settings.runs:
            runs[run], run_lams = train_run(state, data, settings, seed, run)
            lams += run_lams
        histories.append({"seed": seed, **runs})
    return histories, torch.cat(lams) if lams else torch.empty(0)
