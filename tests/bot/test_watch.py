"""The continuous watch and the App Home tab against the Slack stand-in (real Bolt app in HTTP mode,
real slack_sdk client, fake engine whose broken nodes the test switches). Sweeps are driven one at a
time (`Watcher.sweep()`); the scheduled loop and `netcheck serve` with a watch are tested once each.

Covers: the first sweep posts nothing (baseline); a node breaking posts exactly one regression
thread after `agree` sweeps — parent naming the cause, findings cause first, the fix button (usual
approval rules: a non-approver is refused, an approver applies), the layer picture in that thread —
and healing posts one recovery line linking the thread; flapping posts nothing; a command's check
counts towards the streak; the fleet series show the status change; the Home tab lists every node
(problems first, with cause and age) and the last regression, validates against Home-view limits,
stays within them for a 300-node fleet; its re-check button checks the node into the watch channel
as the clicking user (who then may not approve its fix), a forged node name is refused; without a
channel there are no buttons; config: `watch.interval: 10s`, bad durations and a missing channel are
one-line errors, and so is an unknown watched probe at `serve`; serve runs the scheduled sweeps,
answers app_home_opened and shows the series on /metrics.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry

from bot import config as config_module
from bot.commands.serve import build_fleet, serve
from bot.fleet.metrics import FleetMetrics
from bot.fleet.state import FleetState, Regression, Source
from bot.ops.settings import OpsSettings
from bot.slack.app import build_app
from bot.slack.homeview import MAX_HOME_BLOCKS, HomeContext, build
from bot.slack.settings import SlackSettings
from bot.watch.settings import WatchSettings
from bot.watch.sweeper import Watcher
from bot.wiring import Services
from fixes.model import Approval
from lab.slack.driver import SlackDriver
from lab.slack.views import view_messages
from lab.slack.webapi import SlackStandIn
from probes.errors import ConfigError
from probes.model import Report
from tests.bot.fakes import FakeRunner
from tests.fakes.engine import FakeEngine, broken_findings

SECRET = "watch-signing-secret"
WATCH_CHANNEL = "C0WATCH"
NODES = ["cp-a", "edge-b", "edge-c"]
APPROVER, REQUESTER, STRANGER = "UAPPROVER", "UREQUESTER", "USTRANGER"


@dataclass
class Harness:
    standin: SlackStandIn
    engine: FakeEngine
    runner: FakeRunner
    rt: object
    fleet: FleetState
    watcher: Watcher
    driver: SlackDriver
    registry: CollectorRegistry

    def posts(self) -> list:
        return self.standin.messages(WATCH_CHANNEL)

    async def sweep(self) -> None:
        await self.watcher.sweep()
        await self.rt.tasks.idle(timeout=10)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    standin = SlackStandIn(channels=(WATCH_CHANNEL,))
    await standin.start()
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": SECRET,
                                             "api_url": standin.api_url, "approvers": [APPROVER, REQUESTER]})
    watch = WatchSettings(interval=60, channel=WATCH_CHANNEL, agree=2)
    registry = CollectorRegistry()
    fleet = FleetState(agree=2, metrics=FleetMetrics(registry))
    engine = FakeEngine(NODES)
    engine.broken = set()
    runner = FakeRunner(engine)
    app, rt = build_app(settings, engine, runner, probe_count=4, fleet=fleet, watch=watch)
    site_runner = web.AppRunner(app.web_app(path="/slack/events"))
    await site_runner.setup()
    site = web.TCPSite(site_runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SECRET, standin)
    yield Harness(standin, engine, runner, rt, fleet, Watcher(rt, engine, fleet, watch), driver, registry)
    await rt.tasks.close(1)
    await site_runner.cleanup()
    await standin.stop()


def refused(h: Harness) -> list:
    return [c.answer for c in h.standin.calls if c.answer.get("ok") is False]


async def test_one_regression_thread_then_one_recovery_line(harness: Harness) -> None:
    h, node = harness, NODES[1]
    await h.sweep()
    assert h.posts() == []  # baseline
    h.engine.broken.add(node)
    await h.sweep()
    assert h.posts() == []  # one sweep is not enough
    await h.sweep()
    (thread,) = h.posts()
    assert thread.text.startswith(f":rotating_light: *Regression on {node}* — `masquerade`: no MASQUERADE")
    titles = [r.text for r in thread.replies]
    assert titles[0] == f"{node}: masquerade — no MASQUERADE on wlp59s0"  # the thing to do, cause first
    assert "pod-api" in thread.replies[1].blocks[1]["text"]["text"]  # its consequence
    assert SlackDriver.buttons(thread.replies[0])  # the fix button
    pictures = [f for f in h.standin.files if f.filename.endswith(".png")]
    assert len(pictures) == 1 and pictures[0].thread_ts == thread.ts  # the picture, in that thread
    assert thread.replies[-1].files[0]["id"] == pictures[0].id  # last, after the verdict
    await h.sweep()
    assert len(h.posts()) == 1  # still broken: nothing new

    await h.driver.click(thread.replies[0], user=STRANGER)
    await h.rt.tasks.idle(timeout=10)
    assert h.runner.applied == [] and "not an approver" in h.standin.ephemeral[-1].text
    await h.driver.click(thread.replies[0], user=APPROVER)  # the watch asked: any approver may apply
    await h.rt.tasks.idle(timeout=10)
    (applied,) = h.runner.applied
    assert applied[:2] == (node, "masquerade") and isinstance(applied[3], Approval)

    # the fix healed the node (the fake engine); its re-check was the first healthy check, so the
    # next sweep is the second that agrees and posts the recovery
    assert h.fleet.nodes[node].source is Source.ON_DEMAND and h.fleet.nodes[node].streak == 1
    await h.sweep()
    recovery = h.posts()[1]
    assert recovery.text.startswith(f":white_check_mark: {node} recovered: `masquerade` ok again")
    assert f"/archives/{WATCH_CHANNEL}/p{thread.ts.replace('.', '')}|thread>" in recovery.text
    await h.sweep()
    assert len(h.posts()) == 2 and refused(h) == []
    assert h.registry.get_sample_value("netcheck_watch_posts_total", {"kind": "regression"}) == 1
    assert h.registry.get_sample_value("netcheck_watch_posts_total", {"kind": "recovery"}) == 1


async def test_flapping_posts_nothing_and_the_gauges_follow_each_check(harness: Harness) -> None:
    h, node = harness, NODES[2]
    status = {"node": node, "probe": "masquerade"}
    await h.sweep()
    for _ in range(3):
        h.engine.broken.add(node)
        await h.sweep()
        assert h.registry.get_sample_value("netcheck_node_probe_status", {**status, "status": "fail"}) == 1
        h.engine.broken.discard(node)
        await h.sweep()
        assert h.registry.get_sample_value("netcheck_node_probe_status", {**status, "status": "fail"}) == 0
        assert h.registry.get_sample_value("netcheck_node_probe_status", {**status, "status": "ok"}) == 1
    assert h.posts() == [] and h.fleet.sweeps == 7
    assert h.registry.get_sample_value("netcheck_watch_sweeps_total") == 7


async def test_a_commands_check_counts_towards_the_streak(harness: Harness) -> None:
    h, node = harness, NODES[0]
    await h.sweep()
    h.engine.broken.add(node)
    h.fleet.record(await h.engine.check(node), Source.ON_DEMAND)  # what `/netcheck NODE` records
    await h.sweep()  # the second agreeing check: the watch posts
    assert len(h.posts()) == 1 and h.posts()[0].text.startswith(":rotating_light: *Regression on cp-a*")


async def test_home_tab_lists_the_fleet_and_the_last_regression(harness: Harness) -> None:
    h, node = harness, NODES[1]
    await h.sweep()
    h.engine.broken.add(node)
    await h.sweep()
    await h.sweep()
    reply = await h.driver.home_opened(REQUESTER)
    assert reply.status == 200
    await h.rt.tasks.idle(timeout=10)
    view = h.standin.home_views[REQUESTER]
    assert view_messages(REQUESTER, view) == [] and len(view["blocks"]) <= MAX_HOME_BLOCKS
    node_sections = [b for b in view["blocks"] if b.get("block_id", "").startswith("home-node-")]
    assert len(node_sections) == len(NODES)
    first = node_sections[0]["text"]["text"]
    assert first.startswith(f":x: *{node}* — `masquerade`: no MASQUERADE")
    assert "checked just now (watch)" in first
    assert all(s["accessory"]["value"] in NODES for s in node_sections)
    texts = "\n".join(b.get("text", {}).get("text", "") for b in view["blocks"] if b["type"] == "section")
    assert f":rotating_light: {node} just now: `masquerade`" in texts and "|thread>" in texts


async def test_home_recheck_runs_the_check_as_the_clicking_user(harness: Harness) -> None:
    h, node = harness, NODES[1]
    h.engine.broken.add(node)
    await h.driver.home_opened(REQUESTER)
    await h.rt.tasks.idle(timeout=10)
    buttons = SlackDriver.home_buttons(h.standin.home_views[REQUESTER])
    index = [button["value"] for _, button in buttons].index(node)
    await h.driver.home_click(REQUESTER, index=index)
    await h.rt.tasks.idle(timeout=10)
    (thread,) = h.posts()
    assert thread.text.startswith(f":x: {node}: 2 problems")
    assert f"asked by <@{REQUESTER}>" in thread.blocks[-1]["elements"][0]["text"]
    assert h.engine.checks == [node] and h.fleet.nodes[node].source is Source.ON_DEMAND
    await h.driver.click(thread.replies[0], user=REQUESTER)  # their own check's fix
    await h.rt.tasks.idle(timeout=10)
    assert h.runner.applied == [] and "another approver" in h.standin.ephemeral[-1].text
    refreshed = h.standin.home_views[REQUESTER]
    assert any(node in b.get("text", {}).get("text", "") and ":x:" in b["text"]["text"]
               for b in refreshed["blocks"] if b["type"] == "section")

    await h.driver.home_click(REQUESTER, index=index, value="edge-b; reboot")  # a forged value
    await h.driver.home_click(REQUESTER, index=index, value="no-such-node")
    await h.rt.tasks.idle(timeout=10)
    assert len(h.posts()) == 1 and h.engine.checks == [node]


def test_home_view_stays_within_limits_for_a_big_fleet() -> None:
    fleet = FleetState()
    names = [f"node-{i:03d}-" + "x" * 40 for i in range(300)]
    for i, name in enumerate(names):
        broken = i % 3 == 0
        findings = broken_findings() if broken else []
        fleet.record(Report(node=name, started_at=datetime.now(UTC), duration_s=1.0, findings=findings),
                     Source.WATCH)
    for name in names[:10]:
        fleet.regressions.appendleft(Regression(name, 0.0, tuple(fleet.nodes[name].causes), ("C1", "1.2")))
    context = HomeContext(interval=10, probes=["host-api"], watch_channel="C1", recheck_channel="C1")
    view = build(fleet, names + ["joined-late"], context, now=100.0, links={("C1", "1.2"): "https://x/y"})
    assert len(view["blocks"]) <= MAX_HOME_BLOCKS and view_messages("U1", view) == []
    text = "\n".join(b.get("text", {}).get("text", "") for b in view["blocks"] if b["type"] in ("section",))
    assert "node-000-" in text and ":rotating_light: node-000-" in text
    no_buttons = build(fleet, names, HomeContext(None, None, None, None), now=100.0)
    assert not SlackDriver.home_buttons(no_buttons) and view_messages("U1", no_buttons) == []


def test_watch_config(tmp_path) -> None:
    config = config_module.Config.model_validate(
        {"watch": {"interval": "10s", "channel": "C1", "probes": ["host-api"]}})
    assert config.watch.interval == 10.0 and config.watch.enabled and config.watch.agree == 2
    assert config_module.Config().watch.enabled is False
    path = tmp_path / "netcheck.yaml"
    for bad, word in (({"interval": "soon", "channel": "C1"}, "not a duration"),
                      ({"interval": "10s"}, "watch.channel is required"),
                      ({"interval": 0.2, "channel": "C1"}, "at least 1 s"),
                      ({"interval": "10s", "channel": "#ops"}, "not a Slack id")):
        path.write_text(yaml.safe_dump({"watch": bad}))
        with pytest.raises(ConfigError) as caught:
            config_module.load(path, env={})
        assert word in str(caught.value) and "\n" not in str(caught.value), caught.value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_serve_runs_the_scheduled_sweeps_home_and_metrics() -> None:
    standin = SlackStandIn(channels=(WATCH_CHANNEL,))
    await standin.start()
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": SECRET,
                                             "api_url": standin.api_url})
    watch = WatchSettings(interval=1, channel=WATCH_CHANNEL, agree=2)
    fleet = build_fleet(watch)
    engine = FakeEngine(NODES)
    engine.broken = {NODES[2]}
    health, port, stop = free_port(), free_port(), asyncio.Event()
    server = asyncio.create_task(serve(
        settings, Services(engine, None), host="127.0.0.1", port=port, stop=stop,
        ops=OpsSettings(health_host="127.0.0.1", health_port=health), watch=watch, fleet=fleet))
    try:
        await fleet.wait_for_sweeps(2, timeout=20)  # by the schedule alone: nobody asked for these
        driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SECRET, standin)
        assert (await driver.home_opened(APPROVER)).status == 200
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{health}/metrics") as resp:
                exposition = await resp.text()
        for _ in range(100):
            if APPROVER in standin.home_views:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(server, 20)
        await standin.stop()
    series = f'netcheck_node_probe_status{{node="{NODES[2]}",probe="masquerade",status="fail"}}'
    assert f"{series} 1.0" in exposition
    assert "netcheck_watch_sweeps_total" in exposition
    assert view_messages(APPROVER, standin.home_views[APPROVER]) == []
    assert standin.messages(WATCH_CHANNEL) == []  # broken from the start: the baseline, not a regression
    assert fleet.nodes == {}  # no longer leading (here: shut down): no stale fleet series on /metrics
    assert fleet.metrics.registry.get_sample_value(
        "netcheck_node_probe_status", {"node": NODES[2], "probe": "masquerade", "status": "fail"}) is None


async def test_serve_refuses_an_unknown_watched_probe_before_starting() -> None:
    from bot.config import Config
    from bot.wiring import build_engine
    from probes.engine import Transports
    from tests.bot.test_picture import FACTS, REG
    from tests.fakes import FakeCluster

    async def discover():
        return FACTS

    transports = Transports(cluster=FakeCluster(), discover=discover)
    engine = build_engine(Config(), transports=transports, registry=REG)
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": SECRET,
                                             "api_url": "http://127.0.0.1:9/api/"})
    watch = WatchSettings(interval=10, channel=WATCH_CHANNEL, probes=["host-api", "host-apii"])
    with pytest.raises(ConfigError) as caught:
        await serve(settings, Services(engine, None), host="127.0.0.1", port=0, stop=asyncio.Event(),
                    watch=watch)
    assert str(caught.value).startswith("config error: watch.probes: unknown probe 'host-apii'")
