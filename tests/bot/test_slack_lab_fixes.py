"""Fix buttons end to end in the lab: the real engine and FixRunner (bot.wiring over the lab's SSH
nodes and API stand-in), driven by signed requests through Bolt in HTTP mode, with the Web API
stand-in, inside the lab's ops namespace.

Covers: with the node's /etc/hosts missing the other nodes, `/netcheck NODE` shows an
"Apply fix: etc-hosts" button whose confirm text lists the entries; an approver's click applies it,
the outcome is posted, the node's /etc/hosts has the entries and the etc-hosts probe is ok again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from lab.cluster import Lab
from tests.bot.test_slack_fakes import fresh_logging  # noqa: F401  (autouse)

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
    app, rt = build_app(settings, engine, wiring.build_fix_runner(config, engine),
                        probe_count=len(list(engine.registry)))
    site_runner = web.AppRunner(app.web_app(path="/slack/events"))
    await site_runner.setup()
    site = web.TCPSite(site_runner, "127.0.0.1", 0)
    await site.start()
    driver = SlackDriver(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/slack/events",
                         SECRET, standin)
    try:
        yield BotSession(engine, rt, driver, standin)
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
