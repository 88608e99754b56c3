"""`node_access: pod` on the lab with no SSH at all: the findings of SSH, every fix, nothing outside the lab.

One module fixture drives everything once (the lab is shared, CPU is scarce): it snapshots this
machine's own state, runs `netcheck check --all --json` over SSH (the reference), then stops sshd on
every node and writes a config with no SSH section (no key, no known_hosts) and `node_access: pod`;
over the host pods it runs the probe catalog on every node (case-study state), the same probes on one
node with four host-side faults (also over SSH), the case study's masquerade fix (plan, apply, second
apply, rollback) and every other fix (ip-forward, etc-hosts, kernel-modules, calico-mtu), watching
the pods the API stand-in creates; then restarts sshd and snapshots again. The tests assert:
- the catalog and the faulted node give the same status and summary per probe over both paths
  (debug pod names aside), every pod-path report says it went through `host-pod`, and sshd really
  was down (port 22 refused on every node);
- the masquerade fix applies once, verifies (masquerade, pod-api, return-path ok), changes nothing
  the second time and rolls back to the exact nat rules and unit files; ip-forward and etc-hosts
  apply and roll back exactly, kernel-modules rolls back (no modprobe here, as over SSH), calico-mtu
  applies the probe's proposal and rolls back;
- host pods: a fix's plan (before approval) and every check use read-only pods only; a privileged
  pod exists only inside an approved apply/rollback and is deleted before it returns; none is left;
- nothing outside the lab changed: this machine's iptables (nft and legacy), nft ruleset, forwarding
  sysctls, hostname, /etc/hosts, /etc/systemd/system, /etc/sysctl.d, /etc/modules-load.d and its
  network namespace's links, addresses, routes and rules are identical before and after.
A second test shows what `nsenter -t 1` reaches from a privileged host pod on every node: the node's
hostname, network namespace and init, never this machine's; and a read-only host pod can neither
write the host filesystem nor nsenter into PID 1's mount namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lab import netns, nodeaccess
from lab.cluster import Lab
from tests.labfixtures import remove_masquerade_unit

pytestmark = [pytest.mark.lab,
              pytest.mark.xdist_group("node-access-pod")]  # one worker: the module fixture runs once

NETCHECK = [sys.executable, "-m", "bot.cli"]
CHECK_TIMEOUT_S = 240.0
PORT_CHECK_TIMEOUT_S = 2.0
HOST_NAMESPACE = "netcheck-host"
FAULTS = ("ip-forward-off", "hosts-missing", "resolved-stub", "vpn")
FAULT_PROBES = ("ip-forward", "etc-hosts", "resolved-53", "node-address", "iptables-mode", "kernel-modules")
_DEBUG_POD = re.compile(r"netcheck-[a-z0-9.-]+-[0-9a-f]{6}")


# ---- this machine's state, outside the lab ------------------------------------------------------

def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}"


def _tree(root: str) -> dict[str, str]:
    found = {}
    for path in sorted(Path(root).rglob("*")) if Path(root).exists() else []:
        if path.is_symlink():
            found[str(path)] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[str(path)] = "dir"
    return found


def host_state() -> dict[str, Any]:
    """What a fix or probe reaching this machine instead of a node would change (counters dropped)."""
    def rules(text: str) -> str:
        return re.sub(r"\[\d+:\d+\]|^#.*$|packets \d+ bytes \d+", "", text, flags=re.MULTILINE)

    sysctls = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "kernel/hostname")
    state: dict[str, Any] = {
        "iptables-nft": rules(_run("iptables-nft-save")),
        "nft": rules(_run("nft", "list", "ruleset")),
        "sysctl": {s: Path("/proc/sys", s).read_text() for s in sysctls},
        "hostname": socket.gethostname(),
        "etc/hosts": (Path("/etc/hosts").read_text(), Path("/etc/hosts").stat().st_ino),
        "links": _run("ip", "-o", "link", "show"),
        "addresses": _run("ip", "-o", "addr", "show"),
        "routes": _run("ip", "route", "show", "table", "all"),
        "rules": _run("ip", "rule", "show"),
    }
    if Path("/proc/net/ip_tables_names").exists():
        state["iptables-legacy"] = rules(_run("iptables-legacy-save"))
    for root in ("/etc/systemd/system", "/etc/sysctl.d", "/etc/modules-load.d"):
        state[root] = _tree(root)
    return state


# ---- running netcheck on the lab ----------------------------------------------------------------

def check_all(lab: Lab, config: Path, *, home: Path | None = None) -> dict[str, dict[str, Any]]:
    env = [f"NETCHECK_CONFIG={config}"] + ([f"HOME={home}"] if home else [])
    proc = lab.run_ops(["env", *env, *NETCHECK, "check", "--all", "--json"], timeout=CHECK_TIMEOUT_S)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return {r["node"]: r for r in json.loads(proc.stdout)}


def check_node(lab: Lab, config: Path, node: str, probes: tuple[str, ...]) -> dict[str, Any]:
    argv = [*NETCHECK, "check", node, "--json"] + [a for p in probes for a in ("--probe", p)]
    proc = lab.run_ops(["env", f"NETCHECK_CONFIG={config}", *argv], timeout=CHECK_TIMEOUT_S)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return json.loads(proc.stdout)


def findings(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """probe -> (status, summary), with the random debug pod names made equal."""
    return {f["probe"]: (f["status"], _DEBUG_POD.sub("<debug-pod>", f["summary"]))
            for f in report["findings"]}


def pod_config(lab: Lab) -> Path:
    """The lab's netcheck.yaml without any SSH setting, with node_access: pod."""
    return nodeaccess.config_for(lab, "pod")


def port_open(lab: Lab, ip: str, port: int) -> bool:
    probe = (f"import socket\ntry: socket.create_connection(('{ip}',{port}),{PORT_CHECK_TIMEOUT_S}).close()"
             "\nexcept OSError: print(0)\nelse: print(1)")
    return lab.run_ops([sys.executable, "-c", probe]).stdout.strip() == "1"


@contextlib.contextmanager
def sshd_stopped(lab: Lab) -> Iterator[None]:
    nodeaccess.stop_sshd(lab)
    try:
        yield
    finally:
        nodeaccess.start_sshd(lab)


# ---- watching the host pods ---------------------------------------------------------------------

@dataclass
class PodWatch:
    """Host pod events since a resourceVersion, read back through the API's watch history."""

    lab: Lab
    since: str = ""
    events: list[tuple[str, str, str, bool]] = field(default_factory=list)

    def _core(self):  # noqa: ANN202
        from kubernetes import client, config

        return client.CoreV1Api(config.new_client_from_config(str(self.lab.kubeconfig)))

    def mark(self) -> None:
        with self.lab.enter_ops():
            self.since = self._core().list_namespaced_pod(HOST_NAMESPACE).metadata.resource_version

    def collect(self) -> list[tuple[str, str, str, bool]]:
        """(event, pod, host-access label, privileged) since the last mark."""
        from kubernetes import watch

        seen = []
        with self.lab.enter_ops():
            stream = watch.Watch().stream(self._core().list_namespaced_pod, HOST_NAMESPACE,
                                          resource_version=self.since, timeout_seconds=1)
            for event in stream:
                pod = event["object"]
                privileged = bool(pod.spec.containers[0].security_context.privileged)
                seen.append((event["type"], pod.metadata.name,
                             (pod.metadata.labels or {}).get("netcheck/host-access", ""), privileged))
        self.events += seen
        return seen

    def left(self) -> list[str]:
        with self.lab.enter_ops():
            return [p.metadata.name for p in self._core().list_namespaced_pod(HOST_NAMESPACE).items]


def added(events: list[tuple[str, str, str, bool]]) -> list[tuple[str, bool]]:
    return [(kind, privileged) for event, _, kind, privileged in events if event == "ADDED"]


# ---- fixes over the pod path, in process ---------------------------------------------------------

def in_ops(lab: Lab, config: Path, use):  # noqa: ANN001, ANN202
    from bot import config as config_module
    from bot import wiring

    async def run():  # noqa: ANN202
        engine = wiring.build_engine(config_module.load(config, env={}))
        try:
            return await use(engine)
        finally:
            await engine.aclose()

    with lab.enter_ops():
        return asyncio.run(run())


def approval():  # noqa: ANN201
    from fixes.model import Approval

    return Approval(approver="lab-test", approved_at=datetime.now(UTC), requested_by="lab-test")


def node_state(lab: Lab, node: str, script: str) -> str:
    return lab.node_exec(node, "sh", "-c", script, check=True).stdout


NAT = "iptables-nft-save -t nat | grep -E '^(:|-A)' | sed 's/ \\[[0-9]*:[0-9]*\\]//'"
UNITS = ("cd /etc/systemd/system && find . | sort | while read f; do echo \"== $f\"; "
         "[ -f \"$f\" ] && cat \"$f\"; done; systemctl is-enabled netcheck-masquerade.service; true")


@dataclass
class Run:
    before: dict[str, Any]
    after: dict[str, Any] = field(default_factory=dict)
    ssh: dict[str, dict[str, Any]] = field(default_factory=dict)
    pod: dict[str, dict[str, Any]] = field(default_factory=dict)
    sshd_down: dict[str, bool] = field(default_factory=dict)
    faulted_ssh: dict[str, Any] = field(default_factory=dict)
    faulted_pod: dict[str, Any] = field(default_factory=dict)
    fixes: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: PodWatch | None = None
    pods_left: list[str] = field(default_factory=list)


def masquerade_flow(lab: Lab, config: Path, watch: PodWatch) -> dict[str, Any]:
    from fixes.runner import FixRunner

    wifi = next(n for n in lab.nodes if n.wifi)
    params = {"pod_cidr": wifi.pod_cidr, "interface": wifi.iface}
    lab.fault("no-masquerade", node=wifi.name, on=True)
    remove_masquerade_unit(lab, wifi.name)
    before = (node_state(lab, wifi.name, NAT), node_state(lab, wifi.name, UNITS))
    out: dict[str, Any] = {"before": before,
                           "rule": f"-A POSTROUTING -s {wifi.pod_cidr} -o {wifi.iface} -j MASQUERADE"}

    async def flow(engine):  # noqa: ANN001, ANN202
        runner = FixRunner(engine)
        await asyncio.to_thread(watch.mark)
        await runner.plan(wifi.name, "masquerade", params)
        out["plan_pods"] = await asyncio.to_thread(watch.collect)
        await asyncio.to_thread(watch.mark)
        out["first"] = await runner.apply(wifi.name, "masquerade", params, approval())
        out["apply_pods"] = await asyncio.to_thread(watch.collect)
        out["applied"] = (node_state(lab, wifi.name, NAT), node_state(lab, wifi.name, UNITS))
        out["second"] = await runner.apply(wifi.name, "masquerade", params, approval())
        out["undone"] = await runner.rollback(wifi.name, "masquerade", params, out["first"].before or {},
                                              approval())

    in_ops(lab, config, flow)
    out["after"] = (node_state(lab, wifi.name, NAT), node_state(lab, wifi.name, UNITS))
    return out


def node_fix_flow(lab: Lab, config: Path, fault: str, fix_id: str, params: dict[str, Any],
                  script: str) -> dict[str, Any]:
    from fixes.model import Outcome
    from fixes.runner import FixRunner

    node = next(n for n in lab.nodes if n.wifi).name
    was_on = node in lab.active_faults().get(fault, set())
    lab.fault(fault, node=node, on=True)
    try:
        out: dict[str, Any] = {"before": node_state(lab, node, script) if script else None}

        async def flow(engine):  # noqa: ANN001, ANN202
            runner = FixRunner(engine)
            chosen = dict(params)
            if fix_id == "calico-mtu":  # the probe's own proposal, as the Slack button carries it
                chosen = dict((await engine.check(node, probes=["mtu"])).finding("mtu").fix.params)
                out["installation"] = (await engine.cluster.get_installation())["spec"]
            out["first"] = await runner.apply(node, fix_id, chosen, approval())
            out["applied"] = node_state(lab, node, script) if script else None
            if out["first"].outcome == Outcome.APPLIED:
                out["undone"] = await runner.rollback(node, fix_id, chosen, out["first"].before, approval())
            if fix_id == "calico-mtu":
                out["installation_after"] = (await engine.cluster.get_installation())["spec"]

        in_ops(lab, config, flow)
        out["after"] = node_state(lab, node, script) if script else None
        return out
    finally:
        lab.fault(fault, node=node, on=was_on)


@pytest.fixture(scope="module")
def run(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Run:
    result = Run(before=host_state())
    config = pod_config(lab)
    empty_home = tmp_path_factory.mktemp("no-ssh-home")  # no ~/.ssh: no key, no known_hosts anywhere
    worker = next(n for n in lab.nodes if n.role == "worker" and not n.wifi)
    result.ssh = check_all(lab, lab.config_file)
    for name in FAULTS:
        lab.fault(name, node=worker.name, on=True)
    try:
        result.faulted_ssh = check_node(lab, lab.config_file, worker.name, FAULT_PROBES)
        with sshd_stopped(lab):
            result.sshd_down = {n.name: not port_open(lab, n.ip, 22) for n in lab.nodes}
            result.faulted_pod = check_node(lab, config, worker.name, FAULT_PROBES)
    finally:
        for name in FAULTS:
            lab.fault(name, node=worker.name, on=False)
    watch = result.pods = PodWatch(lab)
    with sshd_stopped(lab):
        watch.mark()
        result.pod = check_all(lab, config, home=empty_home)
        result.fixes["check"] = {"pods": watch.collect()}
        result.fixes["masquerade"] = masquerade_flow(lab, config, watch)
        result.fixes["ip-forward"] = node_fix_flow(
            lab, config, "ip-forward-off", "ip-forward", {},
            "sysctl -n net.ipv4.ip_forward; ls -la --time-style=+ /etc/sysctl.d; cat /etc/sysctl.d/*")
        result.fixes["etc-hosts"] = node_fix_flow(lab, config, "hosts-missing", "etc-hosts", {},
                                                  "cat /etc/hosts; stat -c %i /etc/hosts")
        result.fixes["kernel-modules"] = node_fix_flow(
            lab, config, "pool-ipip", "kernel-modules", {"module": "ipip"},
            "ls -la --time-style=+ /etc/modules-load.d; cat /etc/modules-load.d/*")
        result.fixes["calico-mtu"] = node_fix_flow(lab, config, "mtu", "calico-mtu", {}, "")
        watch.mark()
        result.pods_left = watch.left()
    lab.fault("no-masquerade", node=next(n for n in lab.nodes if n.wifi).name, on=True)
    result.after = host_state()
    return result


def test_probe_catalog_same_over_host_pod_as_over_ssh(lab: Lab, run: Run) -> None:
    assert all(run.sshd_down.values()), run.sshd_down
    assert set(run.pod) == set(run.ssh) == {n.name for n in lab.nodes}
    for node, report in run.pod.items():
        assert report["access"] == {"path": "host-pod", "reason": "node_access: pod"}
        assert run.ssh[node]["access"]["path"] == "ssh"
        assert findings(report) == findings(run.ssh[node]), node
        assert not {"ssh", "host-pod"} & set(findings(report))
    wifi = next(n for n in lab.nodes if n.wifi).name
    assert findings(run.pod[wifi])["masquerade"][0] == "fail"  # the case study, found without SSH


def test_faulted_node_same_over_host_pod_as_over_ssh(run: Run) -> None:
    pod, ssh = findings(run.faulted_pod), findings(run.faulted_ssh)
    assert pod == ssh
    assert {p for p, (status, _) in pod.items() if status == "fail"} >= {
        "ip-forward", "etc-hosts", "resolved-53", "node-address"}


def test_case_study_fix_over_host_pod(run: Run) -> None:
    from fixes.model import Outcome

    masq = run.fixes["masquerade"]
    first = masq["first"]
    assert first.outcome == Outcome.APPLIED, f"{first.message} {first.problems}"
    assert {f.probe: f.status.value for f in first.verification} == {
        "masquerade": "ok", "pod-api": "ok", "return-path": "ok"}
    nat, units = masq["applied"]
    assert nat.splitlines().count(masq["rule"]) == 1 and masq["rule"] not in masq["before"][0]
    assert "ExecStart=/bin/sh -c" in units and units.endswith("enabled\n")
    assert masq["second"].outcome == Outcome.NOTHING_TO_DO, masq["second"].message
    assert masq["undone"].outcome == Outcome.ROLLED_BACK, masq["undone"].message
    assert masq["after"] == masq["before"]


def test_every_other_fix_over_host_pod(run: Run) -> None:
    from fixes.model import Outcome

    for fix_id in ("ip-forward", "etc-hosts"):
        flow = run.fixes[fix_id]
        assert flow["first"].outcome == Outcome.APPLIED, (fix_id, flow["first"].message)
        assert [f.status.value for f in flow["first"].verification] == ["ok"]
        assert flow["applied"] != flow["before"]
        assert flow["undone"].outcome == Outcome.ROLLED_BACK and flow["after"] == flow["before"], fix_id
    modules = run.fixes["kernel-modules"]  # this kernel cannot modprobe: verified as failed, undone
    assert modules["first"].outcome == Outcome.ROLLED_BACK, modules["first"].message
    assert "modprobe" in modules["first"].message and modules["after"] == modules["before"]
    mtu = run.fixes["calico-mtu"]
    assert mtu["first"].outcome == Outcome.APPLIED, mtu["first"].message
    assert mtu["undone"].outcome == Outcome.ROLLED_BACK and mtu["installation_after"] == mtu["installation"]


def test_privileged_host_pods_only_inside_approved_fixes(run: Run) -> None:
    assert added(run.fixes["check"]["pods"]) and all(
        kind == "read-only" and not privileged for kind, privileged in added(run.fixes["check"]["pods"]))
    masq = run.fixes["masquerade"]
    assert added(masq["plan_pods"]) == [("read-only", False)]  # the plan, before any approval
    apply_added = added(masq["apply_pods"])
    assert ("privileged", True) in apply_added  # created after approval ...
    privileged = [name for event, name, kind, _ in masq["apply_pods"] if kind == "privileged"]
    deleted = [name for event, name, _, _ in masq["apply_pods"] if event == "DELETED"]
    assert set(privileged) <= set(deleted)  # ... and deleted before apply returned (after verification)
    for _, _, kind, is_privileged in run.pods.events:
        assert is_privileged == (kind == "privileged")
    assert run.pods_left == []


def test_nothing_outside_the_lab_changed(run: Run) -> None:
    changed = [key for key in run.before if run.before[key] != run.after.get(key)]
    assert changed == [], {key: (run.before[key], run.after.get(key)) for key in changed}


def test_nsenter_pid1_from_a_host_pod_is_the_node(lab: Lab) -> None:
    from probes.transports.access import NodeAccess

    machine_pid_ns = os.readlink("/proc/self/ns/pid")
    script = ("hostname; readlink /proc/1/ns/net; readlink /proc/1/ns/pid; readlink /proc/self/ns/net; "
              "tr '\\0' ' ' < /proc/1/cmdline")

    async def look(engine):  # noqa: ANN001, ANN202
        access = engine.transports.shells
        assert isinstance(access, NodeAccess)
        seen = {}
        for node in (await engine.facts()).nodes:
            privileged = await access.privileged.get(node)
            read_only = await access.read_only.get(node)
            try:
                seen[node.name] = (
                    await privileged.run(script),
                    await read_only.run("touch /etc/netcheck-write-test"),
                    await read_only.pod.run("nsenter --target 1 --mount -- true"),
                    await read_only.run("hostname; readlink /proc/self/ns/net"),
                )
            finally:
                await access.privileged.release(node.name)
                await access.read_only.release(node.name)
        return seen

    seen = in_ops(lab, pod_config(lab), look)
    assert set(seen) == {n.name for n in lab.nodes}
    for name, (pid1, write, enter, read_only) in seen.items():
        node_net = f"net:[{os.stat(netns.NETNS_RUN_DIR / lab.ns(name)).st_ino}]"
        hostname, net1, pid_ns, own_net, init = pid1.stdout.splitlines()
        assert (hostname, net1, own_net) == (name, node_net, node_net), pid1
        assert pid_ns != machine_pid_ns and "-m lab.nodeinit" in init and f"--node {name} " in init
        assert write.exit_status != 0 and "Read-only file system" in write.stderr, write
        assert enter.exit_status != 0 and "Operation not permitted" in enter.stderr, enter
        assert read_only.stdout.splitlines() == [name, node_net], read_only
