"""``python -m mixup_collate.demo [options]``: run the demo (see ``--help``)."""

from .cli import main

raise SystemExit(main())
