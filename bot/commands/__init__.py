"""CLI subcommands: each module `bot/commands/<name>.py` exposes `add_parser(subparsers)` and
`run(args) -> int` (a sync entry that runs asyncio itself); `bot/cli.py` lists them in COMMANDS.

`add_config_argument` gives a subcommand the shared `--config PATH` option.
"""

from __future__ import annotations

import argparse


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="PATH", default=None,
        help="configuration file (YAML; default: $NETCHECK_CONFIG, else built-in defaults)",
    )
