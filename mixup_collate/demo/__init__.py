"""Does Mixup (or CutMix) help, and what does it do to the images? Train a small CNN with and without it and compare.

``python -m mixup_collate.demo`` (or ``mixup-collate demo``) trains the same CNN twice per seed, identical
but for the collate: ``default_collate`` + cross-entropy, and ``MixupCollate`` + ``mixup_cross_entropy``
(Mixup by default; CutMix, or both, with ``--cutmix-alpha``). It prints a table of validation accuracy, loss
and calibration (ECE, mean confidence), a verdict, and writes pictures (Mixup and CutMix samples, ``lam``,
curves, reliability) and ``results.json``.
Needs the ``demo`` extra: ``pip install ".[demo]"`` in a clone (or ``pip install "<wheel>[demo]"``).

The modules follow the data: ``data`` (datasets) -> ``training`` (loaders with the collate, the ``model``,
the training loop, the ``calibration`` of its predictions) -> ``report`` (summary, table, verdict,
``results.json``) and ``plots`` (pictures); ``cli`` parses the options and runs them in that order. The
demo uses the library's public API only.
"""

from .cli import main

__all__ = ["main"]
