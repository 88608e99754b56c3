"""CLI subcommands: each module `bot/commands/<name>.py` exposes `add_parser(subparsers)` and
`run(args) -> int` (a sync entry that runs asyncio itself); `bot/cli.py` lists them in COMMANDS.

Shared here: the exit statuses every command uses, `add_config_argument` (`--config PATH`),
`add_log_level_argument` (`--log-level` on the top parser and on every subcommand) and
`load_config(args)`, which reads the configuration and applies its `log_level` unless the command
line or NETCHECK_LOG_LEVEL already chose one.
"""

from __future__ import annotations

import argparse
from typing import Any

EXIT_OK = 0
EXIT_PROBLEM = 1
"""A problem was found (check), or the fix failed and was rolled back (fix)."""
EXIT_USAGE = 2
"""Usage, configuration or invalid input: what was typed or written is wrong; nothing changed."""
EXIT_UNCHECKED = 3
"""Could not check: the cluster API or the node unreachable, a needed file (config, kubeconfig) missing."""


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


def load_config(args: argparse.Namespace) -> Any:
    """The configuration of `args.config` (or NETCHECK_CONFIG); its log_level takes effect here."""
    from bot import config as config_module
    from bot import logging as netcheck_logging

    config = config_module.load(getattr(args, "config", None))
    if not getattr(args, "log_level_chosen", True):
        netcheck_logging.configure(level=config.log_level)
    return config
