"""One transport attempt per node per run: the memory the engine shares across a check (or a sweep).

Used by `probes/engine.py` for every node transport it acquires (the node shell, the debug pod, a
peer's debug pod), whatever implements it. The first caller for a (transport, node) pair makes the
attempt; callers arriving while it runs wait for it rather than starting their own; a failure is
remembered, so every later caller in the same run gets the same reason at once instead of creating
and waiting for another debug pod (or SSH connection) that would fail the same way.

A success is not memoised here: the transports pool their own connections and pods (and count their
users), so a later caller simply gets the pooled object again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from probes.errors import TransportUnavailable
from probes.facts import NodeFacts

log = structlog.get_logger("netcheck.engine")

T = TypeVar("T")


class TransportAttempts:
    """Per-run memory of node transport attempts, keyed by (transport kind, node name)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._failures: dict[tuple[str, str], str] = {}

    async def acquire(self, kind: str, node: NodeFacts, get: Callable[[NodeFacts], Awaitable[T]]) -> T:
        """`get(node)` unless this run already failed to get it; raises `TransportUnavailable`."""
        key = (kind, node.name)
        async with self._locks.setdefault(key, asyncio.Lock()):
            remembered = self._failures.get(key)
            if remembered is not None:
                raise TransportUnavailable(remembered)
            try:
                return await get(node)
            except TransportUnavailable as exc:
                self._failures[key] = str(exc)
                # said the moment it is known: a sweep's log shows a dead node long before its report
                log.warning("transport unavailable", node=node.name, transport=kind, reason=str(exc))
                raise

    def failure(self, kind: str, node: str) -> str | None:
        """The remembered reason `kind` could not be had on `node` in this run, if it failed."""
        return self._failures.get((kind, node))
