"""Hooks the API stand-in runs when an object changes: `python -m lab.hooks mtu --state DIR N`.

The `mtu` hook applies a new pod MTU to the lab the way Felix would: on every node, the cali veth,
the pod's eth0 and (VXLAN layouts) vxlan.calico get the new MTU. Called by lab.apiserver on an
Installation patch; the lab's layout and size come from its state file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lab import netns, spec, topology

MIN_MTU, MAX_MTU = 576, 9000


def apply_mtu(state: Path, mtu: int) -> None:
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise ValueError(f"MTU must be from {MIN_MTU} to {MAX_MTU}, got {mtu}")
    data = json.loads((state / "lab.json").read_text())
    names = topology.Names(data["prefix"])
    layout = spec.layout(data.get("layout", spec.DEFAULT_LAYOUT))
    failures = []
    for node in layout.nodes(int(data["workers"])):
        lines = [f"link set {topology.cali_name(node.name)} mtu {mtu}"]
        if layout.vxlan:
            # The kernel refuses a VXLAN MTU above its link's MTU less 50 (an mtu fault's small link):
            # that node keeps its old one, as Felix's would, and the other nodes still get theirs.
            lines.append(f"link set {topology.VXLAN_DEVICE} mtu {mtu}")
        pod_lines = [f"link set eth0 mtu {mtu}"]
        for ns, ns_lines in ((names.node(node.name), lines), (names.pod(node.name), pod_lines)):
            try:
                netns.ip_batch(ns, ns_lines, force=True)
            except netns.LabCommandError as exc:
                failures.append(str(exc))
    if failures:
        raise netns.LabCommandError("; ".join(failures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="lab hooks")
    sub = parser.add_subparsers(dest="hook", required=True)
    mtu = sub.add_parser("mtu")
    mtu.add_argument("--state", required=True, type=Path)
    mtu.add_argument("value", type=int)
    args = parser.parse_args(argv)
    try:
        apply_mtu(args.state, args.value)
    except (ValueError, netns.LabCommandError, FileNotFoundError) as exc:
        print(f"mtu hook: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
