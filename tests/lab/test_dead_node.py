"""Nodes whose transports fail, on the lab: each costs its transport's own timeout, once per run.

Covers:
- debug pods held Pending on the control-plane node (every other node's cross-node peer), sweep of
  all nodes: that node's pod is created and waited for once in the run (not once per asker), its
  pod probes skip with the pod's state, its host probes run, and its report is done within
  debug_pod.start_timeout plus its host probes' time;
- `netcheck check --all` over 10 nodes (the lab's nodes plus API-only copies of healthy ones, which
  reach the same sshd and pod namespaces) with one node `unreachable` (its InternalIP answers
  nothing, NotReady, pods Pending): the dead node is an `ssh` error after ssh.connect_timeout and a
  `debug-pod` error at once, its report takes about the connect timeout, the healthy nodes are
  unaffected, and the sweep ends far below the old 60 s wait (probes.transport_timeout).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import yaml

from lab import apiconfig
from lab.cluster import Lab

pytestmark = pytest.mark.lab

NETCHECK = str(Path(sys.executable).with_name("netcheck"))
START_TIMEOUT_S = 4.0
CONNECT_TIMEOUT_S = 3.0
SWEEP_NODES = 10
SWEEP_TIMEOUT_S = 300.0
OLD_WAIT_S = 60.0
"""What a dead node cost before: the engine waited probes.transport_timeout (60 s) for its transports."""
MARGIN_S = 3.0
"""Scheduling slack on a loaded 2-core machine; far below the waits the bounds are about."""


def config_with(lab: Lab, tmp_path: Path, **sections: dict) -> Path:
    data = yaml.safe_load(lab.config_file.read_text())
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    path = tmp_path / "netcheck.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def control_plane(lab: Lab) -> Iterator[str]:
    name = next(n.name for n in lab.nodes if n.role == "control-plane")
    lab.hold_pods(name, "ContainerCreating")
    try:
        yield name
    finally:
        lab.hold_pods(name, None)


def test_pending_pod_is_waited_for_once_and_only_by_pod_probes(
    lab: Lab, control_plane: str, tmp_path: Path
) -> None:
    from bot import config as config_module
    from bot import wiring

    config = config_module.load(config_with(lab, tmp_path, debug_pod={"start_timeout": START_TIMEOUT_S}))

    async def sweep():  # noqa: ANN202
        engine = wiring.build_engine(config)
        try:
            return await engine.check_all()
        finally:
            await engine.aclose()

    with structlog.testing.capture_logs() as logs, lab.enter_ops():
        reports = {r.node: r for r in asyncio.run(sweep())}
    created = [e for e in logs if e["event"] == "creating debug pod" and e["node"] == control_plane]
    assert len(created) == 1, created  # its own check and every other node's peer pod: one attempt

    report = reports[control_plane]
    pod_error = report.finding("debug-pod")
    assert pod_error is not None and "not Running after 4 s (ContainerCreating)" in pod_error.summary
    assert report.finding("pod-api").status.value == "skip"
    assert "ContainerCreating" in report.finding("pod-api").summary
    host_probes = ("host-api", "ip-forward", "etc-hosts", "iptables-mode")
    host_only = [f for f in report.findings if f.probe in host_probes]
    assert host_only and all(f.status.value == "ok" for f in host_only), host_only
    host_time = max(f.duration_s or 0.0 for f in host_only)
    assert report.duration_s <= START_TIMEOUT_S + host_time + MARGIN_S, (report.duration_s, host_time)
    for node, other in reports.items():
        if node != control_plane:  # their cross-node check says why it could not run, at once
            assert other.finding("debug-pod") is None, other.finding("debug-pod")


@pytest.fixture
def ten_nodes(lab: Lab, fault) -> Iterator[str]:
    """The lab's nodes plus API-only copies of the healthy ones up to 10; one worker unreachable."""
    dead = next(n for n in lab.nodes if n.role != "control-plane")
    healthy = [n for n in lab.nodes if n.name != dead.name]
    copies = []
    try:
        for i in range(SWEEP_NODES - len(lab.nodes)):
            source = healthy[i % len(healthy)]
            name = f"{source.name}-copy{i}"
            lab.add_node(name, source.ip, source.pod_cidr,
                         annotations=apiconfig.node_annotations(lab.layout, source),
                         labels={"kubernetes.io/hostname": name}, pods_like=source.name)
            copies.append(name)
        fault("unreachable", node=dead.name)
        yield dead.name
    finally:
        for name in copies:
            lab.remove_node(name)


def test_one_dead_node_costs_its_connect_timeout_in_a_10_node_sweep(
    lab: Lab, ten_nodes: str, tmp_path: Path
) -> None:
    dead = ten_nodes
    config = config_with(lab, tmp_path, ssh={"connect_timeout": CONNECT_TIMEOUT_S})
    started = time.monotonic()
    proc = lab.run_ops([NETCHECK, "check", "--all", "--json", "--config", str(config)],
                       timeout=SWEEP_TIMEOUT_S)
    wall = time.monotonic() - started
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    reports = {r["node"]: r for r in json.loads(proc.stdout)}
    assert len(reports) == SWEEP_NODES

    findings = {f["probe"]: f for f in reports[dead]["findings"]}
    assert findings["ssh"]["status"] == "error"
    assert f"timed out after {CONNECT_TIMEOUT_S:g} s" in findings["ssh"]["summary"], findings["ssh"]
    assert findings["debug-pod"]["status"] == "error" and "NotReady" in findings["debug-pod"]["summary"]
    assert reports[dead]["duration_s"] <= CONNECT_TIMEOUT_S + MARGIN_S, reports[dead]["duration_s"]

    healthy = [r for node, r in reports.items() if node != dead]
    assert not any(f["probe"] in ("ssh", "debug-pod") for r in healthy for f in r["findings"])
    slowest_healthy = max(r["duration_s"] for r in healthy)
    print(f"10-node sweep with one dead node: {wall:.1f} s wall; dead node "
          f"{reports[dead]['duration_s']:.1f} s; slowest healthy node {slowest_healthy:.1f} s")
    assert wall < OLD_WAIT_S, wall
