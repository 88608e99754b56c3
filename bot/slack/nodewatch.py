"""Node joins: watch the cluster's nodes and check each new one once it is Ready, compared field by
field with a healthy reference node (`threads.run_join`).

Nodes present at start never trigger; a node triggers once (flapping Ready does not repeat it). A
dropped stream resumes from the last resourceVersion; 410 Gone (`WatchExpired`) re-lists. Started by
`app.py` when `join_channel` is set and a node source is given.
"""

from __future__ import annotations

import asyncio

import structlog

from bot.slack import messages as msg
from bot.slack import threads
from bot.slack.ports import NodeEvent, NodeSource, NodeState, WatchExpired
from bot.slack.runtime import Runtime
from probes.errors import NetcheckError

log = structlog.get_logger("netcheck.slack.nodewatch")

JOIN_REQUESTER = "netcheck"


class NodeWatcher:
    def __init__(self, rt: Runtime, source: NodeSource, channel: str) -> None:
        self._rt = rt
        self._source = source
        self._channel = channel
        self._retry_delay_s = rt.settings.watch_retry_s
        self._seen: set[str] = set()
        self._announced: set[str] = set()
        self._pending: set[str] = set()  # new nodes not Ready yet
        self.ready = asyncio.Event()
        """Set once the initial list is known (tests wait for it before adding nodes)."""

    async def run(self) -> None:
        nodes, version = await self._source.list_nodes()
        self._seen = {n.name for n in nodes}
        self.ready.set()
        relist = False
        while True:
            try:
                if relist:
                    nodes, version = await self._source.list_nodes()
                    relist = False
                    for node in nodes:
                        self._on_state(node)
                async for event in self._source.watch_nodes(version):
                    version = event.resource_version
                    self._on_event(event)
                log.info("watch_ended", resource_version=version)  # resume from where it stopped
            except WatchExpired:
                log.info("watch_expired", resource_version=version)
                relist = True
            except (ConnectionError, OSError, TimeoutError, NetcheckError) as exc:
                log.warning("watch_dropped", error=str(exc), resource_version=version, relist=relist)
                await asyncio.sleep(self._retry_delay_s)

    def _on_event(self, event: NodeEvent) -> None:
        if event.type == "DELETED":
            return
        self._on_state(event.node)

    def _on_state(self, node: NodeState) -> None:
        if node.name in self._announced:
            return
        if node.name not in self._seen:
            self._seen.add(node.name)
            self._pending.add(node.name)
        if node.ready and node.name in self._pending:
            self._pending.discard(node.name)
            self._announced.add(node.name)
            log.info("node_joined", node=node.name, channel=self._channel)
            self._rt.tasks.spawn(self._announce(node.name), name=f"join-{node.name}")

    async def _announce(self, node: str) -> None:
        await self._rt.engine.facts(refresh=True)  # the engine caches the node list; this node is new
        parent_ts = await threads.post_parent(self._rt, self._channel, msg.node_joined(node))
        if parent_ts is not None:
            await threads.run_join(self._rt, node, self._channel, JOIN_REQUESTER, parent_ts)
