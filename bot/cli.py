"""`netcheck` console script: argparse with one subcommand per module in `bot/commands/`.

Only the module of the subcommand being run is imported (`netcheck --help` imports none, `netcheck
lab` never the Slack or Kubernetes clients): start-up time is the CLI's first cost. A module that is
missing does not break the others. Exit codes: 0 all ok/skip, 1 a problem was found, 2 usage or
configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bot import logging as netcheck_logging

COMMANDS = {
    "check": "probe a node (or every node) and report layer by layer",
    "diff": "compare a node with a healthy node, field by field",
    "fix": "plan, confirm, apply and verify a fix on a node (rolled back if it does not verify)",
    "lab": "the simulated cluster: up, down, status, fault, run",
    "serve": "run the Slack bot (Socket Mode if SLACK_APP_TOKEN is set)",
    "demo": "watch the whole flow in a throw-away lab (needs root)",
}
"""Subcommand modules under bot/commands/, in help order, with the line `netcheck --help` shows for
each (the module's own parser is built only when that subcommand runs)."""

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too by default)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; of the subcommands, only the one named in `argv` (None: every one) is imported."""
    parser = _Parser(prog="netcheck", description="Why can't pods on this node reach the API server?")
    parser.add_argument("--log-level", default="warning", help="debug, info, warning (default), error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    wanted = set(COMMANDS) if argv is None else {a for a in argv if a in COMMANDS}
    for name, line in COMMANDS.items():
        if name not in wanted:
            subparsers.add_parser(name, help=line)  # listed in --help; its module is not needed
            continue
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
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[:_command_position(argv) + 1])
    args = parser.parse_args(argv)
    netcheck_logging.configure(level=args.log_level)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.engine_factory = engine_factory
    return int(args.run(args))


def _command_position(argv: Sequence[str]) -> int:
    """Index of the subcommand in argv (the first known command word), or -1."""
    return next((i for i, a in enumerate(argv) if a in COMMANDS), -1)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
