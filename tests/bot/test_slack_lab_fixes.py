"""Fix buttons end to end in the lab: the real engine and FixRunner (bot.wiring over the lab's SSH
nodes and API stand-in), driven by signed requests through Bolt in HTTP mode, with the Web API
stand-in, inside the lab's ops namespace.

Covers: with the node's /etc/hosts missing the other nodes, `/netcheck NODE` shows an
"Apply fix: etc-hosts" button whose confirm text lists the entries; an approver's click applies it,
the outcome is posted, the node's /etc/hosts has the entries and the etc-hosts probe is ok again.
With the node's LAN link smaller than the pod MTU, the "Apply fix: calico-mtu" click gives one thread
reply that is updated as the API stand-in's operator rolls calico-node ("calico-node 1/3 updated" …),
says "verifying" only after the node's calico-node runs the new MTU, and ends with the verdict
(verified, the mtu probe measuring the new MTU) and the pod created before the patch listed as still
on the old MTU; the Installation is rolled back afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from lab.cluster import Lab

pytestmark = pytest.mark.lab

CHANNEL = "C0NETCHECK"
SECRET = "lab-signing-secret"
CHECK_IDLE_S = 120
FIX_IDLE_S = 240


@dataclass
class BotSession:
    engine: Any
    runtime: Any
    driver: Any
    standin: Any
    runner: Any


@contextlib.asynccontextmanager
async def bot_session(lab: Lab) -> AsyncIterator[BotSession]:
    """The bot as `netcheck serve` builds it (engine, fix runner, Bolt in HTTP mode) on the lab."""
    from bot import config as config_module
    from bot import wiring
    from bot.slack.app import build_app
    from bot.slack.settings import SlackSettings
    from lab.slack.driver import SlackDriver
    from lab.slack.webapi import SlackStandIn

    standin = SlackStandIn(channels=(CHANNEL,))
    await standin.start()
    config = config_module.load(lab.config_file)
    engine = wiring.build_engine(config)
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": SECRET,
                                             "api_url": standin.api_url, "approvers": ["UBOB"]})
    runner = wiring.build_fix_runner(config, engine)
    app, rt = build_app(settings, engine, runner, probe_count=len(list(engine.registry)))
    site_runner = web.AppRunner(app.web_app(path="/slack/events"))
    await site_runner.setup()
    site = web.TCPSite(site_runner, "127.0.0.1", 0)
    await site.start()
    driver = SlackDriver(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/slack/events",
                         SECRET, standin)
    try:
        yield BotSession(engine, rt, driver, standin, runner)
    finally:
        await rt.tasks.close(1)
        await site_runner.cleanup()
        await standin.stop()
        await engine.aclose()


def button_of(message: Any, fix_id: str) -> int | None:
    from lab.slack.driver import SlackDriver

    texts = [button["text"]["text"] for _, button in SlackDriver.buttons(message)]
    return texts.index(f"Apply fix: {fix_id}") if f"Apply fix: {fix_id}" in texts else None


def test_etc_hosts_button_applies_and_the_probe_is_ok_again(lab: Lab, fault) -> None:
    node = next(n for n in lab.nodes if n.wifi)
    others = [n for n in lab.nodes if n.name != node.name]
    fault("hosts-missing", node=node.name)

    async def flow() -> dict[str, Any]:
        async with bot_session(lab) as bot:
            await bot.driver.command(node.name, user="UALICE", channel=CHANNEL)
            await bot.runtime.tasks.idle(timeout=CHECK_IDLE_S)
            parent = bot.standin.messages(CHANNEL)[0]
            offering = [r for r in parent.replies if button_of(r, "etc-hosts") is not None]
            assert offering, [r.text for r in parent.replies]
            index = button_of(offering[0], "etc-hosts")
            _, button = type(bot.driver).buttons(offering[0])[index]
            finding_text = offering[0].text  # the click replaces it with "applying…"
            await bot.driver.click(offering[0], user="UBOB", index=index)
            await bot.runtime.tasks.idle(timeout=FIX_IDLE_S)
            report = await bot.engine.check(node.name, probes=["etc-hosts"])
            return {"finding": finding_text, "confirm": button["confirm"]["text"]["text"],
                    "replies": [r.text for r in parent.replies], "after": report.finding("etc-hosts"),
                    "errors": [c.answer for c in bot.standin.calls if c.answer.get("ok") is False]}

    with lab.enter_ops():
        seen = asyncio.run(flow())
    assert "do not resolve" in seen["finding"]
    for other in others:  # the confirm dialog shows exactly what will be written
        assert f"{other.ip} {other.name}" in seen["confirm"], seen["confirm"]
    assert any("fix `etc-hosts`" in text and "*applied*" in text for text in seen["replies"]), seen["replies"]
    assert seen["after"].status.value == "ok", seen["after"]
    hosts = lab.node_exec(node.name, "cat", "/etc/hosts", check=True).stdout
    assert all(f"{other.ip} {other.name}" in hosts for other in others), hosts
    assert seen["errors"] == []


def test_calico_mtu_button_reports_the_rollout_in_its_reply(lab: Lab, fault) -> None:
    from kubernetes import client, config

    from fixes.model import Approval

    node = next(n for n in lab.nodes if n.wifi)
    fault("mtu", node=node.name)
    admin = config.new_client_from_config(config_file=str(lab.kubeconfig))
    with lab.enter_ops():
        old = client.CoreV1Api(admin).create_namespaced_pod("default", {
            "metadata": {"generateName": "app-before-"},
            "spec": {"nodeName": node.name, "containers": [{"name": "app", "image": "busybox"}]}})
        installation = client.CustomObjectsApi(admin).get_cluster_custom_object(
            "operator.tigera.io", "v1", "installations", "default")
    previous = installation["spec"]["calicoNetwork"].get("mtu")

    async def flow() -> dict[str, Any]:
        await asyncio.sleep(1.1)  # creation times have one-second resolution: the pod is strictly older
        async with bot_session(lab) as bot:
            await bot.driver.command(node.name, user="UALICE", channel=CHANNEL)
            await bot.runtime.tasks.idle(timeout=CHECK_IDLE_S)
            parent = bot.standin.messages(CHANNEL)[0]
            offering = [r for r in parent.replies if button_of(r, "calico-mtu") is not None]
            assert offering, [r.text for r in parent.replies]
            before = {r.ts for r in parent.replies}
            await bot.driver.click(offering[0], user="UBOB", index=button_of(offering[0], "calico-mtu"))
            await bot.runtime.tasks.idle(timeout=FIX_IDLE_S)
            (reply,) = [r for r in parent.replies if r.ts not in before and "fix `calico-mtu`" in r.text]
            updates = [c.params["text"] for c in bot.standin.calls_to("chat.update")
                       if c.params.get("ts") == reply.ts]
            applied = await installation_mtu(bot.engine)
            undone = await bot.runner.rollback(node.name, "calico-mtu", {"mtu": applied},
                                               {"mtu": previous}, Approval(
                                                   approver="UBOB", approved_at=datetime.now(UTC),
                                                   requested_by="UALICE"))
            return {"updates": updates, "final": reply.text, "undone": undone,
                    "errors": [c.answer for c in bot.standin.calls if c.answer.get("ok") is False]}

    try:
        with lab.enter_ops():
            seen = asyncio.run(flow())
    finally:
        with lab.enter_ops():
            client.CoreV1Api(admin).delete_namespaced_pod(old.metadata.name, "default",
                                                          grace_period_seconds=0)
    updates = seen["updates"]
    assert any("• applied, rolling out" in u for u in updates), updates
    assert any("• calico-node 1/3 updated" in u for u in updates), updates
    assert any("• calico-node 2/3 updated" in u for u in updates), updates
    reached = next(i for i, u in enumerate(updates) if f"calico-node on {node.name} runs MTU" in u)
    verifying = next(i for i, u in enumerate(updates) if "• verifying" in u)
    assert reached <= verifying, updates
    final = seen["final"]
    assert "*applied*" in final and "(verified)" in final, final
    assert "`mtu` ok: pod MTU" in final, final
    assert f"default/{old.metadata.name} (no owner" in final, final
    assert seen["undone"].outcome.value == "rolled-back", seen["undone"].message
    assert seen["errors"] == []


async def installation_mtu(engine: Any) -> int:
    return (await engine.cluster.get_installation())["spec"]["calicoNetwork"]["mtu"]
