"""CLI subcommands: each module `bot/commands/<name>.py` exposes `add_parser(subparsers)` and
`run(args) -> int` (a sync entry that runs asyncio itself); `bot/cli.py` lists them in COMMANDS.

Shared here: the exit statuses every command uses (`error_status` maps an error to one, `fail`
prints its one line), `add_config_argument` (`--config PATH`), `add_log_level_argument`
(`--log-level` on the top parser and on every subcommand), `build_engine(args, config)` and
`load_config(args)`, which reads the configuration and applies its `log_level` unless the command
line or NETCHECK_LOG_LEVEL already chose one.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from probes.errors import ClusterError, ConfigMissing, NetcheckError, TransportUnavailable

if TYPE_CHECKING:
    from bot.config import Config
    from probes.api import EngineAPI

EXIT_OK = 0
EXIT_PROBLEM = 1
"""A problem was found (check), or the fix failed and was rolled back (fix)."""
EXIT_USAGE = 2
"""Usage, configuration or invalid input: what was typed or written is wrong; nothing changed."""
EXIT_UNCHECKED = 3
"""Could not check: the cluster API or the node unreachable, a needed file (config, kubeconfig) missing."""
UNREACHABLE = (ClusterError, TransportUnavailable, ConfigMissing)
"""Errors that mean "could not look", not "what was asked is wrong": EXIT_UNCHECKED."""


def error_status(exc: NetcheckError) -> int:
    """The exit status of an error that ended a command before it had a result."""
    return EXIT_UNCHECKED if isinstance(exc, UNREACHABLE) else EXIT_USAGE


def fail(command: str, message: str, code: int) -> int:
    """One line on stderr, `netcheck COMMAND: message`; returns `code` (the exit status)."""
    print(f"netcheck {command}: {message}", file=sys.stderr, flush=True)
    return code


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="PATH", default=None,
        help="configuration file (YAML; default: $NETCHECK_CONFIG, else built-in defaults)",
    )


def _level(value: str) -> str:
    from bot.logging import parse_level

    try:
        return parse_level(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    """SUPPRESS: a subcommand's parser must not reset a level given before the subcommand."""
    parser.add_argument(
        "--log-level", type=_level, default=argparse.SUPPRESS, metavar="LEVEL",
        help="debug, info, warning or error (default: $NETCHECK_LOG_LEVEL, else the config's "
             "log_level, else warning)",
    )


def load_config(args: argparse.Namespace) -> Config:
    """The configuration of `args.config` (or NETCHECK_CONFIG); its log_level takes effect here."""
    from bot import config as config_module
    from bot import logging as netcheck_logging

    config = config_module.load(getattr(args, "config", None))
    if not getattr(args, "log_level_chosen", True):
        netcheck_logging.configure(level=config.log_level)
    return config


def build_engine(args: argparse.Namespace, config: Config) -> EngineAPI:
    """The engine for `config`: `bot.cli.main`'s `engine_factory` (tests) when given, else
    `bot.wiring.build_engine` (imported here, late, so `--help` needs no client libraries)."""
    from bot import wiring

    factory = getattr(args, "engine_factory", None) or wiring.build_engine
    return factory(config)
