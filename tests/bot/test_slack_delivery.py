"""Slack writes delivered or reported: the real Bolt app and Web API client against the Slack
stand-in answering 5xx and Slack's transient errors on a schedule (fake engine and runner).

Covers: which answers count as transient (5xx JSON or an HTML gateway page, internal_error,
service_unavailable, fatal_error, request_timeout, dropped connections; not 429 or channel_not_found);
a check posted through a burst of 500/503/502 and error answers arrives complete, every reply
once, also when a failed attempt had landed (looked up in conversations.replies, or
conversations.history for the parent) and a chat.update 503 is retried; a reply that still cannot be
posted is counted in netcheck_slack_undelivered_total and the parent says how many findings are
missing and how to get them; `/netcheck all` names the nodes whose details are missing; a fix
outcome that cannot be posted is shown on the parent.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import ServerDisconnectedError
from slack_sdk.http_retry.response import HttpResponse

from bot.ops.metrics import METRICS
from bot.slack.delivery import transient
from lab.slack.webapi import Failure
from tests.bot.test_slack import ALICE, BOB, CHANNEL, Bot, checked, fix_reply, start_bot

QUICK = {"server_error_retries": 4, "server_error_backoff_s": 0.02}


@pytest.fixture
async def bot():
    b = await start_bot(QUICK)
    yield b
    await b.rt.tasks.close(1)
    await b._site_runner.cleanup()
    await b.standin.stop()


def undelivered(method: str) -> float:
    return METRICS.slack_undelivered.labels(method=method)._value.get()


@pytest.mark.parametrize(("status", "body", "error", "expected"), [
    (500, {"ok": False, "error": "internal_error"}, None, True),
    (503, {"ok": False, "error": "service_unavailable"}, None, True),
    (502, None, None, True),  # an HTML gateway page: no JSON body
    (200, {"ok": False, "error": "fatal_error"}, None, True),
    (200, {"ok": False, "error": "request_timeout"}, None, True),
    (200, {"ok": False, "error": "internal_error"}, None, True),
    (200, {"ok": False, "error": "channel_not_found"}, None, False),
    (429, {"ok": False, "error": "ratelimited"}, None, False),  # slack_sdk's rate-limit handler
    (200, {"ok": True}, None, False),
    (None, None, ServerDisconnectedError(), True),
    (None, None, ValueError("a bug"), False),
])
def test_what_counts_as_transient(status, body, error, expected) -> None:
    response = None if status is None else HttpResponse(status_code=status, headers={}, body=body)
    assert transient(response, error) is expected


def texts(message) -> list[str]:
    return [r.text for r in message.replies]


async def test_burst_of_5xx_arrives_complete_without_duplicates(bot: Bot) -> None:
    clean = await checked(bot)  # the same check with Slack healthy, for comparison
    bot.standin.fail(
        "chat.postMessage",
        Failure(500, "internal_error", lands=True),  # the parent landed: found in conversations.history
        Failure(503, "service_unavailable"),
        None,
        Failure(500, "internal_error"),
        Failure(502, "bad_gateway"),
        Failure(200, "fatal_error", lands=True),  # a reply landed: found in conversations.replies
        Failure(503, "service_unavailable"),
        Failure(200, "request_timeout"),
    )
    bot.standin.fail("chat.update", Failure(503, "service_unavailable"))
    before = undelivered("chat.postMessage")
    parent = await checked(bot)
    assert len(bot.standin.messages(CHANNEL)) == 2  # the earlier clean parent and this one: no duplicate
    assert texts(parent) == texts(clean)  # every reply once, in order
    assert parent.text == clean.text and parent.text.startswith(":x: worker2: 2 problems")
    assert undelivered("chat.postMessage") == before
    failed = [c for c in bot.standin.calls if c.status != 200 or c.answer.get("ok") is False]
    assert len(failed) == 8
    assert bot.standin.calls_to("conversations.history") and bot.standin.calls_to("conversations.replies")


async def test_a_reply_that_cannot_be_posted_is_reported_on_the_parent(bot: Bot) -> None:
    bot.rt.client.retry_handlers[-1].max_retry_count = 1  # two attempts per call
    bot.standin.fail("chat.postMessage", None, Failure(500, "internal_error"),
                     Failure(503, "service_unavailable"))
    before = undelivered("chat.postMessage")
    parent = await checked(bot)
    # the thing to do is missing; the consequence, the ok ones, the evidence file and the picture are there
    assert len(parent.replies) == 4
    assert undelivered("chat.postMessage") == before + 1
    notes = [e["text"] for b in parent.blocks if b["type"] == "context" for e in b["elements"]]
    assert notes[-1] == (":warning: 1 of 4 findings could not be posted to this thread (Slack errors); "
                         "get the full report with `netcheck check worker2`.")
    assert parent.text.startswith(":x: worker2: 2 problems")  # the verdict itself still arrived


async def test_netcheck_all_names_the_nodes_whose_details_are_missing(bot: Bot) -> None:
    bot.rt.client.retry_handlers[-1].max_retry_count = 0
    # parent, the thing to do, the consequences, then worker2's node lines: those fail
    bot.standin.fail("chat.postMessage", None, None, None, Failure(500, "internal_error"))
    await bot.driver.command("all", user=ALICE, channel=CHANNEL)
    await bot.idle()
    parent = bot.parent()
    assert [r.text.split(":")[0] for r in parent.replies] == ["worker2", "", ""]  # + the evidence file
    assert parent.blocks[-1]["elements"][0]["text"].startswith(
        ":warning: the details of worker2 could not be posted to this thread")


async def test_a_fix_outcome_that_cannot_be_posted_is_shown_on_the_parent(bot: Bot) -> None:
    parent = await checked(bot, user=ALICE)
    bot.rt.client.retry_handlers[-1].max_retry_count = 0
    # the fix's reply when it starts, then the outcome posted in its place: neither arrives
    bot.standin.fail("chat.postMessage", *[Failure(503, "service_unavailable")] * 2)
    await bot.driver.click(fix_reply(parent), user=BOB)
    await bot.idle()
    assert len(bot.runner.applied) == 1
    assert not any("*applied*" in t for t in texts(parent))
    assert parent.text.startswith("re-check after fix:")
    assert "the fix outcome could not be posted to this thread" in str(parent.blocks)
    assert "*applied*" in str(parent.blocks)


async def test_retries_are_bounded(bot: Bot) -> None:
    bot.standin.fail("chat.update", *[Failure(503, "service_unavailable")] * 10)
    before = undelivered("chat.update")
    started = asyncio.get_running_loop().time()
    await checked(bot)
    assert len(bot.standin.calls_to("chat.update")) == QUICK["server_error_retries"] + 1
    assert undelivered("chat.update") == before + 1
    assert asyncio.get_running_loop().time() - started < 5
