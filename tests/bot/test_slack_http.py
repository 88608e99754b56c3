"""HTTP mode authenticates before parsing (bot/slack/http.py) and the listeners tolerate bad payloads
(bot/slack/guard.py, commands.py, actions.py): the real Bolt app behind `events_app` on 127.0.0.1.

Covers: unsigned malformed bodies (form sent as JSON, `payload=` not JSON, broken JSON, JSON nested
50,000 deep, invalid UTF-8, an unparsable timestamp) -> 401 `{"error": "invalid request"}`; the same
bodies signed -> 400; a body over `slack.max_request_bytes` -> 413; an unsigned ssl_check -> Bolt's
empty 200; each refusal is exactly one JSON log line and nothing reaches stderr (no traceback, no
Bolt "[Suggestion]"). Signed but odd payloads: a click without `user`, an empty `actions` list, an
unknown action_id, another slash command, a body without a type, hostile slash text (shell syntax,
newline, RTL override, 10,000 characters, uppercase node) — each acked or refused in one line, nothing
checked or applied, and the bot still answers `/netcheck help` afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlencode

import aiohttp
import pytest
import structlog

from bot.logging import configure
from tests.bot.test_slack import ALICE, BOB, CHANNEL, SECRET, Bot, checked, fix_reply, start_bot

FORM = "application/x-www-form-urlencoded"
DEEP = "[" * 50_000 + "]" * 50_000


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure(level="info", stream=stream, json=True)
    yield stream
    structlog.reset_defaults()


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    b = await start_bot()  # slack.max_request_bytes at its default
    yield b
    await b.rt.tasks.close(1)
    await b._site_runner.cleanup()
    await b.standin.stop()


async def raw_post(bot: Bot, body: bytes, *, content_type: str = FORM, signed: bool = True,
                   timestamp: str | None = None) -> tuple[int, str]:
    ts = timestamp or str(int(time.time()))
    headers = {"content-type": content_type, "x-slack-request-timestamp": ts}
    if signed:  # Slack's v0 scheme over the raw bytes (the driver's signer only takes text)
        digest = hmac.new(SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
        headers["x-slack-signature"] = f"v0={digest}"
    async with aiohttp.ClientSession() as session:
        async with session.post(bot.driver.events_url, data=body, headers=headers) as resp:
            return resp.status, await resp.text()


def lines(stream: io.StringIO) -> list[dict]:
    """The bot's log events so far (then forgotten). asyncio's own reports are left out: the garbage
    collector can run during any test and log an object another test left ("Unclosed client
    session"), which is not this test's event."""
    found = [event for line in stream.getvalue().splitlines() if line.strip()
             if (event := json.loads(line)).get("logger") != "asyncio"]
    stream.seek(0)
    stream.truncate()
    return found


MALFORMED = [
    ("form body as JSON", b"token=x&command=%2Fnetcheck&text=worker2", "application/json"),
    ("payload not JSON", b"payload=%7Bnot-json", FORM),
    ("broken JSON", b'{"type": "block_actions", ', "application/json"),
    ("deep JSON", DEEP.encode(), "application/json"),
    ("deep payload", ("payload=" + "%5B" * 50_000).encode(), FORM),
    ("JSON list", b"[1, 2, 3]", "application/json"),
    ("invalid UTF-8", b"payload=\xff\xfe{", FORM),
]


@pytest.mark.parametrize(("name", "body", "content_type"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_bodies_401_unsigned_400_signed_one_line_each(
    bot: Bot, log_stream: io.StringIO, capsys: pytest.CaptureFixture[str], name: str, body: bytes,
    content_type: str,
) -> None:
    status, text = await raw_post(bot, body, content_type=content_type, signed=False)
    assert (status, json.loads(text)) == (401, {"error": "invalid request"})
    logged = lines(log_stream)
    assert [(e["event"], e["status"], e["reason"]) for e in logged] == [
        ("request_refused", 401, "no signature")]
    status, text = await raw_post(bot, body, content_type=content_type)
    assert (status, json.loads(text)) == (400, {"error": "malformed request"})
    logged = lines(log_stream)
    assert len(logged) == 1 and logged[0]["status"] == 400, logged
    assert logged[0]["reason"].startswith("malformed body")
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err and captured.err == ""
    assert bot.engine.checks == [] and bot.runner.applied == []


@pytest.mark.parametrize(
    ("timestamp", "reason"), [("abc", "malformed timestamp"), ("1", "stale timestamp"),
                              ("9" * 40, "malformed timestamp")])
async def test_unparsable_or_stale_timestamps_are_401(bot: Bot, log_stream: io.StringIO, timestamp: str,
                                                      reason: str) -> None:
    body = bot.driver.command_body("worker2", user=ALICE, channel=CHANNEL).encode()
    status, _ = await raw_post(bot, body, timestamp=timestamp)
    assert status == 401 and [e["reason"] for e in lines(log_stream)] == [reason]


async def test_oversized_body_is_413_before_authentication(bot: Bot, log_stream: io.StringIO) -> None:
    limit = bot.rt.settings.max_request_bytes
    status, text = await raw_post(bot, b"text=" + b"x" * limit, signed=False)
    assert (status, json.loads(text)) == (413, {"error": "request too large"})
    assert [(e["status"], e["reason"]) for e in lines(log_stream)] == [(413, "body too large")]


async def test_unsigned_ssl_check_gets_bolts_empty_200(bot: Bot, log_stream: io.StringIO) -> None:
    assert await raw_post(bot, b"ssl_check=1&token=legacy", signed=False) == (200, "")
    assert await raw_post(bot, b"ssl_check=1&command=%2Fnetcheck&text=all&" + b"x" * 600, signed=False) \
        == (401, '{"error": "invalid request"}')
    assert bot.engine.checks == []


def block_actions(**fields: object) -> bytes:
    payload = {"type": "block_actions", "user": {"id": ALICE}, "container": {"channel_id": CHANNEL},
               "actions": [{"action_id": "apply_fix", "block_id": "b", "value": "{}"}], **fields}
    return urlencode({"payload": json.dumps({k: v for k, v in payload.items() if v is not None})}).encode()


async def test_signed_odd_payloads_are_acked_or_refused_in_one_line(
    bot: Bot, log_stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (block_actions(user=None), 200, "refusal"),  # no user: KeyError before
        (block_actions(user="UALICE"), 200, "refusal"),
        (block_actions(user={"id": "U1> <!channel"}), 200, "refusal"),
        (block_actions(actions=[]), 400, "request_refused"),
        (block_actions(actions=[{"block_id": "b"}]), 400, "request_refused"),
        (block_actions(actions=[{"action_id": "something_else", "value": "x"}]), 200, "unhandled"),
        (urlencode({"command": "/other", "text": "x", "user_id": ALICE, "channel_id": CHANNEL}).encode(), 200,
         "unhandled"),
        (urlencode({"command": "/netcheck", "text": "worker2"}).encode(), 200, "refusal"),
        (b'{"token": "x"}', 404, "unhandled"),
        (b'{"type": "event_callback", "event": {"type": "app_mention"}}', 200, "unhandled"),
        (b'{"type": "event_callback", "event": "x"}', 400, "request_refused"),
        (b'{"type": "view_submission", "view": []}', 400, "request_refused"),
    ]
    for body, status, event in cases:
        content_type = "application/json" if body.startswith(b"{") else FORM
        got, _ = await raw_post(bot, body, content_type=content_type)
        await bot.idle()
        logged = [e["event"] for e in lines(log_stream)]
        assert (got, logged) == (status, [event]), body[:120]
    captured = capsys.readouterr()
    assert "Suggestion" not in captured.out + captured.err and "Traceback" not in captured.out + captured.err
    assert bot.runner.applied == [] and bot.engine.checks == []
    assert bot.standin.calls_to("chat.postEphemeral") == []  # nobody valid to answer


@pytest.mark.parametrize(
    "text",
    ["worker2; touch /tmp/netcheck-canary", "$(touch /tmp/netcheck-canary)", "worker2\ntouch /tmp/x",
     "worker2\u202e", "Worker2", "x" * 10_000, "../etc", "worker2`id`", "-rf", "worker2\x00"],
)
async def test_hostile_slash_text_is_refused_before_anything_runs(bot: Bot, log_stream: io.StringIO,
                                                                  text: str) -> None:
    reply = await bot.driver.command(text, user=ALICE, channel=CHANNEL)
    await bot.idle()
    assert reply.status == 200
    answer = json.loads(reply.text)
    assert answer["response_type"] == "ephemeral" and answer["text"].startswith("invalid ")
    assert "Nothing was run" in answer["text"] and "<!" not in answer["text"]
    assert [(e["event"], e["reason"]) for e in lines(log_stream)] == [("refusal", "invalid-input")]
    assert bot.engine.checks == [] and bot.standin.messages(CHANNEL) == []
    help_reply = await bot.driver.command("help", user=ALICE, channel=CHANNEL)
    assert help_reply.status == 200 and "Usage" in json.loads(help_reply.text)["text"]


async def test_a_real_click_still_applies_after_all_that(bot: Bot) -> None:
    parent = await checked(bot, user=ALICE)
    await raw_post(bot, DEEP.encode(), content_type="application/json", signed=False)
    reply = await bot.driver.click(fix_reply(parent), user=BOB)
    await bot.idle()
    assert reply.status == 200 and len(bot.runner.applied) == 1
