"""Small fakes for the Slack bot tests (no tests here): an engine with a slow, switchable report,
a fix runner that records applies, and a scripted node source. Used by tests/bot/test_slack*.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
import structlog

from bot.slack.ports import NodeEvent, NodeState, WatchExpired
from fixes.model import Approval, FixResult, Outcome, Plan
from probes.diff import compare_nodes
from probes.engine import UnknownNode
from probes.errors import ClusterUnreachable
from probes.followup import Comparison
from probes.model import Finding, FixProposal, Layer, Report, Status

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
    def __init__(self, nodes: list[str], *, delay_s: float = 0.0) -> None:
        self.nodes = list(nodes)
        self.broken = {"worker2"}
        self.delay_s = delay_s
        self.in_flight = 0
        self.checks: list[str] = []
        self.refreshes = 0

    async def facts(self, *, refresh: bool = False) -> None:
        self.refreshes += refresh

    async def node_names(self) -> list[str]:
        return list(self.nodes)

    async def check(self, node: str, *, probes: object = None, follow_up: object = None) -> Report:
        if node == "unreachable":
            raise ClusterUnreachable("list nodes: API server unreachable: connection refused")
        if node not in self.nodes:
            raise UnknownNode(f"unknown node {node!r}: did you mean worker1, worker2?")
        self.in_flight += 1
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        self.checks.append(node)
        findings = broken_findings() if node in self.broken else healthy_findings()
        return Report(node=node, started_at=datetime.now(UTC), duration_s=self.delay_s, findings=findings)

    async def check_all(self, *, probes: object = None) -> list[Report]:
        return [await self.check(n) for n in self.nodes]

    async def compare(self, node: str, *, against: str | None = None) -> Comparison:
        """The node's report against the first other node's, diffed on their observations."""
        report = await self.check(node)
        reference = await self.check(against or next(n for n in self.nodes if n != node))
        report = report.model_copy(update={"peers": [reference], "reference": reference.node})
        return Comparison(report=report, reference=reference, diff=compare_nodes(report, reference, [report]))


class FakeRunner:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.applied: list[tuple[str, str, dict, Approval]] = []

    async def plan(self, node: str, fix_id: str, params: dict) -> Plan:
        return Plan(fix=fix_id, node=node, params=params, summary=f"iptables -t nat -A POSTROUTING "
                    f"-s {params['cidr']} -o {params['iface']} -j MASQUERADE", change="(full change)")

    async def apply(self, node: str, fix_id: str, params: dict, approval: Approval,
                    *, progress=None) -> FixResult:  # noqa: ANN001
        assert isinstance(approval, Approval)
        if progress is not None:
            await progress("rule added, verifying")
        await asyncio.sleep(0.05)  # lets a second, concurrent click arrive while this one runs
        self.applied.append((node, fix_id, params, approval))
        self.engine.broken.discard(node)
        return FixResult(outcome=Outcome.APPLIED, message="MASQUERADE rule added; pod→API reachable")


class FakeNodeSource:
    """Scripted list + watch: tests push events, a 410, or a dropped stream."""

    def __init__(self, nodes: list[NodeState]) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.version = 1
        self.events: asyncio.Queue[NodeEvent | Exception | None] = asyncio.Queue()
        self.lists = 0
        self.fail_lists = 0  # the next N lists raise ClusterUnreachable
        self.watches: list[str] = []

    async def list_nodes(self) -> tuple[list[NodeState], str]:
        self.lists += 1
        if self.fail_lists:
            self.fail_lists -= 1
            raise ClusterUnreachable("list nodes: API server unreachable")
        return list(self.nodes.values()), str(self.version)

    def set(self, name: str, ready: bool, *, kind: str = "MODIFIED", announce: bool = True) -> None:
        self.version += 1
        state = NodeState(name=name, ready=ready)
        self.nodes[name] = state
        if announce:
            self.events.put_nowait(NodeEvent(type=kind, node=state, resource_version=str(self.version)))

    async def watch_nodes(self, resource_version: str) -> AsyncIterator[NodeEvent]:
        self.watches.append(resource_version)
        while True:
            item = await self.events.get()
            if item is None:
                return  # the server closed the stream
            if isinstance(item, Exception):
                raise item
            yield item


GONE = WatchExpired


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """structlog back to its defaults around each test: a test that ran `netcheck` main() leaves it
    printing to that test's (closed) capture stream. Imported by every tests/bot/test_slack*.py."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
