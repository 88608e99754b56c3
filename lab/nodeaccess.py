"""The lab with `node_access: pod` or `auto`: a netcheck config for that mode, and sshd off on every node.

Used by `netcheck demo --node-access pod|auto` (lab.demo.flow) and the lab tests. The lab's API
stand-in runs host pods in the nodes' own namespaces (lab/apiserver/hostpods.py) and enforces the
node-access Role (lab/apiconfig.py), so a config without any SSH setting works against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from lab import nodes

if TYPE_CHECKING:
    from lab.cluster import Lab

MODES = ("ssh", "pod", "auto")


def config_for(lab: Lab, mode: str) -> Path:
    """netcheck.yaml for `mode`; `pod` drops the whole SSH section (no key, no known_hosts)."""
    if mode not in MODES:
        raise ValueError(f"node access must be one of {', '.join(MODES)} (got {mode!r})")
    if mode == "ssh":
        return lab.config_file
    config = yaml.safe_load(lab.config_file.read_text())
    if mode == "pod":
        config.pop("ssh", None)
    config["node_access"] = mode
    path = lab.state / f"netcheck-node-access-{mode}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def stop_sshd(lab: Lab) -> None:
    """No SSH at all: every node's sshd ends (by its recorded PID)."""
    for node in lab.nodes:
        nodes.stop(lab.state, f"sshd-{node.name}")


def start_sshd(lab: Lab) -> None:
    """sshd back on every node where it is not running, then wait until each accepts connections."""
    for node in lab.nodes:
        if not (lab.state / "pids" / f"sshd-{node.name}.pid").exists():
            nodes.start_sshd(lab.state, lab.ns(node.name), node)
    for node in lab.nodes:
        nodes.wait_port(lab.ns(node.name), "127.0.0.1", 22)
