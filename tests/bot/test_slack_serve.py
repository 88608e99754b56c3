"""`netcheck serve` in both modes, through `bot.commands.serve.serve` with a stop event.

Covers: HTTP mode answers a signed /netcheck on /slack/events at the given host/port and posts the
check; Socket Mode (SLACK_APP_TOKEN set) connects through apps.connections.open and acks an envelope;
both stop cleanly when told; `serve --help` parses through the real CLI.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from bot.cli import build_parser
from bot.commands.serve import serve
from bot.slack.settings import SlackSettings
from bot.wiring import Services
from lab.slack.driver import SlackDriver
from lab.slack.socketmode import SocketModeStandIn
from lab.slack.webapi import SlackStandIn
from tests.bot.fakes import (
    FakeRunner,
)
from tests.fakes.engine import FakeEngine

CHANNEL = "C0NETCHECK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_http_mode():
    web = SlackStandIn(channels=(CHANNEL,))
    await web.start()
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": "s",
                                             "api_url": web.api_url})
    engine = FakeEngine(["worker2"])
    stop = asyncio.Event()
    port = free_port()
    server = asyncio.create_task(serve(settings, Services(engine, FakeRunner(engine)), host="127.0.0.1",
                                       port=port, stop=stop))
    try:
        driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", "s", web)
        for _ in range(100):
            try:
                reply = await driver.command("worker2", user="UALICE", channel=CHANNEL)
                break
            except OSError:
                await asyncio.sleep(0.05)
        assert reply.status == 200
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)  # waits for the running check too
        await web.stop()
    assert web.messages(CHANNEL)[0].text.startswith(":x: worker2: 2 problems")


async def test_socket_mode():
    web = SlackStandIn(channels=(CHANNEL,))
    sock = SocketModeStandIn()
    await web.start()
    web.socket_url = await sock.start()
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": "s",
                                             "app_token": "xapp-test", "api_url": web.api_url})
    engine = FakeEngine(["worker2"])
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, Services(engine, FakeRunner(engine)), host="127.0.0.1",
                                       port=0, stop=stop))
    try:
        await asyncio.wait_for(sock.connected.wait(), 10)
        payload = {"team_id": "T0LAB", "channel_id": CHANNEL, "user_id": "UALICE", "command": "/netcheck",
                   "text": "help", "response_url": web.response_url("s"), "trigger_id": "1"}
        ack = await sock.ack(await sock.push("slash_commands", payload), timeout=5)
        assert "Usage" in ack["payload"]["text"]
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)
        await sock.stop()
        await web.stop()


def test_cli_parses_serve():
    args = build_parser().parse_args(["serve", "--port", "3100", "--host", "127.0.0.1"])
    assert (args.port, args.host, args.config) == (3100, "127.0.0.1", None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--port", "x"])
