"""`netcheck check NODE [--json] [--verbose] [--probe ID ...] [--png FILE]` and
`netcheck check --all [--json]`.

Registered by `bot/cli.py`. Human output is `bot.render.render_report` / `render_run` (the cause
graph: things to do, one per fix; `--verbose` adds the full evidence); `--json` prints exactly one
JSON object (a list for --all) in the schema of docs/json-output.md (`Report.as_json`); `--png FILE`
also writes the node's layer picture (bot/picture). Exit status: 0 all ok or skip, 1 any warn/fail/error found
by a probe, 2 usage or configuration error (bad config, unknown node or probe, a picture file that
cannot be written), 3 could not check: the cluster API unreachable or refusing, the config file or
kubeconfig missing, or the node's SSH and debug pod both unavailable with no probe finding a problem
(the report still prints; one line on stderr says why).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bot.catalogs import one_of, probe_registry
from bot.commands import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_UNCHECKED,
    add_config_argument,
    build_engine,
    error_status,
    fail,
    load_config,
)
from bot.render import render_report, render_run
from bot.terminal import color_enabled
from probes.api import EngineAPI
from probes.errors import ClusterError, ConfigError, InvalidInput
from probes.model import Report, Status
from probes.transports.commands import node_name

TRANSPORT_FINDINGS = ("ssh", "debug-pod")
"""Findings the engine adds when the node's SSH connection or debug pod could not be had."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("check", help="probe a node (or every node) and report layer by layer")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("node", nargs="?", help="node name")
    target.add_argument("--all", action="store_true", help="check every node")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout (a list for --all)")
    parser.add_argument("--probe", action="append", metavar="ID", dest="probes",
                        help="run only this probe (repeatable; no peer or reference follow-up): "
                             + one_of(probe_registry().ids()))
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="show every finding's full evidence, not just the lines that prove it")
    parser.add_argument("--png", metavar="FILE", help="also draw the node's layer picture into FILE (PNG)")
    add_config_argument(parser)
    parser.set_defaults(run=run)
    return parser


async def _check(engine: EngineAPI, args: argparse.Namespace) -> list[Report]:
    try:
        if args.all:
            return await engine.check_all(probes=args.probes)
        report = await engine.check(args.node, probes=args.probes)
        if args.png:
            await _picture(engine, report, Path(args.png))
        return [report]
    finally:
        await engine.aclose()


async def _picture(engine: EngineAPI, report: Report, path: Path) -> None:
    """The layer picture (bot/picture) of the report, with the facts of the run the engine just did."""
    from bot.picture import node_values, render_png_async

    png = await render_png_async(report, node_values(report, await engine.facts()))
    try:
        await asyncio.to_thread(path.write_bytes, png)
    except OSError as exc:
        raise PictureNotWritten(f"cannot write the picture to {path}: {exc.strerror or exc}") from exc
    print(f"netcheck check: layer picture of {report.node} written to {path}", file=sys.stderr)


class PictureNotWritten(ConfigError):
    """--png names a file that cannot be written (a usage error: nothing else went wrong)."""


def unreachable_reason(report: Report) -> str | None:
    """Why the node could not be checked: its transports failed and no probe found a problem
    (a problem a probe did find outranks it: exit 1). None when the node was checked."""
    transport = [f for f in report.findings if f.probe in TRANSPORT_FINDINGS and f.status.is_problem]
    probed = [f for f in report.findings if f.probe not in TRANSPORT_FINDINGS]
    if not transport or any(f.status.is_problem for f in probed):
        return None
    return "; ".join(f.summary for f in transport)


def exit_status(reports: list[Report]) -> int:
    if any(unreachable_reason(r) is None and r.verdict not in (Status.OK, Status.SKIP) for r in reports):
        return EXIT_PROBLEM
    if any(unreachable_reason(r) is not None for r in reports):
        return EXIT_UNCHECKED
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    try:
        if not args.all:
            node_name(args.node)
        elif args.png:
            raise ConfigError("--png draws one node's picture: give a node name, not --all")
        config = load_config(args)
        engine = build_engine(args, config)
        reports = asyncio.run(_check(engine, args))
    except (ConfigError, InvalidInput, ClusterError) as exc:
        return fail("check", str(exc), error_status(exc))
    if args.json:
        payload: Any = [r.as_json() for r in reports] if args.all else reports[0].as_json()
        print(json.dumps(payload, indent=2))
    else:
        color = color_enabled(sys.stdout)
        print(render_run(reports, verbose=args.verbose, color=color) if args.all
              else render_report(reports[0], verbose=args.verbose, color=color))
    for report in reports:
        reason = unreachable_reason(report)
        if reason is not None:
            fail("check", f"could not check {report.node}: {reason}", EXIT_UNCHECKED)
    return exit_status(reports)
