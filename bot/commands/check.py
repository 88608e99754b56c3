"""`netcheck check NODE [--json] [--verbose] [--probe ID ...]` and `netcheck check --all [--json]`.

Registered by `bot/cli.py`. Human output is `bot.render.render_report` / `render_run` (the cause
graph: things to do, one per fix; `--verbose` adds the full evidence); `--json` prints exactly one
JSON object (a list for --all) in the README's schema (`Report.as_json`). Exit status: 0 all ok or
skip, 1 any warn/fail/error, 2 usage or configuration error (bad config, unknown node or probe).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bot.commands import add_config_argument
from bot.render import render_report, render_run
from probes.errors import ClusterError, ConfigError, InvalidInput
from probes.model import Report, Status
from probes.transports.commands import node_name

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("check", help="probe a node (or every node) and report layer by layer")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("node", nargs="?", help="node name")
    target.add_argument("--all", action="store_true", help="check every node")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout (a list for --all)")
    parser.add_argument("--probe", action="append", metavar="ID", dest="probes",
                        help="run only this probe (repeatable; no peer or reference follow-up)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="show every finding's full evidence, not just the lines that prove it")
    add_config_argument(parser)
    parser.set_defaults(run=run)
    return parser


def _fail(message: str, code: int) -> int:
    print(f"netcheck check: {message}", file=sys.stderr)
    return code


async def _check(engine: Any, args: argparse.Namespace) -> list[Report]:
    try:
        if args.all:
            return await engine.check_all(probes=args.probes)
        return [await engine.check(args.node, probes=args.probes)]
    finally:
        await engine.aclose()


def run(args: argparse.Namespace) -> int:
    from bot import config as config_module
    from bot import wiring

    try:
        if not args.all:
            node_name(args.node)
        config = config_module.load(args.config)
        engine = (args.engine_factory or wiring.build_engine)(config)
        reports = asyncio.run(_check(engine, args))
    except (ConfigError, InvalidInput) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ClusterError as exc:
        return _fail(f"cannot read the cluster: {exc}", EXIT_PROBLEM)
    if args.json:
        payload: Any = [r.as_json() for r in reports] if args.all else reports[0].as_json()
        print(json.dumps(payload, indent=2))
    else:
        print(render_run(reports, verbose=args.verbose) if args.all
              else render_report(reports[0], verbose=args.verbose))
    healthy = all(r.verdict in (Status.OK, Status.SKIP) for r in reports)
    return EXIT_OK if healthy else EXIT_PROBLEM
