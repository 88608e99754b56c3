"""Leader election against an in-memory LeaseStore that behaves like the API server's Lease storage.

Covers: exactly one of two electors leads (create race: one 409); the standby takes over after the
leader stops renewing (crash: after leaseDurationSeconds as it observes it) and at once after a
`release()`; a stale resourceVersion write is a conflict, never a second leader; a leader that cannot
renew (API errors) steps down after renew_deadline; leaseTransitions and holderIdentity bookkeeping.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
import structlog.testing

from bot.ops.leader import LeaderElector
from bot.ops.settings import OpsSettings
from probes.errors import ClusterConflict, ClusterNotFound, ClusterUnreachable

FAST = OpsSettings(lease_duration=1.0, renew_deadline=0.6, retry_period=0.05, lease_namespace="netcheck")


class MemoryLeaseStore:
    """Optimistic concurrency like etcd: every write bumps resourceVersion; a stale one is a 409."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.broken = False

    def _guard(self) -> None:
        if self.broken:
            raise ClusterUnreachable("connection refused")

    async def get(self, name: str) -> dict[str, Any]:
        self._guard()
        await asyncio.sleep(0)
        if name not in self.objects:
            raise ClusterNotFound(f"leases {name} not found", status=404)
        return copy.deepcopy(self.objects[name])

    async def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._guard()
        await asyncio.sleep(0)
        if name in self.objects:
            raise ClusterConflict(f"leases {name} already exists", status=409)
        return self._store(name, body)

    async def replace(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._guard()
        await asyncio.sleep(0)
        current = self.objects.get(name)
        if current is None:
            raise ClusterNotFound(f"leases {name} not found", status=404)
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ClusterConflict("the object has been modified", status=409)
        return self._store(name, body)

    def _store(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[name] = stored
        return copy.deepcopy(stored)

    def holder(self) -> str:
        return self.objects[FAST.lease_name]["spec"]["holderIdentity"]


async def _until(predicate, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def store() -> MemoryLeaseStore:
    return MemoryLeaseStore()


async def test_create_race_has_one_winner(store):
    a, b = LeaderElector(store, "a", settings=FAST), LeaderElector(store, "b", settings=FAST)
    results = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
    assert sorted(results) == [False, True]
    winner = "a" if results[0] else "b"
    assert store.holder() == winner
    spec = store.objects[FAST.lease_name]["spec"]
    assert spec["leaseDurationSeconds"] == 1 and spec["renewTime"].endswith("Z")


async def test_stale_resource_version_is_not_leadership(store):
    a = LeaderElector(store, "a", settings=FAST)
    assert await a.try_acquire_or_renew()
    lease = await store.get(FAST.lease_name)
    assert await a.try_acquire_or_renew()  # renewal bumps resourceVersion
    lease["spec"]["holderIdentity"] = "intruder"
    with pytest.raises(ClusterConflict):
        await store.replace(FAST.lease_name, lease)
    assert store.holder() == "a"


async def test_standby_takes_over_after_crash_and_after_release(store):
    started: list[str] = []

    def elector(name: str) -> LeaderElector:
        async def on_start() -> None:
            started.append(name)

        return LeaderElector(store, name, settings=FAST, on_started_leading=on_start)

    a, b = elector("a"), elector("b")
    run_a = asyncio.create_task(a.run())
    await _until(lambda: a.is_leader)
    run_b = asyncio.create_task(b.run())
    await asyncio.sleep(0.5)  # several retry periods: b must stay standby while a renews
    assert a.is_leader and not b.is_leader
    assert store.holder() == "a"

    run_a.cancel()  # crash: no release, the Lease just stops being renewed
    loop = asyncio.get_running_loop()
    crashed_at = loop.time()
    await _until(lambda: b.is_leader)
    assert loop.time() - crashed_at >= FAST.lease_duration * 0.8  # waited out the lease, not sooner
    assert store.holder() == "b"
    assert store.objects[FAST.lease_name]["spec"]["leaseTransitions"] == 1

    a2 = elector("a2")
    run_a2 = asyncio.create_task(a2.run())
    await asyncio.sleep(0.3)
    assert not a2.is_leader
    run_b.cancel()
    released_at = loop.time()
    with structlog.testing.capture_logs() as logs:
        await b.release()
    assert store.holder() == ""
    # giving the Lease up at shutdown is news, not a failure (a lost Lease is the warning)
    assert [(e["event"], e["log_level"]) for e in logs if "leadership" in e["event"]] == [
        ("leadership_released", "info")]
    await _until(lambda: a2.is_leader)
    assert loop.time() - released_at < FAST.lease_duration  # released: no wait for expiry
    run_a2.cancel()
    await asyncio.gather(run_a, run_b, run_a2, return_exceptions=True)
    assert started == ["a", "b", "a2"]


async def test_leader_steps_down_when_it_cannot_renew(store):
    stopped = asyncio.Event()

    async def on_stop() -> None:
        stopped.set()

    a = LeaderElector(store, "a", settings=FAST, on_stopped_leading=on_stop)
    run = asyncio.create_task(a.run())
    await _until(lambda: a.is_leader)
    store.broken = True
    loop = asyncio.get_running_loop()
    broke_at = loop.time()
    await asyncio.wait_for(stopped.wait(), timeout=3)
    assert FAST.renew_deadline * 0.8 <= loop.time() - broke_at < FAST.lease_duration
    assert not a.is_leader
    store.broken = False
    await _until(lambda: a.is_leader)  # its own Lease: re-acquired at once
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
