"""A real check of the case-study node posted through a burst of Slack 5xx, on the lab: the real
engine (bot.wiring over the lab's SSH nodes and API stand-in), Bolt in HTTP mode, the Web API
stand-in failing chat.postMessage and chat.update on a schedule — some failed posts landed anyway.

Covers: the thread arrives complete (one reply per thing to do, the consequences, the folded ok one,
each exactly once, then the evidence file and the layer picture; the parent once, the verdict on
it), nothing is counted as undelivered, and the posts that landed despite their error were found by
lookup instead of being posted again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from lab.cluster import Lab
from probes.model import Report

pytestmark = pytest.mark.lab

CHANNEL = "C0NETCHECK"
SECRET = "lab-signing-secret"
CHECK_TIMEOUT_S = 180.0


async def burst(lab: Lab, node: str) -> dict[str, Any]:
    from bot import config as config_module
    from bot import wiring
    from bot.ops.metrics import METRICS
    from bot.slack.app import build_app
    from bot.slack.settings import SlackSettings
    from lab.slack.driver import SlackDriver
    from lab.slack.webapi import Failure, SlackStandIn

    standin = SlackStandIn(channels=(CHANNEL,))
    await standin.start()
    engine = wiring.build_engine(config_module.load(lab.config_file))
    reports: list[Report] = []
    engine.on_report.add(reports.append)  # the reports the bot handed out
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": SECRET,
                                             "api_url": standin.api_url, "server_error_backoff_s": 0.1})
    app, rt = build_app(settings, engine, None, probe_count=len(list(engine.registry)))
    site_runner = web.AppRunner(app.web_app(path="/slack/events"))
    await site_runner.setup()
    site = web.TCPSite(site_runner, "127.0.0.1", 0)
    await site.start()
    driver = SlackDriver(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/slack/events",
                         SECRET, standin)
    # the case study's thread is three posts (the thing to do, its consequences, the ok ones): two
    # faults each after the parent's
    standin.fail("chat.postMessage",
                 Failure(503, "service_unavailable"), Failure(500, "internal_error", lands=True),  # parent
                 Failure(200, "request_timeout"), None,
                 Failure(503, "service_unavailable"), Failure(500, "internal_error", lands=True),
                 Failure(502, "bad_gateway"), Failure(200, "fatal_error", lands=True))
    standin.fail("chat.update", Failure(503, "service_unavailable"), Failure(500, "internal_error"))
    undelivered = METRICS.slack_undelivered.labels(method="chat.postMessage")._value.get()
    try:
        await driver.command(node, user="UALICE", channel=CHANNEL)
        await rt.tasks.idle(timeout=CHECK_TIMEOUT_S)
        return {"parents": standin.messages(CHANNEL), "report": reports[-1],
                "calls": standin.calls,
                "undelivered": METRICS.slack_undelivered.labels(method="chat.postMessage")._value.get()
                - undelivered}
    finally:
        await rt.tasks.close(1)
        await site_runner.cleanup()
        await standin.stop()
        await engine.aclose()


def test_a_check_posted_through_a_burst_of_5xx_arrives_complete(lab: Lab) -> None:
    from bot.slack import messages as msg

    node = next(n.name for n in lab.nodes if n.wifi)  # the case study: several problems to post
    with lab.enter_ops():
        seen = asyncio.run(burst(lab, node))
    (parent,) = seen["parents"]
    report = seen["report"]
    todo = msg.plan([report, *report.peers])
    assert len(msg.problems(report)) >= 2 and len(todo) == 1, report.findings  # several problems, one fix
    expected = [f"{a.node}: {a.title} — {a.causes[0].summary}" for a in todo]
    texts = [r.text for r in parent.replies]
    assert texts[:len(todo)] == expected  # the thing to do once
    assert texts[len(todo)].startswith(":link: *")  # then its consequences, once
    assert "probes ok" in texts[len(todo) + 1]  # the folded ok reply
    assert len(texts) == len(todo) + 4  # then the evidence file, and the layer picture last
    shared = [f["name"] for reply in parent.replies[-2:] for f in reply.files]
    assert len(shared) == 2 and shared[0].endswith(".txt") and shared[1].endswith(".png"), shared
    assert parent.text == msg.verdict_line(report)
    assert seen["undelivered"] == 0
    failed = [c for c in seen["calls"] if c.status != 200 or c.answer.get("ok") is False]
    assert sum(1 for c in failed if c.answer.get("landed")) == 3  # landed anyway: found, not reposted
    assert len(failed) == 9  # every scheduled fault was met (and survived)
