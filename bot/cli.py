"""`netcheck` console script: argparse with one subcommand per module in `bot/commands/`.

Only the module of the subcommand being run is imported (`netcheck --help` imports none, `netcheck
lab` never the Slack or Kubernetes clients): start-up time is the CLI's first cost. A module that is
missing does not break the others. Exit codes (docs/cli.md): 0 all ok/skip, 1 a problem was
found, 2 usage or configuration error, 3 could not check (cluster or node unreachable, a needed file
missing). Errors are one line on stderr.

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
from typing import TYPE_CHECKING, Any, NoReturn

from bot import logging as netcheck_logging
from bot.commands import EXIT_USAGE, add_log_level_argument

if TYPE_CHECKING:
    from bot.config import Config
    from probes.api import EngineAPI

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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too by default)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def netcheck_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # only for --version: start-up time

    try:
        return version("netcheck")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


class _Version(argparse.Action):
    """`--version`, with the installed version looked up only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"netcheck {netcheck_version()}")
        parser.exit()


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; of the subcommands, only the one named in `argv` (None: every one) is imported."""
    parser = _Parser(prog="netcheck", description="Why can't pods on this node reach the API server?")
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    add_log_level_argument(parser)
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
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[:_command_position(argv) + 1])
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


def _command_position(argv: Sequence[str]) -> int:
    """Index of the subcommand in argv (the first known command word), or -1."""
    return next((i for i, a in enumerate(argv) if a in COMMANDS), -1)


def entry() -> NoReturn:
    """The console script: `main()`, then out without the interpreter's teardown (`exit_now`)."""
    exit_now(main())


def exit_now(status: int) -> NoReturn:
    """Exit once the output is out and the exit handlers ran, skipping the rest of the interpreter's
    teardown: freeing the Kubernetes, SSH, aiohttp and pydantic stacks object by object took 0.1-0.2 s
    of a two-second check (docs/performance.md#what-keeps-a-check-near-its-critical-path). The atexit
    handlers still run: logging's flush and the kubeconfig loader's removal of its temporary
    certificate files. Only after `main` returned: an exception takes the ordinary way out."""
    import atexit

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # a reader that went away, or a stream already closed
        pass
    atexit._run_exitfuncs()  # the handlers `sys.exit` would run; os._exit runs none
    os._exit(status)


if __name__ == "__main__":
    entry()
