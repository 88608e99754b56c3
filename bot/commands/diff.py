"""`netcheck diff NODE [--against NODE] [--json]`: a node compared with a healthy one, field by field.

Registered by `bot/cli.py`. Runs `Engine.compare`: every probe on NODE and on the reference (the
`--against` node, else `probes.reference_node`, else a Ready node of the same pool whose probes are
all ok), the pod-block routes of every other node, then prints `probes.diff.NodeDiff` (kernel
forwarding sysctls, rp_filter, uplink MTU and kind, iptables backend, pod NAT, routes to its pod
block, kubelet port, /etc/hosts). Exit status: 0 no differences, 1 differences or no healthy
reference, 2 usage or configuration error, 3 could not look (the cluster API unreachable, the config
file or kubeconfig missing), as every command (docs/cli.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from bot.commands import (
    EXIT_OK,
    EXIT_PROBLEM,
    add_config_argument,
    build_engine,
    error_status,
    fail,
    load_config,
)
from bot.render import render_diff
from probes.api import EngineAPI
from probes.errors import ClusterError, ConfigError, InvalidInput
from probes.followup import Comparison
from probes.transports.commands import node_name

EXIT_DIFFERENT = EXIT_PROBLEM


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("diff", help="compare a node with a healthy node, field by field")
    parser.add_argument("node", help="node name")
    parser.add_argument("--against", metavar="NODE",
                        help="reference node (default: picked, see docs/how-a-check-works.md)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_config_argument(parser)
    parser.set_defaults(run=run)
    return parser


async def _compare(engine: EngineAPI, args: argparse.Namespace) -> Comparison:
    try:
        return await engine.compare(args.node, against=args.against)
    finally:
        await engine.aclose()


def run(args: argparse.Namespace) -> int:
    try:
        node_name(args.node)
        if args.against is not None:
            node_name(args.against)
            if args.against == args.node:
                raise InvalidInput("--against names the node itself: pick another node")
        config = load_config(args)
        engine = build_engine(args, config)
        comparison = asyncio.run(_compare(engine, args))
    except (ConfigError, InvalidInput, ClusterError) as exc:
        return fail("diff", str(exc), error_status(exc))
    if comparison.diff is None:
        return fail("diff", f"no healthy reference node for {args.node} (name one with --against)",
                    EXIT_DIFFERENT)
    if args.json:
        print(json.dumps({
            "diff": comparison.diff.model_dump(mode="json"),
            "node": comparison.report.as_json(),
        }, indent=2))
    else:
        print(render_diff(comparison.diff, comparison.report, comparison.reference))
    return EXIT_DIFFERENT if comparison.diff.differences else EXIT_OK
