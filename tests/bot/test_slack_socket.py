"""Socket Mode round trip: Bolt's AsyncSocketModeHandler gets its URL from apps.connections.open on the
Web API stand-in, connects to the Socket Mode stand-in, receives hello and slash-command envelopes,
and acks them (the help ack carries the usage payload; a node check posts its thread).
"""

from __future__ import annotations

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.slack.app import build_app
from bot.slack.settings import SlackSettings
from lab.slack.socketmode import SocketModeStandIn
from lab.slack.webapi import SlackStandIn
from tests.bot.fakes import (
    FakeRunner,
)
from tests.fakes.engine import FakeEngine

CHANNEL = "C0NETCHECK"


def slash(text: str, standin: SlackStandIn) -> dict[str, str]:
    return {"token": "legacy", "team_id": "T0LAB", "channel_id": CHANNEL, "user_id": "UALICE",
            "command": "/netcheck", "text": text, "api_app_id": "A0NETCHECK",
            "response_url": standin.response_url("socket"), "trigger_id": "1.2.3"}


async def test_socket_mode_round_trip():
    web = SlackStandIn(channels=(CHANNEL,))
    sock = SocketModeStandIn()
    await web.start()
    web.socket_url = await sock.start()
    settings = SlackSettings.model_validate({
        "bot_token": "xoxb-test", "signing_secret": "s", "app_token": "xapp-test", "api_url": web.api_url,
        "approvers": ["UBOB"]})
    engine = FakeEngine(["worker2"])
    app, rt = build_app(settings, engine, FakeRunner(engine), probe_count=4)
    handler = AsyncSocketModeHandler(app, settings.app_token.get_secret_value())
    try:
        await handler.connect_async()
        await sock.connected.wait()
        assert web.calls_to("apps.connections.open")[0].status == 200
        ack = await sock.ack(await sock.push("slash_commands", slash("help", web)), timeout=5)
        assert "Usage" in ack["payload"]["text"]
        envelope = await sock.push("slash_commands", slash("worker2", web))
        assert "envelope_id" in await sock.ack(envelope, timeout=5)
        await rt.tasks.idle(timeout=5)
        parent = web.messages(CHANNEL)[0]
        assert parent.text.startswith(":x: worker2: 2 problems")
        # the fix, the consequence, the ok ones, the evidence file and the layer picture
        assert len(parent.replies) == 5 and parent.replies[-1].files
    finally:
        await handler.close_async()
        await rt.tasks.close(1)
        await sock.stop()
        await web.stop()
