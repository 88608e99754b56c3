"""`netcheck diff NODE [--against NODE] [--json]`: a node compared with a healthy one, field by field.

Registered by `bot/cli.py`. Runs `Engine.compare`: every probe on NODE and on the reference (the
`--against` node, else `probes.reference_node`, else a Ready node of the same pool whose probes are
all ok), the pod-block routes of every other node, then prints `probes.diff.NodeDiff` (kernel
forwarding sysctls, rp_filter, uplink MTU and kind, iptables backend, pod NAT, routes to its pod
block, kubelet port, /etc/hosts). Exit status: 0 no differences, 1 differences or no healthy
reference, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bot.commands import add_config_argument
from bot.render import render_diff
from probes.errors import ClusterError, ConfigError, InvalidInput
from probes.followup import Comparison
from probes.transports.commands import node_name

EXIT_OK, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("diff", help="compare a node with a healthy node, field by field")
    parser.add_argument("node", help="node name")
    parser.add_argument("--against", metavar="NODE", help="reference node (default: picked, see README)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_config_argument(parser)
    parser.set_defaults(run=run)
    return parser


async def _compare(engine: Any, args: argparse.Namespace) -> Comparison:
    try:
        return await engine.compare(args.node, against=args.against)
    finally:
        await engine.aclose()


def run(args: argparse.Namespace) -> int:
    from bot import config as config_module
    from bot import wiring

    try:
        node_name(args.node)
        if args.against is not None:
            node_name(args.against)
            if args.against == args.node:
                raise InvalidInput("--against names the node itself: pick another node")
        config = config_module.load(args.config)
        engine = (args.engine_factory or wiring.build_engine)(config)
        comparison = asyncio.run(_compare(engine, args))
    except (ConfigError, InvalidInput) as exc:
        print(f"netcheck diff: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ClusterError as exc:
        print(f"netcheck diff: cannot read the cluster: {exc}", file=sys.stderr)
        return EXIT_DIFFERENT
    if comparison.diff is None:
        print(f"netcheck diff: no healthy reference node for {args.node} (name one with --against)",
              file=sys.stderr)
        return EXIT_DIFFERENT
    if args.json:
        print(json.dumps({
            "diff": comparison.diff.model_dump(mode="json"),
            "node": comparison.report.as_json(),
        }, indent=2))
    else:
        print(render_diff(comparison.diff, comparison.report, comparison.reference))
    return EXIT_DIFFERENT if comparison.diff.differences else EXIT_OK
