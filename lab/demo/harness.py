"""The real Slack bot wired to the lab, as one async context: the Slack Web API stand-in, the engine
and FixRunner from the lab's config, Bolt's AsyncApp in HTTP mode on 127.0.0.1, and a driver that
sends signed slash commands and clicks the buttons the bot posted.

Must be entered inside the lab's ops namespace (`with lab.enter_ops(): asyncio.run(...)`), where the
lab's API server and nodes are reachable. Used by lab.demo.flow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from lab.cluster import Lab
from lab.slack.driver import SlackDriver
from lab.slack.webapi import SlackStandIn

CHANNEL = "C0NETCHECK"
REQUESTER = "U0NEWCOMER"
APPROVER = "U0APPROVER"
USER_NAMES = {REQUESTER: "newcomer", APPROVER: "approver"}
SIGNING_SECRET = "demo-signing-secret"
BOT_TOKEN = "xoxb-demo"
EVENTS_PATH = "/slack/events"
SHUTDOWN_GRACE_S = 1.0


@dataclass
class BotHarness:
    standin: SlackStandIn
    driver: SlackDriver
    runtime: Any  # bot.slack.runtime.Runtime (its `tasks.idle(timeout)` says when the bot is done)


@asynccontextmanager
async def running_bot(lab: Lab) -> AsyncIterator[BotHarness]:
    from bot import config as config_module
    from bot import wiring
    from bot.slack.app import build_app
    from bot.slack.settings import SlackSettings
    from fixes.runner import FixRunner

    standin = SlackStandIn(bot_token=BOT_TOKEN, channels=(CHANNEL,))
    await standin.start()
    engine = wiring.build_engine(config_module.load(lab.config_file))
    site_runner: web.AppRunner | None = None
    runtime = None
    try:
        settings = SlackSettings.model_validate({
            "bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET, "api_url": standin.api_url,
            "approvers": [APPROVER],
        })
        app, runtime = build_app(settings, engine, FixRunner(engine), probe_count=len(list(engine.registry)))
        site_runner = web.AppRunner(app.web_app(path=EVENTS_PATH))
        await site_runner.setup()
        site = web.TCPSite(site_runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        driver = SlackDriver(f"http://127.0.0.1:{port}{EVENTS_PATH}", SIGNING_SECRET, standin)
        yield BotHarness(standin, driver, runtime)
    finally:
        if runtime is not None:
            await runtime.tasks.close(SHUTDOWN_GRACE_S)
        if site_runner is not None:
            await site_runner.cleanup()
        await standin.stop()
        await engine.aclose()
