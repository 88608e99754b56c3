"""The one fake `probes.api.EngineAPI` of the bot and fix unit tests: no transports, no cluster I/O.

A report's findings come from `judge(node, probes)`. By default that is the Slack tests' case study
(`broken_findings()` on the nodes in `broken`, `healthy_findings()` elsewhere: applying a fix through
the bot's fake runner takes the node out of `broken`); the fix tests pass
`tests.fixes.fakenode.NodeModelJudge`, which judges each asked probe from a `FakeNode`'s state the way
the real probe would. `forced` overrides any judge for a probe. The engine records what it did
(`checks`: the nodes checked, `probes_checked`: with the probes asked for, `shells_used`,
`closed_with`) so tests assert on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

from probes.diff import compare_nodes
from probes.errors import ClusterUnreachable, UnknownNode
from probes.facts import ClusterFacts, Endpoint, NodeFacts
from probes.followup import Comparison
from probes.hooks import Hooks
from probes.model import Finding, FixProposal, Layer, Report, Status
from probes.registry import Registry
from probes.transports.base import ClusterAPI, NodeShell
from tests.fakes import FakeCluster

Judge = Callable[[str, Sequence[str] | None], list[Finding]]
UNREACHABLE_NODE = "unreachable"
"""A node known from the last discovery but gone by the check's: its check raises ClusterUnreachable."""
EVIDENCE = "\n".join(f"-A POSTROUTING -s 10.{i}.0.0/16 -j RETURN  # <rule & more>" for i in range(400))


def broken_findings() -> list[Finding]:
    return [
        Finding(probe="pod-api", layer=Layer.POD_APP, status=Status.FAIL, summary="pod→API unreachable",
                evidence="curl: (28) timed out", remediation="Fix the cause first.", caused_by="masquerade"),
        Finding(probe="masquerade", layer=Layer.IPTABLES, status=Status.FAIL,
                summary="no MASQUERADE on wlp59s0", evidence=EVIDENCE,
                remediation="Add a MASQUERADE rule for 192.168.88.0/24 out of wlp59s0.",
                fix=FixProposal(id="masquerade", params={"iface": "wlp59s0", "cidr": "192.168.88.0/24"})),
        Finding(probe="route", layer=Layer.HOST_ROUTE, status=Status.OK, summary="default route via wlp59s0"),
        Finding(probe="mtu", layer=Layer.PHYSICAL, status=Status.OK, summary="MTU 1500 consistent"),
    ]


def healthy_findings() -> list[Finding]:
    fine = {"status": Status.OK, "caused_by": None, "fix": None}
    return [f.model_copy(update=fine) for f in broken_findings()]


class FakeEngine:
    def __init__(
        self,
        nodes: Sequence[str] = ("worker2",),
        *,
        delay_s: float = 0.0,
        judge: Judge | None = None,
        registry: Registry | None = None,
        cluster: ClusterAPI | None = None,
        facts: ClusterFacts | None = None,
        shell: NodeShell | None = None,
    ) -> None:
        self.nodes = list(nodes)
        self.broken = {"worker2"}
        self.delay_s = delay_s
        self.judge = judge or self._case_study
        self.registry = registry or Registry()
        self.cluster = cluster or FakeCluster()
        self._facts = facts or ClusterFacts(
            api_service_ip="10.96.0.1", api_endpoints=[Endpoint(ip="10.0.0.10", port=6443)],
            nodes=[NodeFacts(name=n, ready=True) for n in self.nodes],
        )
        self.shell = shell
        self.forced: dict[str, Status] = {}
        self.disabled: set[str] = set()
        self.on_report: Hooks[[Report]] = Hooks("on_report")
        self.in_flight = 0
        self.checks: list[str] = []
        self.probes_checked: list[tuple[str, tuple[str, ...]]] = []
        self.refreshes = 0
        self.privileged = False
        self.shells_used: list[tuple[str, bool]] = []
        self.closed_with: tuple[int, int] | None = None
        """(checks in flight, checks finished) when `aclose()` ran."""

    def _case_study(self, node: str, probes: Sequence[str] | None) -> list[Finding]:
        return broken_findings() if node in self.broken else healthy_findings()

    async def facts(self, *, refresh: bool = False) -> ClusterFacts:
        self.refreshes += refresh
        return self._facts

    async def node_names(self) -> list[str]:
        return list(self.nodes)

    async def resolve_node(self, name: str) -> NodeFacts:
        if name not in self.nodes:  # worded as probes.engine.Engine words it
            close = difflib.get_close_matches(name, self.nodes, n=3, cutoff=0.4)
            hint = f"did you mean {', '.join(close)}?" if close else f"known nodes: {', '.join(self.nodes)}"
            raise UnknownNode(f"unknown node {name!r}: {hint}")
        known = {n.name: n for n in self._facts.nodes}
        return known.get(name) or NodeFacts(name=name, ready=True)

    def enabled(self, probe_ids: Sequence[str]) -> list[str]:
        return [p for p in probe_ids if p in self.registry and p not in self.disabled]

    async def check(self, node: str, *, probes: Sequence[str] | None = None,
                    follow_up: bool | None = None) -> Report:
        report = await self._report(node, probes)
        self.on_report(report)
        return report

    async def check_all(self, *, probes: Sequence[str] | None = None,
                        concurrency: int | None = None) -> list[Report]:
        reports = [await self._report(n, probes) for n in self.nodes]
        for report in reports:
            self.on_report(report)
        return reports

    async def compare(self, node: str, *, against: str | None = None) -> Comparison:
        """The node's report against the first other node's, diffed on their observations."""
        report = await self._report(node, None)
        reference = await self._report(against or next(n for n in self.nodes if n != node), None)
        report = report.model_copy(update={"peers": [reference], "reference": reference.node})
        return Comparison(report=report, reference=reference, diff=compare_nodes(report, reference, [report]))

    async def _report(self, node: str, probes: Sequence[str] | None) -> Report:
        if node == UNREACHABLE_NODE:
            raise ClusterUnreachable("list nodes: API server unreachable: connection refused")
        await self.resolve_node(node)
        self.in_flight += 1
        try:
            await asyncio.sleep(self.delay_s)  # a real check takes time: concurrent requests overlap
        finally:
            self.in_flight -= 1
        self.checks.append(node)
        self.probes_checked.append((node, tuple(probes or ())))
        findings = [f.model_copy(update={"status": self.forced[f.probe]}) if f.probe in self.forced else f
                    for f in self.judge(node, probes)]
        return Report(node=node, started_at=datetime.now(UTC), duration_s=self.delay_s, findings=findings)

    async def node_shell(self, node: str) -> NodeShell:
        assert self.shell is not None, "this fake engine has no node shell"
        assert node == getattr(self.shell, "node", node), f"a shell on {node} was asked for"
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

    async def aclose(self) -> None:
        self.closed_with = (self.in_flight, len(self.checks))
