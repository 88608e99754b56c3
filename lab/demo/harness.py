"""The Slack bot under demo, wired to the lab: the Slack Web API stand-in, the bot's aiohttp app
served on 127.0.0.1, and a driver that sends signed slash commands and clicks the buttons the bot
posted.

The bot itself comes from a factory the caller passes in (bot/commands/demo.py builds the real one:
engine and FixRunner from the lab's config, Bolt's AsyncApp in HTTP mode), so lab/ does not import
bot/. Must be entered inside the lab's ops namespace, where the lab's API server and nodes are
reachable. Used by lab.demo.flow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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


@dataclass(frozen=True)
class SlackSide:
    """What the bot must know about the Slack it talks to (the stand-in) and its policy."""

    api_url: str
    bot_token: str
    signing_secret: str
    events_path: str
    approvers: tuple[str, ...]


class BotUnderDemo(Protocol):
    web_app: web.Application

    async def idle(self, timeout: float) -> None:
        """Return once the bot has nothing running (a check, a fix, a re-check); TimeoutError after."""


BotFactory = Callable[[Path, SlackSide], AbstractAsyncContextManager[BotUnderDemo]]
"""(lab config file, Slack side) → the running bot, closed (tasks, engine) when the context exits."""


@dataclass
class BotHarness:
    standin: SlackStandIn
    driver: SlackDriver
    bot: BotUnderDemo


@asynccontextmanager
async def running_bot(lab: Lab, factory: BotFactory, config: Path | None = None) -> AsyncIterator[BotHarness]:
    """`config`: the netcheck config the bot runs with (default: the lab's netcheck.yaml)."""
    standin = SlackStandIn(bot_token=BOT_TOKEN, channels=(CHANNEL,))
    await standin.start()
    try:
        side = SlackSide(standin.api_url, BOT_TOKEN, SIGNING_SECRET, EVENTS_PATH, (APPROVER,))
        async with factory(config or lab.config_file, side) as bot:
            site_runner = web.AppRunner(bot.web_app)
            await site_runner.setup()
            try:
                site = web.TCPSite(site_runner, "127.0.0.1", 0)
                await site.start()
                port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                driver = SlackDriver(f"http://127.0.0.1:{port}{EVENTS_PATH}", SIGNING_SECRET, standin)
                yield BotHarness(standin, driver, bot)
            finally:
                await site_runner.cleanup()
    finally:
        await standin.stop()
