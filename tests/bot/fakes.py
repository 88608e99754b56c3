"""Small fakes for the Slack bot tests: a fix runner that records applies (over the shared
FakeEngine of tests/fakes/engine.py), a scripted node source, and the node watch started as serve
starts it. Used by tests/bot/test_slack*.py and test_serve_ops_shutdown.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from bot.slack.nodewatch import NodeWatcher
from bot.slack.ports import NodeEvent, NodeSource, NodeState, WatchExpired
from bot.slack.runtime import Runtime
from fixes.model import Approval, FixResult, Outcome, Plan
from probes.errors import ClusterUnreachable
from probes.hooks import Hooks
from tests.fakes.engine import FakeEngine


class FakeRunner:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.applied: list[tuple[str, str, dict, Approval]] = []
        self.on_result: Hooks[[str, FixResult]] = Hooks("on_result")

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
        result = FixResult(outcome=Outcome.APPLIED, message="MASQUERADE rule added; pod→API reachable")
        self.on_result(fix_id, result)
        return result


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


def start_node_watch(rt: Runtime, source: NodeSource) -> NodeWatcher:
    """The node-join watch on `slack.join_channel`, as `netcheck serve` starts it on the leader
    (here a tracked task of the bot's runtime, stopped with it)."""
    assert rt.settings.join_channel, "the test's settings name no join channel"
    watcher = NodeWatcher(rt, source, rt.settings.join_channel)
    rt.tasks.spawn(watcher.run(), name="node-watch")
    return watcher
