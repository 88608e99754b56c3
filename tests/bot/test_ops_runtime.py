"""OpsRuntime: health server, leader election and shutdown wired together, two replicas in one
process over an in-memory Lease store and real HTTP health ports.

Covers: both replicas serve /healthz and /readyz; exactly one runs its Slack side (on_started_leading);
a shutdown request on the leader drains a running check, runs the caller's cleanups before releasing
the Lease, stops its health server, and the other replica takes over well before the lease would
have expired.
"""

from __future__ import annotations

import asyncio

import aiohttp

from bot.ops.metrics import Metrics
from bot.ops.runtime import OpsRuntime
from bot.ops.settings import OpsSettings
from tests.bot.test_ops_leader import MemoryLeaseStore
from tests.waiting import until

SETTINGS = OpsSettings(health_host="127.0.0.1", health_port=0, lease_duration=5.0, renew_deadline=3.0,
                       retry_period=0.05, shutdown_grace=2.0, cleanup_timeout=1.0)


async def _ready() -> bool:
    return True


async def test_two_replicas_one_answers_and_handover_on_shutdown():
    store = MemoryLeaseStore()
    events: list[str] = []

    def replica(name: str) -> OpsRuntime:
        async def started() -> None:
            events.append(f"{name} answers")

        async def stopped() -> None:
            events.append(f"{name} stops answering")

        return OpsRuntime(SETTINGS, lease_store=store, slack_ready=_ready, cluster_ready=_ready,
                          on_started_leading=started, on_stopped_leading=stopped, identity=name,
                          metrics=Metrics())

    a, b = replica("a"), replica("b")
    port_a = await a.start(install_signal_handlers=False)
    await until(lambda: a.elector.is_leader)
    port_b = await b.start(install_signal_handlers=False)
    async with aiohttp.ClientSession() as http:
        for port in (port_a, port_b):
            for path in ("/healthz", "/readyz"):
                async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
                    assert resp.status == 200, (port, path)
    await asyncio.sleep(0.3)
    assert events == ["a answers"] and not b.elector.is_leader

    async def check() -> None:
        await asyncio.sleep(0.2)
        events.append("a's check finished")

    async def close_slack() -> None:
        events.append("a closed Slack")

    a.shutdown.tasks.spawn(check(), name="check")
    a.add_cleanup("close Slack", close_slack)
    loop = asyncio.get_running_loop()
    stopping_at = loop.time()
    a.shutdown.request()
    assert await a.run_until_shutdown() == []
    await until(lambda: b.elector.is_leader)
    assert loop.time() - stopping_at < SETTINGS.lease_duration / 2  # released, not expired
    assert events == ["a answers", "a's check finished", "a closed Slack", "a stops answering", "b answers"]
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(f"http://127.0.0.1:{port_a}/healthz") as resp:
                raise AssertionError(f"a's health server still answers: {resp.status}")
        except aiohttp.ClientConnectionError:
            pass
    b.shutdown.request()
    await b.run_until_shutdown()
    assert store.holder() == ""
