"""A stateful fake node and engine for the fixes unit tests (the fixes layer's own fakes).

`FakeNode` is a `FakeShell` (tests/fakes) whose answers read and change a small model of a node:
files, nat POSTROUTING rules, systemd units (enable --now runs the unit's ExecStart rule), the
ip_forward sysctl and loaded modules. `FakeEngine` answers `check()` from that model the way the
real probes would judge it, and `InstallationCluster` adds a JSON-merge-patching Installation.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lab.apiserver.patch import merge_patch  # the API stand-in's RFC 7386 merge patch
from probes.facts import ClusterFacts, Endpoint, InstallationFacts, IPPoolFacts, NodeFacts
from probes.model import Finding, Layer, Report, Status
from probes.transports.base import CommandResult
from tests.fakes import FakeCluster, FakeShell

NODES = [("master", "10.0.0.10"), ("worker1", "10.0.0.11"), ("worker2", "192.168.1.105")]
POD_CIDRS = {"master": "192.168.86.0/24", "worker1": "192.168.87.0/24", "worker2": "192.168.88.0/24"}


@dataclass
class InstallationCluster(FakeCluster):
    patches: list[dict[str, Any]] = field(default_factory=list)

    async def patch_installation(self, patch: dict[str, Any], *, json_patch: bool = False) -> dict[str, Any]:
        assert not json_patch
        self.calls.append(("patch_installation", (patch,)))
        self.patches.append(patch)
        self.installation = merge_patch(self.installation, patch)
        return copy.deepcopy(self.installation)


@dataclass
class FakeNode(FakeShell):
    files: dict[str, str] = field(default_factory=dict)
    nat_rules: list[str] = field(default_factory=list)
    enabled: set[str] = field(default_factory=set)
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
        if argv[:2] == ["systemctl", "daemon-reload"]:
            return self._ok(command)
        if argv[:3] == ["systemctl", "enable", "--now"]:
            rule = self._unit_rule(argv[3])
            if rule not in self.nat_rules:  # ExecStart: -C || -A
                self.nat_rules.append(rule)
            self.enabled.add(argv[3])
            return self._ok(command)
        if argv[:3] == ["systemctl", "disable", "--now"]:
            if argv[3] in self.enabled:
                rule = self._unit_rule(argv[3])
                if rule in self.nat_rules:  # ExecStop: -D || true
                    self.nat_rules.remove(rule)
                self.enabled.discard(argv[3])
            return self._ok(command)
        if argv[:2] == ["systemctl", "is-enabled"]:
            return self._ok(command, exit_status=0 if argv[2] in self.enabled else 1)
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
        read_only = ("if [ -e ", "iptables-nft-save", "/usr/sbin/iptables-nft-save", "command -v", "test ",
                     "iptables --version",
                     "sysctl -n", "ip -o", "systemctl is-enabled")
        return [c for c in self.ran if not c.startswith(read_only)]


class FakeEngine:
    """The slice of `probes.engine.Engine` fixes use, judging probes from the `FakeNode` model."""

    def __init__(self, node: FakeNode, cluster: InstallationCluster | None = None,
                 encapsulation: str = "ipip") -> None:
        self.shell = node
        self.shells_used: list[tuple[str, bool]] = []
        self.privileged = False
        self.cluster = cluster or InstallationCluster(installation={"spec": {"calicoNetwork": {}}})
        self.forced: dict[str, Status] = {}
        self.checks: list[tuple[str, tuple[str, ...]]] = []
        self.refreshes = 0
        pools = [IPPoolFacts(name="default-ipv4-ippool", cidr="192.168.0.0/16",
                             ipip_mode="Always" if encapsulation == "ipip" else "Never",
                             vxlan_mode="Always" if encapsulation == "vxlan" else "Never")]
        self._facts = ClusterFacts(
            api_service_ip="10.96.0.1", api_endpoints=[Endpoint(ip="10.0.0.10", port=6443)],
            nodes=[NodeFacts(name=n, internal_ip=a, pod_cidr=POD_CIDRS[n], pod_cidrs=[POD_CIDRS[n]],
                             ready=True) for n, a in NODES],
            installation=InstallationFacts(), ippools=pools,
        )

    async def facts(self, *, refresh: bool = False) -> ClusterFacts:
        self.refreshes += refresh
        return self._facts

    async def node_shell(self, node: str) -> FakeNode:
        assert node == self.shell.node, f"fix asked for a shell on {node}"
        self.shells_used.append((node, self.privileged))
        return self.shell

    @contextlib.asynccontextmanager
    async def node_session(self, node: str, *, privileged: bool = False) -> AsyncIterator[None]:
        """Records whether a fix's commands ran in an approved (privileged) session."""
        outer, self.privileged = self.privileged, privileged
        try:
            yield
        finally:
            self.privileged = outer

    def _judge(self, probe: str) -> Status:
        if probe in self.forced:
            return self.forced[probe]
        node = self.shell
        masq = any("MASQUERADE" in r for r in node.nat_rules)
        mtu = ((self.cluster.installation or {}).get("spec", {}).get("calicoNetwork") or {}).get("mtu")
        hosts = node.files.get("/etc/hosts", "")
        verdicts = {
            "masquerade": masq, "pod-api": masq, "return-path": masq,
            "mtu": mtu is not None and mtu <= node.link_mtu - 20,
            "ip-forward": node.ip_forward == 1,
            "kernel-modules": "ipip" in node.modules,
            "etc-hosts": all(re.search(rf"\s{n}\b", hosts) for n, _ in NODES),
        }
        return Status.OK if verdicts[probe] else Status.FAIL

    async def check(self, node: str, *, probes: list[str] | None = None) -> Report:
        await asyncio.sleep(0.01)  # a real check takes time: lets concurrent applies overlap
        self.checks.append((node, tuple(probes or ())))
        findings = [Finding(probe=p, layer=Layer.IPTABLES, status=self._judge(p), summary=f"{p} judged")
                    for p in probes or ()]
        return Report(node=node, started_at=datetime.now(UTC), duration_s=0.01, findings=findings)
