"""`netcheck lab ...`: registers the lab subcommand; the logic lives in lab.cli (bot may import lab)."""

from __future__ import annotations

import argparse
from typing import Any

from lab import cli


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("lab", help="the simulated cluster: up, down, status, fault, run")
    cli.add_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: Any) -> int:
    return cli.run(args)
