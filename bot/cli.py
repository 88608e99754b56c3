"""`netcheck` console script: argparse with one subcommand per module in `bot/commands/`.

Each module in COMMANDS is imported lazily and optionally, so a command whose module (or its
dependencies) is missing does not break the others. Exit codes (docs/cli.md): 0 all ok/skip,
1 a problem was found, 2 usage or configuration error, 3 could not check (cluster or node
unreachable, a needed file missing). Errors are one line on stderr.

The log level comes from `--log-level` (before or after the subcommand), else NETCHECK_LOG_LEVEL,
else the configuration file's `log_level` (applied by the command once it has read the file), else
warning; a bad value is one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, NoReturn

from bot import logging as netcheck_logging
from bot.commands import EXIT_USAGE, add_log_level_argument

if TYPE_CHECKING:
    from bot.config import Config
    from probes.api import EngineAPI

COMMANDS = ["check", "diff", "fix", "lab", "serve", "demo"]
"""Subcommand modules under bot/commands/, in help order."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too by default)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def netcheck_version() -> str:
    try:
        return version("netcheck")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="netcheck", description="Why can't pods on this node reach the API server?")
    parser.add_argument("--version", action="version", version=f"netcheck {netcheck_version()}")
    add_log_level_argument(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"bot.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == f"bot.commands.{name}"):
                continue  # not written (yet): the CLI works without it
            raise
        add_log_level_argument(module.add_parser(subparsers))
    return parser


def log_level(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, bool]:
    """(level, chosen on the command line or in the environment); ValueError for a bad env value."""
    if getattr(args, "log_level", None):
        return args.log_level, True
    if env.get(netcheck_logging.LEVEL_ENV):
        try:
            return netcheck_logging.parse_level(env[netcheck_logging.LEVEL_ENV]), True
        except ValueError as exc:
            raise ValueError(f"{netcheck_logging.LEVEL_ENV}: {exc}") from None
    return netcheck_logging.DEFAULT_LEVEL, False


def main(argv: Sequence[str] | None = None, *, engine_factory: Callable[[Config], EngineAPI] | None = None,
         ) -> int:
    """Entry point. `engine_factory(config) -> EngineAPI` replaces `bot.wiring.build_engine` (tests)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        level, args.log_level_chosen = log_level(args, os.environ)
    except ValueError as exc:
        print(f"netcheck: {exc}", file=sys.stderr)
        return EXIT_USAGE
    netcheck_logging.configure(level=level)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.engine_factory = engine_factory
    return int(args.run(args))


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
