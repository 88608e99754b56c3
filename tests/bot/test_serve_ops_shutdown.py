"""`bot.commands.serve.serve` (HTTP mode, in-process, real Bolt app against the Slack stand-in):
graceful shutdown and the metrics hooks it hangs on the engine and the fix runner.

Covers:
- stop requested while a check runs: the check finishes and its verdict reaches Slack, then the
  engine is closed (debug pods deleted) with nothing in flight, the Lease is released (empty holder),
  and the check is counted in netcheck_checks_total;
- the drain is bounded: a check longer than `shutdown_grace` is cancelled, serve still returns
  promptly and still closes the engine;
- a command sent while this replica does not hold the Lease gets the ephemeral failover answer and
  runs nothing;
- serve hangs the fix counter on the runner's `on_result` hook: each applied fix is counted by fix id
  and outcome in netcheck_fixes_total.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import time
from datetime import UTC, datetime

from bot.commands.serve import LocalLeaseStore, serve
from bot.ops import metrics
from bot.ops.metrics import METRICS
from bot.ops.settings import OpsSettings
from bot.slack.settings import SlackSettings
from bot.wiring import Services
from fixes.model import Approval
from lab.slack.driver import SlackDriver
from lab.slack.webapi import SlackStandIn
from tests import waiting
from tests.bot.fakes import (
    FakeRunner,
)
from tests.fakes.engine import FakeEngine

CHANNEL = "C0NETCHECK"
SECRET = "s"
WAIT_S = 10.0
POLL_S = 0.02
until = functools.partial(waiting.until, timeout=WAIT_S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def checks_counted(verdict: str) -> float:
    return METRICS.registry.get_sample_value("netcheck_checks_total", {"verdict": verdict}) or 0.0


async def start(engine: FakeEngine, store: LocalLeaseStore, ops: OpsSettings, web: SlackStandIn):
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": SECRET,
                                             "api_url": web.api_url})
    stop = asyncio.Event()
    port = free_port()
    services = Services(engine, FakeRunner(engine), lease_store=store)
    server = asyncio.create_task(serve(settings, services, host="127.0.0.1", port=port, stop=stop, ops=ops))
    driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SECRET, web)
    return server, stop, driver


def holder(store: LocalLeaseStore) -> str | None:
    lease = store._lease  # the test's own store: read what serve wrote
    return None if lease is None else lease["spec"]["holderIdentity"]


OPS = dict(health_host="127.0.0.1", health_port=0, retry_period=0.05, lease_duration=2.0, renew_deadline=1.0,
           cleanup_timeout=2.0)


async def command(driver: SlackDriver, text: str) -> int:
    for _ in range(100):
        try:
            return (await driver.command(text, user="UALICE", channel=CHANNEL)).status
        except OSError:
            await asyncio.sleep(POLL_S)
    raise AssertionError("the HTTP endpoint never came up")


async def test_stop_lets_the_running_check_finish_then_cleans_up():
    web = SlackStandIn(channels=(CHANNEL,))
    await web.start()
    engine, store = FakeEngine(["worker2"], delay_s=1.0), LocalLeaseStore()
    server, stop, driver = await start(engine, store, OpsSettings(**OPS, shutdown_grace=5.0), web)
    counted = checks_counted("fail")
    try:
        await until(lambda: bool(holder(store)), "leadership")
        assert await command(driver, "worker2") == 200
        await until(lambda: engine.in_flight == 1, "the check to start")
        stop.set()  # what SIGTERM does
        await asyncio.wait_for(server, WAIT_S)
    finally:
        stop.set()
        await web.stop()
    assert engine.checks == ["worker2"]
    assert web.messages(CHANNEL)[0].text.startswith(":x: worker2")  # the verdict still arrived
    assert engine.closed_with == (0, 1)  # debug pods deleted only after the check finished
    assert holder(store) == ""  # Lease released for the standby
    assert checks_counted("fail") == counted + 1


async def test_drain_is_bounded():
    web = SlackStandIn(channels=(CHANNEL,))
    await web.start()
    engine, store = FakeEngine(["worker2"], delay_s=60.0), LocalLeaseStore()
    server, stop, driver = await start(engine, store, OpsSettings(**OPS, shutdown_grace=0.5), web)
    try:
        await until(lambda: bool(holder(store)), "leadership")
        assert await command(driver, "worker2") == 200
        await until(lambda: engine.in_flight == 1, "the check to start")
        stopped = time.monotonic()
        stop.set()
        await asyncio.wait_for(server, WAIT_S)
        assert time.monotonic() - stopped < 0.5 + 2 * OPS["cleanup_timeout"]
    finally:
        stop.set()
        await web.stop()
    assert engine.checks == []  # cancelled after the grace period
    assert engine.closed_with == (0, 0)


async def test_standby_answers_the_user_and_runs_nothing():
    web = SlackStandIn(channels=(CHANNEL,))
    await web.start()
    engine, store = FakeEngine(["worker2"], delay_s=0.0), LocalLeaseStore()
    other = {"holderIdentity": "other-replica", "leaseDurationSeconds": 60}
    await store.create("netcheck-leader", {"metadata": {"name": "netcheck-leader"}, "spec": other})
    server, stop, driver = await start(engine, store, OpsSettings(**OPS, shutdown_grace=1.0), web)
    try:
        for _ in range(100):
            try:
                reply = await driver.command("worker2", user="UALICE", channel=CHANNEL)
                break
            except OSError:
                await asyncio.sleep(POLL_S)
        assert reply.status == 200 and "netcheck is failing over" in json.loads(reply.text)["text"]
        await asyncio.sleep(0.3)  # several election rounds: still the other replica's Lease
        assert holder(store) == "other-replica"
    finally:
        stop.set()
        await asyncio.wait_for(server, WAIT_S)
        await web.stop()
    assert engine.checks == [] and web.calls_to("chat.postMessage") == []


async def test_serve_counts_each_applied_fix():
    """serve hangs the fix counter on the runner's on_result hook: every apply is counted by fix id
    and outcome."""
    engine = FakeEngine(["worker2"])
    runner = FakeRunner(engine)
    labels = {"fix": "masquerade", "outcome": "applied"}
    before = METRICS.registry.get_sample_value("netcheck_fixes_total", labels) or 0.0
    web = SlackStandIn(channels=(CHANNEL,))
    await web.start()
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": SECRET,
                                             "api_url": web.api_url})
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, Services(engine, runner), host="127.0.0.1", port=free_port(),
                                       stop=stop))
    try:
        await until(lambda: metrics.record_fix in runner.on_result, "serve to hang the fix counter")
        approval = Approval(approver="UBOB", approved_at=datetime.now(UTC), requested_by="UALICE")
        plan = await runner.plan("worker2", "masquerade", {"cidr": "192.168.88.0/24", "iface": "wlp59s0"})
        result = await runner.apply("worker2", "masquerade", {"cidr": "192.168.88.0/24", "iface": "wlp59s0"},
                                    approval)
    finally:
        stop.set()
        await asyncio.wait_for(server, WAIT_S)
        await web.stop()
    assert plan.fix == "masquerade"
    assert METRICS.registry.get_sample_value("netcheck_fixes_total", labels) == before + 1, result
