"""Every lab node has a PID namespace of its own (lab/nodeinit.py), so "PID 1" on a node is the node's.

Covers: over SSH (the node's sshd runs inside the node) PID 1 is the node's init, its PID namespace
is not this machine's, the hostname is the node's name and `ps` shows this node's kubelet and no
other node's; `verified_pid1` refuses a PID that is not a node's PID 1 (this test process's own);
and an `up` killed as soon as the first node init was recorded, then `Lab.teardown()`, leaves no
init (nor any other lab process) behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import nodeinit
from lab.cluster import Lab
from tests.lab.test_teardown import leftovers

pytestmark = pytest.mark.lab
INIT_APPEAR_WAIT_S = 60.0


def ssh(lab: Lab, node_ip: str, command: str) -> subprocess.CompletedProcess[str]:
    return lab.run_ops(["ssh", "-i", str(lab.ssh_key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
                        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{node_ip}", command])


def test_each_node_is_its_own_pid_namespace(lab: Lab) -> None:
    machine_pid_ns = os.readlink("/proc/self/ns/pid")
    seen = set()
    for node in lab.nodes:
        script = ("hostname; readlink /proc/1/ns/pid; tr '\\0' ' ' < /proc/1/cmdline; echo; "
                  "for p in $(pgrep -f '[l]ab/bin/kubelet'); do tr '\\0' ' ' < /proc/$p/cmdline; echo; done")
        result = ssh(lab, node.ip, script)
        assert result.returncode == 0, result.stderr
        hostname, pid_ns, init_cmdline, *kubelets = result.stdout.splitlines()
        assert hostname == node.name
        assert pid_ns != machine_pid_ns and pid_ns not in seen
        seen.add(pid_ns)
        assert "-m lab.nodeinit" in init_cmdline and f"--node {node.name} " in init_cmdline
        assert len(kubelets) == 1 and f"--node {node.name} " in kubelets[0], kubelets


def test_a_pid_that_is_not_the_nodes_init_is_refused(lab: Lab) -> None:
    node = lab.nodes[0]
    real = nodeinit.verified_pid1(lab.state, node.name, lab.ns(node.name))
    record = nodeinit.pid1_file(lab.state, node.name)
    try:
        record.write_text(f"{os.getpid()}\n")  # a process of this machine's PID namespace
        with pytest.raises(nodeinit.NodeInitError, match="not PID 1"):
            nodeinit.verified_pid1(lab.state, node.name, lab.ns(node.name))
        record.write_text(f"{real}\n")  # the right PID 1, asked for as another node's
        other = lab.nodes[1]
        with pytest.raises(nodeinit.NodeInitError):
            nodeinit.node_argv(lab.state, node.name, lab.ns(other.name), ["true"])
    finally:
        record.write_text(f"{real}\n")


def test_up_killed_after_the_first_init_then_teardown_leaves_no_init(own_prefix) -> None:  # noqa: F811
    prefix, state = own_prefix
    proc = subprocess.Popen([sys.executable, "-c", "from lab.cluster import Lab; Lab.up(workers=3)"],
                            env=dict(os.environ), cwd=str(Path(__file__).resolve().parents[2]))
    deadline = time.monotonic() + INIT_APPEAR_WAIT_S
    try:
        while not list((state / "pids").glob("nodeinit-*.pid")) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    recorded = list((state / "pids").glob("*init-*.pid"))
    assert recorded, "no node init was started before the deadline"
    pids = {int(p.read_text()) for p in (state / "pids").glob("*.pid") if p.read_text().strip()}
    Lab.teardown()
    assert leftovers(prefix, state, pids) == []
