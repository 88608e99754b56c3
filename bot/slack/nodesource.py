"""Adapts the cluster transport's node list/watch (plain dicts) to the node watcher's `NodeSource`.

Ready comes from the node's `Ready` condition; ClusterError 410 becomes `WatchExpired` (re-list) and
an unreachable API a ConnectionError (resume). Built by `bot/commands/serve.py`, used by `nodewatch.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from bot.slack.ports import NodeEvent, NodeState, WatchExpired
from probes.errors import ClusterError


class NodeAPI(Protocol):
    async def list_nodes_versioned(self) -> tuple[list[dict[str, Any]], str]: ...

    def watch_nodes(self, resource_version: str, *, timeout_s: int) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


def node_state(obj: dict[str, Any]) -> NodeState:
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return NodeState(name=obj["metadata"]["name"], ready=ready)


class ClusterNodeSource:
    def __init__(self, cluster: NodeAPI, *, watch_timeout_s: int = 300) -> None:
        self._cluster = cluster
        self._watch_timeout_s = watch_timeout_s

    async def list_nodes(self) -> tuple[list[NodeState], str]:
        nodes, version = await self._cluster.list_nodes_versioned()
        return [node_state(n) for n in nodes], version

    async def watch_nodes(self, resource_version: str) -> AsyncIterator[NodeEvent]:
        try:
            async for event in self._cluster.watch_nodes(resource_version, timeout_s=self._watch_timeout_s):
                obj = event["object"]
                version = str((obj.get("metadata") or {}).get("resourceVersion") or resource_version)
                yield NodeEvent(type=event["type"], node=node_state(obj), resource_version=version)
        except ClusterError as exc:
            if exc.status == 410:
                raise WatchExpired(str(exc)) from exc
            raise ConnectionError(str(exc)) from exc

    async def aclose(self) -> None:
        """Close the source's cluster client (its own: bot/wiring.py)."""
        await self._cluster.aclose()
