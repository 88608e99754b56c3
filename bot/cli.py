"""`netcheck` console script: argparse with one subcommand per module in `bot/commands/`.

Each module in COMMANDS is imported lazily and optionally, so a command whose module (or its
dependencies) is missing does not break the others. Exit codes: 0 all ok/skip, 1 a problem was
found, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bot import logging as netcheck_logging

COMMANDS = ["check", "diff", "fix", "lab", "serve", "demo"]
"""Subcommand modules under bot/commands/, in help order."""

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too by default)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="netcheck", description="Why can't pods on this node reach the API server?")
    parser.add_argument("--log-level", default="warning", help="debug, info, warning (default), error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"bot.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == f"bot.commands.{name}"):
                continue  # not written (yet): the CLI works without it
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, *, engine_factory: Callable[..., Any] | None = None) -> int:
    """Entry point. `engine_factory(config) -> Engine` replaces `bot.wiring.build_engine` (tests)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    netcheck_logging.configure(level=args.log_level)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.engine_factory = engine_factory
    return int(args.run(args))


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
