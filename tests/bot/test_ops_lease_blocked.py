"""A Lease the bot cannot have (bot/ops/leader.py, bot/ops/runtime.py), against an in-memory store
that answers like the API server would.

Covers: a 403 on the Lease is ONE error line (however many retries) naming the namespace/Lease, the
Role rules to grant and `ops.leader_election: false`, and `blocked` holds that reason until a retry
succeeds (then one info line and leadership); a 404 on create (no namespace) says to create it; an
unreachable API is a warning when it starts, not at every retry; /readyz of the ops runtime answers
503 with "leader-election: <the reason>" while Slack and the API answer.
"""

from __future__ import annotations

import asyncio
import io
import json

import aiohttp

from bot.logging import configure
from bot.ops.leader import LeaderElector
from bot.ops.runtime import OpsRuntime
from bot.ops.settings import OpsSettings
from probes.errors import ClusterForbidden, ClusterNotFound, ClusterUnreachable
from tests.bot.test_ops_leader import MemoryLeaseStore

FAST = OpsSettings(lease_duration=1.0, renew_deadline=0.6, retry_period=0.02, lease_namespace="platform",
                   health_host="127.0.0.1", health_port=0, readiness_timeout=1.0)
FORBIDDEN = ('get lease netcheck-leader in namespace platform: leases.coordination.k8s.io "netcheck-leader" '
             'is forbidden: User "system:serviceaccount:platform:netcheck" cannot get resource "leases" '
             'in API group "coordination.k8s.io" in the namespace "platform" (HTTP 403)')


class GuardedStore(MemoryLeaseStore):
    """MemoryLeaseStore whose next calls fail with `error` (for get) or `create_error` (for create)."""

    def __init__(self) -> None:
        super().__init__()
        self.error: Exception | None = None
        self.create_error: Exception | None = None

    async def get(self, name):  # noqa: ANN001, ANN201
        if self.error is not None:
            raise self.error
        return await super().get(name)

    async def create(self, name, body):  # noqa: ANN001, ANN201
        if self.create_error is not None:
            raise self.create_error
        return await super().create(name, body)


def log_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def run_for(elector: LeaderElector, seconds: float) -> None:
    task = asyncio.create_task(elector.run())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_forbidden_lease_is_one_error_line_then_recovers() -> None:
    stream = io.StringIO()
    configure(level="info", stream=stream, json=True)
    store = GuardedStore()
    store.error = ClusterForbidden(FORBIDDEN, status=403)
    elector = LeaderElector(store, "a", settings=FAST)
    await run_for(elector, 0.3)  # ~15 attempts
    assert not elector.is_leader
    errors = [line for line in log_lines(stream) if line["level"] == "error"]
    assert len(errors) == 1, errors
    (error,) = errors
    assert error["event"] == "leader_election_blocked" and error["namespace"] == "platform"
    reason = error["reason"]
    assert reason.startswith(f"cannot use the leader Lease platform/netcheck-leader: {FORBIDDEN}. ")
    grant = "a Role in namespace platform with leases create, and get, update on the Lease netcheck-leader"
    assert grant in reason
    assert "ops.leader_election: false" in reason and "\n" not in reason
    assert elector.blocked == reason

    store.error = None
    await run_for(elector, 0.2)
    assert elector.is_leader and elector.blocked is None
    assert [line["event"] for line in log_lines(stream)].count("lease_reachable") == 1


async def test_missing_namespace_says_create_it() -> None:
    store = GuardedStore()
    store.create_error = ClusterNotFound('create lease netcheck-leader in namespace platform: namespaces '
                                         '"platform" not found (HTTP 404)', status=404)
    elector = LeaderElector(store, "a", settings=FAST)
    assert not await elector._attempt()
    assert elector.blocked is not None
    assert 'namespaces "platform" not found' in elector.blocked
    assert "Create namespace platform or set ops.lease_namespace" in elector.blocked


async def test_unreachable_api_is_not_blocking_and_not_repeated() -> None:
    stream = io.StringIO()
    configure(level="info", stream=stream, json=True)
    store = GuardedStore()
    store.error = ClusterUnreachable("cannot reach the Kubernetes API at https://127.0.0.1:1: refused")
    elector = LeaderElector(store, "a", settings=FAST)
    await run_for(elector, 0.3)
    assert elector.blocked is None  # transient: readiness reports it through the cluster check
    warnings = [line for line in log_lines(stream) if line["level"] == "warning"]
    assert [w["event"] for w in warnings] == ["lease_attempt_failed"]


async def test_readyz_names_the_blocked_lease() -> None:
    async def answers() -> bool:
        return True

    store = GuardedStore()
    store.error = ClusterForbidden(FORBIDDEN, status=403)
    runtime = OpsRuntime(FAST, lease_store=store, slack_ready=answers, cluster_ready=answers, identity="a")
    port = await runtime.start(install_signal_handlers=False)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    status, body = response.status, await response.text()
                if status == 503:
                    break
                await asyncio.sleep(0.02)
        assert status == 503
        assert body.splitlines() == [f"leader-election: {runtime.elector.blocked}"]
        assert "cannot use the leader Lease platform/netcheck-leader" in body
    finally:
        runtime.shutdown.request()
        await runtime.run_until_shutdown()
