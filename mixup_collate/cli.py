"""The ``mixup-collate`` command: ``mixup-collate demo [options]`` (see ``mixup-collate demo --help``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _demo(argv: Sequence[str]) -> int:
    from . import demo

    return demo.main(argv, prog="mixup-collate demo")


COMMANDS = {"demo": (_demo, "train a small CNN with and without Mixup, compare, and draw pictures")}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixup-collate", description="Mixup as a DataLoader collate function: tools and a demo."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``mixup-collate COMMAND ...``; everything after the command goes to that command's own parser."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]][0](argv[1:])
    parser = _parser()
    parser.parse_args(argv)
    parser.print_help()
    return 2
