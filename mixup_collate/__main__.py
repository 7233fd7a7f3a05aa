"""``python -m mixup_collate COMMAND``: the ``mixup-collate`` command line (see ``--help``)."""

from .demo.cli import command

raise SystemExit(command())
