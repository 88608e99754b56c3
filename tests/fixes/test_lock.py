"""The per-node fix Lease (fixes/lock.py) over an in-memory Lease store with the API server's
optimistic concurrency (resourceVersion, 409 on a stale write or an existing name).

Covers: a second process is told who is busy after lock_wait; it goes on as soon as the first
releases; a holder that stopped renewing (crashed) is taken over after the lease duration as
observed on the waiter's clock, a renewing one never; two holds of one process serialize too; and
two FixRunners (as the CLI and the bot) applying the same fix on one node: one applies, the other's
precheck starts only after the first verified, and it finds nothing to do; without the Lease's
namespace (no bot deployed) a fix still runs, under the process's own lock.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from fixes.lock import ClusterFixLock, FixLockBusy, lease_name
from fixes.model import Approval, Outcome
from fixes.runner import FixRunner
from fixes.settings import FixSettings
from probes.errors import ClusterConflict, ClusterNotFound
from tests.fixes.fakenode import FakeNode, node_engine

MASQ = {"pod_cidr": "192.168.88.0/24", "interface": "wlp59s0"}
FAST = FixSettings(lock_duration=0.3, lock_wait=0.2, lock_retry=0.02)


class Leases:
    """Lease objects by name, with resourceVersion checks like the API server's."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0

    def _stored(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body = copy.deepcopy(body)
        body.setdefault("metadata", {}).update(name=name, resourceVersion=str(self.version))
        self.objects[name] = body
        return copy.deepcopy(body)

    async def get(self, name: str) -> dict[str, Any]:
        if name not in self.objects:
            raise ClusterNotFound(f"lease {name} not found", status=404)
        return copy.deepcopy(self.objects[name])

    async def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if name in self.objects:
            raise ClusterConflict(f"lease {name} already exists", status=409)
        return self._stored(name, body)

    async def replace(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        current = self.objects.get(name)
        if current is None:
            raise ClusterNotFound(f"lease {name} not found", status=404)
        if body.get("metadata", {}).get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ClusterConflict(f"lease {name} was modified", status=409)
        return self._stored(name, body)

    def holder(self, node: str) -> str:
        return self.objects[lease_name(node)]["spec"]["holderIdentity"]


def lock(store: Leases, owner: str, settings: FixSettings = FAST) -> ClusterFixLock:
    return ClusterFixLock(store, namespace="netcheck", owner=owner, settings=settings)


async def test_second_process_is_told_who_is_busy() -> None:
    store = Leases()
    held = await lock(store, "cli-1").acquire("worker2", "masquerade approved by alice@laptop")
    assert store.holder("worker2").startswith("cli-1.")
    with pytest.raises(FixLockBusy) as busy:
        await lock(store, "bot-2").acquire("worker2", "masquerade approved by UBOB")
    message = str(busy.value)
    assert message.startswith("worker2 is busy: masquerade approved by alice@laptop is running there")
    assert "Lease netcheck/netcheck-fix-worker2" in message and "\n" not in message
    other_node = await lock(store, "bot-2").acquire("worker1", "ip-forward approved by UBOB")
    await other_node.release()  # other nodes are not held up
    await held.release()
    assert store.holder("worker2") == ""


async def test_a_waiting_process_goes_on_when_the_first_releases() -> None:
    store = Leases()
    first = await lock(store, "cli-1").acquire("worker2", "masquerade")
    waiting = asyncio.create_task(
        lock(store, "bot-2", FAST.model_copy(update={"lock_wait": 5})).acquire("worker2", "masquerade"))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    started = time.monotonic()
    await first.release()
    second = await asyncio.wait_for(waiting, 2)
    assert time.monotonic() - started < 1 and store.holder("worker2").startswith("bot-2.")
    await second.release()


async def test_a_crashed_holder_is_taken_over_a_renewing_one_never() -> None:
    store = Leases()
    crashed = await lock(store, "cli-1").acquire("worker2", "masquerade")
    crashed._renewing.cancel()  # the process died: no renewal, no release
    patient = FAST.model_copy(update={"lock_wait": 3})
    started = time.monotonic()
    taken = await lock(store, "bot-2", patient).acquire("worker2", "masquerade")
    assert FAST.lock_duration <= time.monotonic() - started < 2  # after one lease duration, observed
    with pytest.raises(FixLockBusy):  # bot-2 renews every third of the duration: never stale
        await lock(store, "bot-3", FAST.model_copy(update={"lock_wait": 1})).acquire("worker2", "x")
    await taken.release()


async def test_two_holds_of_one_process_serialize() -> None:
    store = Leases()
    same = lock(store, "bot-2")
    held = await same.acquire("worker2", "masquerade")
    with pytest.raises(FixLockBusy):
        await same.acquire("worker2", "ip-forward")
    await held.release()


def events(err: str) -> list[dict]:
    return [e for e in (json.loads(line) for line in err.splitlines() if line.startswith("{"))
            if e.get("logger") == "netcheck.audit"]


async def test_cli_and_bot_apply_the_same_fix_once(capsys: pytest.CaptureFixture[str]) -> None:
    store, node = Leases(), FakeNode(node="worker2")
    engine = node_engine(node)
    settings = FAST.model_copy(update={"lock_wait": 10})
    cli = FixRunner(engine, settings=settings, node_lock=lock(store, "cli-1", settings))
    bot = FixRunner(engine, settings=settings, node_lock=lock(store, "bot-2", settings))
    when = datetime.now(UTC)
    capsys.readouterr()
    results = await asyncio.gather(
        cli.apply("worker2", "masquerade", MASQ, Approval(approver="alice@laptop", approved_at=when,
                                                          requested_by="alice@laptop")),
        bot.apply("worker2", "masquerade", MASQ, Approval(approver="UBOB", approved_at=when,
                                                          requested_by="UALICE")),
    )
    assert sorted(r.outcome for r in results) == [Outcome.APPLIED, Outcome.NOTHING_TO_DO]
    assert len(node.nat_rules) == 1
    trail = events(capsys.readouterr().err)
    winner = next(e["who"] for e in trail if e["step"] == "verify")
    verified = next(e["timestamp"] for e in trail if e["step"] == "verify")
    loser_started = next(e["timestamp"] for e in trail if e["step"] == "approval" and e["who"] != winner)
    assert loser_started >= verified  # the second precheck began after the first apply verified


async def test_without_the_lease_namespace_the_cli_works_alone() -> None:
    """No namespace for the Lease (the CLI used without a bot deployed): nothing to share the node
    with, so the fix runs under this process's lock only, and says so in the log."""

    class NoNamespace(Leases):
        async def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
            raise ClusterNotFound('namespaces "netcheck" not found', status=404)

    node = FakeNode(node="worker2")
    runner = FixRunner(node_engine(node), settings=FAST, node_lock=lock(NoNamespace(), "cli-1"))
    approval = Approval(approver="alice@laptop", approved_at=datetime.now(UTC), requested_by="alice@laptop")
    result = await runner.apply("worker2", "masquerade", MASQ, approval)
    assert result.outcome == Outcome.APPLIED and len(node.nat_rules) == 1
