"""`netcheck lab up [--layout NAME] [--workers N] | down | status | fault NAME [--node N] --on|--off |
boot NODE | run -- CMD...`.

The logic behind bot/commands/lab.py (which only registers it). Needs root: without it, one line
"netcheck lab needs root: ..." and exit 2. Bad input (layout, worker count, fault or node names, a
fault that does not apply to the layout) -> one line, exit 2, nothing changed. `fault --node`
defaults to the lab's WiFi node.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from lab.spec import DEFAULT_LAYOUT, LAYOUTS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="bring the lab up (prefix and state from NETCHECK_LAB_PREFIX/_STATE)")
    up.add_argument("--layout", default=DEFAULT_LAYOUT,
                    help=f"the lab's layout: {', '.join(LAYOUTS)} (default {DEFAULT_LAYOUT})")
    up.add_argument("--workers", type=int, default=2,
                    help="number of workers (the second one is the WiFi node)")
    sub.add_parser("down", help="remove everything the lab made (idempotent)")
    sub.add_parser("status", help="namespaces, processes and active faults as JSON")
    fault = sub.add_parser("fault", help="switch a fault on or off")
    fault.add_argument("name")
    fault.add_argument("--node", default=None, help="default: the lab's WiFi node")
    onoff = fault.add_mutually_exclusive_group(required=True)
    onoff.add_argument("--on", dest="on", action="store_true")
    onoff.add_argument("--off", dest="on", action="store_false")
    boot = sub.add_parser("boot", help="simulate a reboot of a node (nat flushed, sysctls reset and "
                          "reapplied from its files, enabled units started)")
    boot.add_argument("node")
    run = sub.add_parser("run", help="run a command in the ops namespace (KUBECONFIG, NETCHECK_CONFIG set)")
    run.add_argument("cmd", nargs=argparse.REMAINDER)


def _say(message: str) -> None:
    print(f"netcheck lab: {message}", file=sys.stderr)


def run(args: Any, *, euid: int | None = None) -> int:
    """`euid` stands in for os.geteuid() (tests of the not-root message, wherever the checkout is)."""
    if (os.geteuid() if euid is None else euid) != 0:
        print("netcheck lab needs root: it creates network namespaces, veths and iptables rules",
              file=sys.stderr)
        return EXIT_USAGE
    from lab import faults
    from lab.cluster import Lab
    from lab.netns import LabCommandError, exec_argv

    action = args.lab_command
    try:
        if action == "up":
            lab = Lab.up(workers=args.workers, layout=args.layout)
            print(f"lab up: {lab.layout.name} layout, {len(lab.nodes)} nodes, API {lab.api_url}, "
                  f"config {lab.config_file}")
            example = next((n.name for n in lab.nodes if n.wifi), lab.worker_nodes[0].name)
            print(f"try: netcheck lab run -- netcheck check {example} (config {lab.config_file})")
            return EXIT_OK
        if action == "down":
            Lab.teardown()
            print("lab down")
            return EXIT_OK
        lab = Lab.attach()
        if action == "status":
            print(json.dumps(lab.status(), indent=2))
            return EXIT_OK
        if action == "fault":
            if args.name not in faults.REGISTRY:
                raise ValueError(f"unknown fault {args.name!r} (known: {', '.join(sorted(faults.REGISTRY))})")
            node = args.node or lab.wifi_node.name
            lab.fault(args.name, node=node, on=args.on)
            print(f"fault {args.name} {'on' if args.on else 'off'} on {node}")
            return EXIT_OK
        if action == "boot":
            from lab.boot import boot

            for line in boot(lab, args.node):
                print(line)
            return EXIT_OK
        if action == "run":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if not cmd:
                raise ValueError("run needs a command: netcheck lab run -- CMD ...")
            # Streams straight through (interactive use), unlike Lab.run_ops which captures.
            return subprocess.call(exec_argv(lab.ops_ns, cmd), env=lab.ops_env())
    except ValueError as exc:
        _say(str(exc))
        return EXIT_USAGE
    except (RuntimeError, LabCommandError) as exc:
        _say(str(exc))
        return EXIT_FAILED
    return EXIT_USAGE
