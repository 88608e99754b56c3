"""`node_access: auto` on the lab: SSH where a key and the node's host key are configured, else a host pod.

Covers: with the WiFi node's line removed from known_hosts, `netcheck check --all --json` reaches that
node through a host pod and says why (no host key for its address in that known_hosts), the other
nodes over SSH, with no transport error anywhere and the host probes ok on both paths; a host pod that
cannot be had (a namespace where the bot may not create pods) becomes one `host-pod` error finding
that says exactly that (the 403, and which Role grants it), and the node's host probes say `skip` with
the same reason.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from lab import nodeaccess
from lab.cluster import Lab

pytestmark = pytest.mark.lab

NETCHECK = [sys.executable, "-m", "bot.cli"]
CHECK_TIMEOUT_S = 240.0


def auto_config(lab: Lab, without: str, **extra: object) -> Path:
    config = yaml.safe_load(nodeaccess.config_for(lab, "auto").read_text())
    known = lab.state / "ssh" / f"known_hosts-without-{without}"
    ip = lab.node(without).ip
    known.write_text("".join(line for line in lab.known_hosts.read_text().splitlines(keepends=True)
                             if ip not in line.split()[0].split(",")))
    config["ssh"]["known_hosts"] = str(known)
    config.update(extra)
    path = lab.state / f"netcheck-auto-without-{without}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(lab: Lab, config: Path, *argv: str, exit_status: tuple[int, ...] = (0, 1)) -> object:
    proc = lab.run_ops(["env", f"NETCHECK_CONFIG={config}", *NETCHECK, "check", *argv, "--json"],
                       timeout=CHECK_TIMEOUT_S)
    assert proc.returncode in exit_status, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_auto_takes_ssh_where_configured_and_a_host_pod_elsewhere(lab: Lab) -> None:
    wifi = next(n for n in lab.nodes if n.wifi)
    config = auto_config(lab, wifi.name)
    probes = ("--probe", "ip-forward", "--probe", "etc-hosts")  # host probes: the path is under test
    reports = {r["node"]: r for r in run(lab, config, "--all", *probes)}
    known = lab.state / "ssh" / f"known_hosts-without-{wifi.name}"
    assert reports[wifi.name]["access"] == {
        "path": "host-pod", "reason": f"node_access: auto, no host key for {wifi.ip} in known_hosts {known}"}
    for node in lab.nodes:
        if node.name != wifi.name:
            assert reports[node.name]["access"] == {
                "path": "ssh", "reason": "node_access: auto, SSH key and host key configured"}
    errors = [(r["node"], f["probe"]) for r in reports.values() for f in r["findings"]
              if f["probe"] in ("ssh", "host-pod")]
    assert errors == []
    statuses = {(r["node"], f["probe"]): f["status"] for r in reports.values() for f in r["findings"]}
    assert set(statuses.values()) == {"ok"} and len(statuses) == 2 * len(lab.nodes), statuses


def test_a_host_pod_that_cannot_be_had_says_why(lab: Lab) -> None:
    wifi = next(n for n in lab.nodes if n.wifi)
    config = auto_config(lab, wifi.name, host_pod={"namespace": "no-such-namespace"})
    # the host pod was the only way onto the node and no probe could look: "could not check" (3), as
    # for an unreachable SSH node; the report still prints
    report = run(lab, config, wifi.name, "--probe", "ip-forward", "--probe", "etc-hosts", exit_status=(3,))
    found = {f["probe"]: f for f in report["findings"]}
    # the bot may list pods everywhere (calico-mtu names pods left on an old MTU), so the first call
    # the namespace refuses is the pod create
    reason = re.compile(
        rf"cannot create the read-only host pod in no-such-namespace: create pod no-such-namespace/"
        rf"netcheck-host-{wifi.name}-[0-9a-f]{{6}}: pods is forbidden: "
        rf'User "system:serviceaccount:netcheck:netcheck" '
        rf'cannot create resource "pods" in API group "" in the namespace "no-such-namespace" \(HTTP 403\) '
        rf"\(the node-access namespace and Role: docs/node-access\.md\)")
    assert found["host-pod"]["status"] == "error"
    prefix = (f"host pod (node_access: auto, no host key for {wifi.ip} in known_hosts "
              f"{lab.state / 'ssh' / f'known_hosts-without-{wifi.name}'}) unavailable: ")
    summary = found["host-pod"]["summary"]
    assert summary.startswith(prefix) and reason.fullmatch(summary.removeprefix(prefix)), summary
    for probe_id in ("ip-forward", "etc-hosts"):
        assert found[probe_id]["status"] == "skip"
        assert found[probe_id]["summary"] == f"no host pod on {wifi.name}: {summary.removeprefix(prefix)}"
