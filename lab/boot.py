"""A simulated boot of one lab node: what a reboot leaves of the node's runtime network state.

`boot(lab, node)` (also `netcheck lab boot NODE`) does, inside the node's namespaces only:
1. forgets every unit's running state (the systemctl stand-in's RemainAfterExit records): after a
   power cycle nothing is active;
2. resets the kernel's forwarding sysctls to their boot defaults (0), then applies the node's own
   sysctl files the way `sysctl --system` does (every `*.conf` of its /etc/sysctl.d by file name,
   then its /etc/sysctl.conf; the last assignment wins);
3. flushes the nat table and loads the rules kube-proxy and Felix write when they start (the lab's
   cluster rules: nothing a fix added survives unless something re-adds it);
4. starts every unit enabled in multi-user.target (its /etc/systemd/system/multi-user.target.wants),
   as systemd does at boot, through the systemctl stand-in.

Safety: only `net.ipv4.*`/`net.ipv6.*` keys are applied, and only from the node's own files under
/etc/netns/<node namespace>/ (the files a fix writes). A real `sysctl --system` in a namespace would
also read this machine's /usr/lib/sysctl.d, whose kernel.* keys are global: the lab never does that.
Used by the reboot tests of the masquerade and ip-forward fixes (tests/lab/test_fixes_reboot.py).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from lab import netns, nodes, topology

if TYPE_CHECKING:
    from lab.cluster import Lab

BOOT_DEFAULTS = {"net.ipv4.ip_forward": "0"}
"""Forwarding sysctls as a freshly booted kernel has them (and a new network namespace: 0)."""
_NAMESPACED_KEY = re.compile(r"^net\.ipv[46]\.[A-Za-z0-9_.]+$")
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*=\s*(\S+)\s*$")
BOOT_TARGET_WANTS = "multi-user.target.wants"


def sysctl_assignments(etc: Path) -> dict[str, str]:
    """{key: value} that `sysctl --system` would apply from this node's own files, in boot order."""
    files = sorted((etc / "sysctl.d").glob("*.conf"), key=lambda p: p.name) if (etc / "sysctl.d").is_dir() \
        else []
    if (etc / "sysctl.conf").is_file():
        files.append(etc / "sysctl.conf")
    values: dict[str, str] = {}
    for path in files:
        for line in path.read_text().splitlines():
            match = _ASSIGNMENT.match(line.split("#", 1)[0])
            if match:
                key = match.group(1).replace("/", ".")
                if _NAMESPACED_KEY.match(key):
                    values[key] = match.group(2)
    return values


def enabled_units(etc: Path) -> list[str]:
    wants = etc / "systemd" / "system" / BOOT_TARGET_WANTS
    return sorted(p.name for p in wants.iterdir()) if wants.is_dir() else []


def boot(lab: Lab, node: str) -> list[str]:
    """Simulate a reboot of `node`; returns what it did, one line per step (for logs and the CLI)."""
    spec = lab.node(node)
    ns = lab.ns(spec.name)
    etc = nodes.etc_dir(ns)
    done: list[str] = []
    state = nodes.node_dir(lab.state, spec.name) / "systemd-state"
    shutil.rmtree(state, ignore_errors=True)
    done.append("units: every unit inactive")
    values = {**BOOT_DEFAULTS, **sysctl_assignments(etc)}
    for key, value in values.items():
        netns.ns_run(ns, ["sysctl", "-qw", f"{key}={value}"])
    done.append("sysctl: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    cluster_rules = _nat_table_only(topology.iptables_restore_text(lab.layout))
    netns.run(netns.exec_argv(ns, ["iptables-nft-restore"]), input=cluster_rules)
    done.append("nat: flushed, cluster rules (kube-proxy, Felix) loaded")
    for unit in enabled_units(etc):
        result = lab.node_exec(spec.name, "systemctl", "start", unit)
        done.append(f"start {unit}: exit {result.returncode}")
    return done


def _nat_table_only(restore_text: str) -> str:
    """The `*nat ... COMMIT` block of an iptables-restore text: restoring it flushes nat only."""
    lines = restore_text.splitlines()
    start = lines.index("*nat")
    end = lines.index("COMMIT", start)
    return "\n".join(lines[start:end + 1]) + "\n"
