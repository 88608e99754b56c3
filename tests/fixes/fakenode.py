"""A stateful fake node and engine for the fixes unit tests (the fixes layer's own fakes).

`FakeNode` is a `FakeShell` (tests/fakes) whose answers read and change a small model of a node:
files, nat POSTROUTING rules, systemd units (enable --now and start run the unit's ExecStart rule,
disable --now and stop its ExecStop; is-enabled answers like systemctl), the
ip_forward sysctl and loaded modules. `node_engine` is the shared FakeEngine (tests/fakes/engine.py)
over that node: `NodeModelJudge` answers `check()` from the model the way the real probes would judge
it, and `InstallationCluster` adds a JSON-merge-patching Installation.
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from lab.apiserver.patch import merge_patch  # the API stand-in's RFC 7386 merge patch
from probes.catalog.ip_forward import PERSISTED_COMMAND
from probes.facts import ClusterFacts, Endpoint, InstallationFacts, IPPoolFacts, NodeFacts
from probes.model import Finding, Layer, Status
from probes.registry import Registry, default_registry
from probes.transports.base import CommandResult
from tests.fakes import FakeCluster, FakeShell
from tests.fakes.engine import FakeEngine

_SYSCTL_FILE = re.compile(r"^(/(usr/lib|lib|run|etc)/sysctl\.d/[^/]+\.conf|/etc/sysctl\.conf)$")
_FORWARD_LINE = re.compile(r"^\s*net[./]ipv(4[./]ip_forward|6[./]conf[./]all[./]forwarding)\s*=")
NODES = [("master", "10.0.0.10"), ("worker1", "10.0.0.11"), ("worker2", "192.168.1.105")]
POD_CIDRS = {"master": "192.168.86.0/24", "worker1": "192.168.87.0/24", "worker2": "192.168.88.0/24"}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class InstallationCluster(FakeCluster):
    """A merge-patched Installation plus the operator's calico-node rollout, one step per read of the
    DaemonSet (object shapes as the API stand-in serves them, lab/apiserver/operator.py)."""

    patches: list[dict[str, Any]] = field(default_factory=list)
    nodes: tuple[str, ...] = ("master", "worker1", "worker2")
    stalled: set[str] = field(default_factory=set)
    workload_pods: list[dict[str, Any]] = field(default_factory=list)
    generation: int = 1
    node_generation: dict[str, int] = field(default_factory=dict)
    node_ready: dict[str, datetime | None] = field(default_factory=dict)
    node_mtu: dict[str, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        start = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
        self.rendered = self._spec_mtu()
        for node in self.nodes:
            self.node_generation[node], self.node_ready[node] = 1, start
            self.node_mtu[node] = self.rendered

    def _spec_mtu(self) -> int | None:
        return ((self.installation or {}).get("spec", {}).get("calicoNetwork") or {}).get("mtu")

    async def patch_installation(self, patch: dict[str, Any], *, json_patch: bool = False) -> dict[str, Any]:
        assert not json_patch
        self.calls.append(("patch_installation", (patch,)))
        self.patches.append(patch)
        before = self._spec_mtu()
        self.installation = merge_patch(self.installation, patch)
        if self._spec_mtu() != before:  # the operator renders the new template
            self.generation += 1
            self.rendered = self._spec_mtu()
        return copy.deepcopy(self.installation)

    def _step(self) -> None:
        """One move of the DaemonSet controller (maxUnavailable 1, nodes in name order)."""
        now = datetime.now(UTC)
        for node in self.nodes:  # a stalled pod whose node recovered turns Ready
            if self.node_ready[node] is None and node not in self.stalled:
                self.node_ready[node], self.node_mtu[node] = now, self.rendered
                return
        unavailable = [n for n in self.nodes if self.node_ready[n] is None]
        for node in self.nodes:
            if self.node_generation[node] != self.generation and (not unavailable or node in unavailable):
                self.node_generation[node] = self.generation
                ready = node not in self.stalled
                self.node_ready[node] = now if ready else None
                self.node_mtu[node] = self.rendered if ready else self.node_mtu[node]
                return

    async def get_daemonset(self, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(("get_daemonset", (namespace, name)))
        self._step()
        names = ("FELIX_IPINIPMTU", "FELIX_VXLANMTU", "FELIX_WIREGUARDMTU")
        env = [] if self.rendered is None else [{"name": n, "value": str(self.rendered)} for n in names]
        ready = sum(1 for n in self.nodes if self.node_ready[n] is not None)
        generation = {"deprecated.daemonset.template.generation": str(self.generation)}
        return {"metadata": {"name": name, "namespace": namespace, "generation": self.generation,
                             "annotations": generation},
                "spec": {"template": {"spec": {"containers": [{"name": "calico-node", "env": env}]}}},
                "status": {"observedGeneration": self.generation, "desiredNumberScheduled": len(self.nodes),
                           "updatedNumberScheduled": sum(1 for n in self.nodes
                                                         if self.node_generation[n] == self.generation),
                           "numberAvailable": ready, "numberReady": ready}}

    async def list_pods(self, *, namespace: str | None = None, label_selector: str = "",
                        field_selector: str = "") -> list[dict[str, Any]]:
        self.calls.append(("list_pods", (namespace, label_selector, field_selector)))
        if namespace == "calico-system":
            return [self._calico_pod(n) for n in self.nodes]
        node = field_selector.removeprefix("spec.nodeName=")
        return [p for p in self.workload_pods if p["spec"]["nodeName"] == node]

    def _calico_pod(self, node: str) -> dict[str, Any]:
        since = self.node_ready[node]
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": _stamp(since)} if since else {
            "type": "Ready", "status": "False", "reason": "ContainersNotReady",
            "message": "containers with unready status: [calico-node]"}
        return {"metadata": {"name": f"calico-node-{node}", "namespace": "calico-system",
                             "labels": {"k8s-app": "calico-node",
                                        "pod-template-generation": str(self.node_generation[node])}},
                "spec": {"nodeName": node, "hostNetwork": True},
                "status": {"phase": "Running", "conditions": [ready]}}

    async def get_tigerastatus(self, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_tigerastatus", (name,)))
        done = all(self.node_generation[n] == self.generation and self.node_ready[n] for n in self.nodes)
        return {"metadata": {"name": name}, "status": {"conditions": [
            {"type": "Available", "status": "True" if done else "False"},
            {"type": "Progressing", "status": "False" if done else "True",
             "message": "" if done else 'DaemonSet "calico-system/calico-node" update is rolling out'}]}}


@dataclass
class FakeNode(FakeShell):
    files: dict[str, str] = field(default_factory=dict)
    nat_rules: list[str] = field(default_factory=list)
    enabled: set[str] = field(default_factory=set)
    active: set[str] = field(default_factory=set)
    enable_fails: bool = False  # `enable` leaves no WantedBy link (e.g. a unit without [Install])
    start_duplicates: bool = False  # a start that adds the rule twice (e.g. two ExecStart= lines)
    ip_forward: int = 1
    modules: set[str] = field(default_factory=set)
    can_modprobe: bool = True
    link_mtu: int = 1500
    interfaces: tuple[str, ...] = ("wlp59s0", "cali1234abcd")

    def __post_init__(self) -> None:
        self.files.setdefault("/etc/hosts", "127.0.0.1 localhost\n")
        self.on(r".", self._answer)

    def _ok(self, command: str, stdout: str = "", exit_status: int = 0) -> CommandResult:
        return CommandResult(command=command, exit_status=exit_status, stdout=stdout)

    def _unit_rule(self, unit: str) -> str:
        text = self.files[f"/etc/systemd/system/{unit}"]
        return re.search(r"-t nat -A (POSTROUTING [^']*)'", text).group(1)  # type: ignore[union-attr]

    def _answer(self, command: str) -> CommandResult:
        argv = shlex.split(command)
        if command.startswith("if [ -e "):
            path = argv[3]
            if path in self.files:
                return self._ok(command, self.files[path])
            return self._ok(command, exit_status=3)
        if argv[0] == "printf" and argv[3] == ">":
            self.files[argv[4]] = argv[2]
            return self._ok(command)
        if argv[:3] == ["rm", "-f", "--"]:
            self.files.pop(argv[3], None)
            return self._ok(command)
        if command == "iptables-nft-save":
            return self._ok(command, "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n")
        if command == "test -e /proc/net/ip_tables_names && iptables-legacy-save":
            return self._ok(command, exit_status=1)
        if command == "iptables --version":
            return self._ok(command, "iptables v1.8.9 (nf_tables)\n")
        if command == "command -v iptables-nft":
            return self._ok(command, "/usr/sbin/iptables-nft\n")
        if command == "/usr/sbin/iptables-nft-save -t nat":
            return self._ok(command, "*nat\n" + "".join(f"-A {r}\n" for r in self.nat_rules) + "COMMIT\n")
        if argv[0] == "/usr/sbin/iptables-nft" and argv[3] == "-A":
            self.nat_rules.append(" ".join(argv[4:]))
            return self._ok(command)
        if argv[0] == "/usr/sbin/iptables-nft" and argv[3] == "-D":
            rule = " ".join(argv[4:])
            if rule not in self.nat_rules:
                return self._ok(command, exit_status=1)
            self.nat_rules.remove(rule)
            return self._ok(command)
        if argv[:2] == ["systemctl", "daemon-reload"]:
            return self._ok(command)
        if argv[:3] == ["systemctl", "enable", "--now"]:
            if argv[3] not in self.active:
                rule = self._unit_rule(argv[3])
                if rule not in self.nat_rules:  # ExecStart: -C || -A
                    self.nat_rules.append(rule)
                self.active.add(argv[3])
            if not self.enable_fails:
                self.enabled.add(argv[3])
            return self._ok(command)
        if argv[:3] == ["systemctl", "disable", "--now"]:
            if argv[3] in self.active:
                rule = self._unit_rule(argv[3])
                if rule in self.nat_rules:  # ExecStop: -D || true
                    self.nat_rules.remove(rule)
                self.active.discard(argv[3])
            self.enabled.discard(argv[3])
            return self._ok(command)
        if argv[:2] == ["systemctl", "is-enabled"]:
            known = f"/etc/systemd/system/{argv[2]}" in self.files
            state = "enabled" if argv[2] in self.enabled else "disabled" if known else ""
            return self._ok(command, f"{state}\n" if state else "", 0 if argv[2] in self.enabled else 1)
        if argv[:2] == ["systemctl", "stop"]:
            if argv[2] in self.active:
                rule = self._unit_rule(argv[2])
                if rule in self.nat_rules:  # ExecStop: -D || true
                    self.nat_rules.remove(rule)
                self.active.discard(argv[2])
            return self._ok(command)
        if argv[:2] == ["systemctl", "start"]:
            if argv[2] not in self.active:
                rule = self._unit_rule(argv[2])
                if rule not in self.nat_rules:  # ExecStart: -C || -A
                    self.nat_rules += [rule, rule] if self.start_duplicates else [rule]
                self.active.add(argv[2])
            return self._ok(command)
        if command.startswith("while /usr/sbin/iptables-nft -t nat -D POSTROUTING "):
            rule = command.split(" -D ", 1)[1].split(" 2>/dev/null")[0]
            self.nat_rules = [r for r in self.nat_rules if r != rule]
            return self._ok(command)
        if command == PERSISTED_COMMAND:  # grep -H over the sysctl files a boot applies
            found = [f"{path}:{line}" for path, text in sorted(self.files.items())
                     if _SYSCTL_FILE.match(path) for line in text.splitlines() if _FORWARD_LINE.match(line)]
            return self._ok(command, "".join(f"{line}\n" for line in found), 0 if found else 1)
        if command == "sysctl -n net.ipv4.ip_forward":
            return self._ok(command, f"{self.ip_forward}\n")
        if argv[:2] == ["sysctl", "-w"] and argv[2].startswith("net.ipv4.ip_forward="):
            self.ip_forward = int(argv[2].split("=")[1])
            return self._ok(command)
        if argv[:2] == ["test", "-d"] and argv[2].startswith("/sys/module/"):
            return self._ok(command, exit_status=0 if argv[2].rsplit("/", 1)[1] in self.modules else 1)
        if argv[0] == "modprobe":
            if not self.can_modprobe:
                return CommandResult(command=command, exit_status=1, stderr="modprobe: FATAL: not found")
            self.modules.add(argv[1])
            return self._ok(command)
        if argv[:4] == ["ip", "-o", "route", "get"]:
            return self._ok(command, f"{argv[4]} via 192.168.1.1 dev wlp59s0 src 192.168.1.105 uid 0\n")
        if command == "ip -o link show":
            lines = ["1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN "
                     "mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd "
                     "00:00:00:00:00:00"]
            lines += [f"{i + 2}: {name}{'@if3' if name.startswith('cali') else ''}: <BROADCAST,UP> mtu "
                      f"{self.link_mtu} qdisc noqueue state UP\\    link/ether 02:00:00:00:00:0{i}"
                      for i, name in enumerate(self.interfaces)]
            return self._ok(command, "\n".join(lines) + "\n")
        if argv[:5] == ["ip", "-o", "link", "show", "dev"]:
            return self._ok(command, f"3: {argv[5]}: <BROADCAST,UP> mtu {self.link_mtu} qdisc noqueue\n")
        return CommandResult(command=command, exit_status=127, stderr=f"fake node: unknown {command!r}")

    def changes(self) -> list[str]:
        """Commands that change something (everything but the read-only ones)."""
        read_only = ("if [ -e ", "iptables-nft-save", "grep -HsE", "/usr/sbin/iptables-nft-save",
                     "command -v", "test ", "iptables --version",
                     "sysctl -n", "ip -o", "systemctl is-enabled")
        return [c for c in self.ran if not c.startswith(read_only)]


JUDGED = ("masquerade", "pod-api", "return-path", "mtu", "ip-forward", "kernel-modules", "etc-hosts")
"""The probes `NodeModelJudge` judges from the node model (each on its own: no `after=` dependencies)."""


def judged_registry() -> Registry:
    import probes.catalog  # noqa: F401  (registers the real specs)

    return Registry({probe_id: replace(default_registry[probe_id], after=()) for probe_id in JUDGED})


class NodeModelJudge:
    """Judges the probes a fix asks for (precheck, verify) from the `FakeNode` model, the way the
    real probes would; the judge of `node_engine`'s FakeEngine."""

    def __init__(self, node: FakeNode, cluster: FakeCluster) -> None:
        self.node = node
        self.cluster = cluster

    def __call__(self, node: str, probes: Sequence[str] | None) -> list[Finding]:
        return [Finding(probe=p, layer=Layer.IPTABLES, status=self._status(p), summary=f"{p} judged")
                for p in probes or ()]

    def _status(self, probe: str) -> Status:
        node = self.node
        masq = any("MASQUERADE" in r for r in node.nat_rules)
        # what a debug pod created on the node now would measure (its calico-node's MTU), never the spec
        mtu = self.cluster.node_mtu.get(node.node) if isinstance(self.cluster, InstallationCluster) else None
        hosts = node.files.get("/etc/hosts", "")
        verdicts = {
            "masquerade": masq, "pod-api": masq, "return-path": masq,
            "mtu": mtu is not None and mtu <= node.link_mtu - 20,
            "ip-forward": node.ip_forward == 1,
            "kernel-modules": "ipip" in node.modules,
            "etc-hosts": all(re.search(rf"\s{n}\b", hosts) for n, _ in NODES),
        }
        return Status.OK if verdicts[probe] else Status.FAIL


def node_engine(node: FakeNode, cluster: InstallationCluster | None = None,
                encapsulation: str = "ipip") -> FakeEngine:
    """The fake engine of the fix tests: the lab's three nodes, `node`'s shell, checks judged from
    `node`'s model (NodeModelJudge), the probes of JUDGED registered."""
    cluster = cluster or InstallationCluster(installation={"spec": {"calicoNetwork": {}}})
    pools = [IPPoolFacts(name="default-ipv4-ippool", cidr="192.168.0.0/16",
                         ipip_mode="Always" if encapsulation == "ipip" else "Never",
                         vxlan_mode="Always" if encapsulation == "vxlan" else "Never")]
    facts = ClusterFacts(
        api_service_ip="10.96.0.1", api_endpoints=[Endpoint(ip="10.0.0.10", port=6443)],
        nodes=[NodeFacts(name=n, internal_ip=a, pod_cidr=POD_CIDRS[n], pod_cidrs=[POD_CIDRS[n]],
                         ready=True) for n, a in NODES],
        installation=InstallationFacts(), ippools=pools,
    )
    return FakeEngine([n for n, _ in NODES], delay_s=0.01, judge=NodeModelJudge(node, cluster),
                      registry=judged_registry(), cluster=cluster, facts=facts, shell=node)
