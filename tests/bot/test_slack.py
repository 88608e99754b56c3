"""The Slack bot end to end: a real Bolt AsyncApp in HTTP mode on 127.0.0.1, signed requests from
`lab.slack.driver`, the Web API pointed at the `lab.slack.webapi` stand-in, fake engine and fix runner.

Covers: ack < 3 s while probes run; parent, threaded replies (cause first, ok folded), parent verdict;
`/netcheck all` (a line per node, details in the thread);
help / unknown node / already running / channel not allowed; approver click applies once (double click)
with the button replaced, one fix reply in the thread updated with progress and ending with the outcome,
and the parent re-checked; non-approver, self-approval,
expired and tampered values refused with nothing applied; bad signature and stale timestamp → 401;
429 retried; Slack errors and cluster failures shown/logged; a JSON log line per command, click, approval,
refusal and fix outcome; node joins (existing nodes ignored, Ready once, flap, dropped stream, 410 re-list).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

from bot.slack.app import build_app
from bot.slack.approvals import Proposal, encode
from bot.slack.http import events_app
from bot.slack.ports import NodeState
from bot.slack.settings import SlackSettings
from lab.slack.driver import SlackDriver
from lab.slack.webapi import SlackStandIn
from tests.bot.fakes import (
    GONE,
    FakeNodeSource,
    FakeRunner,
    start_node_watch,
)
from tests.fakes.engine import FakeEngine

SECRET = "test-signing-secret"
CHANNEL = "C0NETCHECK"
JOIN = "C0JOINS"
ALICE, BOB, MALLORY, GROUPIE = "UALICE", "UBOB", "UMALLORY", "UGROUPIE"


class Bot:
    def __init__(self, standin, app, rt, driver, engine, runner, site_runner):
        self.standin, self.app, self.rt, self.driver = standin, app, rt, driver
        self.engine, self.runner, self._site_runner = engine, runner, site_runner

    async def idle(self) -> None:
        await self.rt.tasks.idle(timeout=10)

    def parent(self, index: int = -1):
        return self.standin.messages(CHANNEL)[index]


async def start_bot(settings_overrides: dict | None = None, *, delay_s: float = 0.0):
    standin = SlackStandIn(channels=(CHANNEL, JOIN), usergroups={"S0OPS": [GROUPIE]})
    await standin.start()
    values = {"bot_token": "xoxb-test", "signing_secret": SECRET, "api_url": standin.api_url,
              "approvers": [ALICE, BOB], "approver_group": "S0OPS", "join_channel": JOIN,
              "watch_retry_s": 0.05}
    values.update(settings_overrides or {})
    settings = SlackSettings.model_validate(values)
    engine = FakeEngine(["master", "worker1", "worker2"], delay_s=delay_s)
    runner = FakeRunner(engine)
    app, rt = build_app(settings, engine, runner, probe_count=4)
    site_runner = web.AppRunner(events_app(app, settings))
    await site_runner.setup()
    site = web.TCPSite(site_runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SECRET, standin)
    return Bot(standin, app, rt, driver, engine, runner, site_runner)


@pytest.fixture
async def bot():
    b = await start_bot()
    yield b
    await b.rt.tasks.close(1)
    await b._site_runner.cleanup()
    await b.standin.stop()


async def checked(bot: Bot, node: str = "worker2", user: str = ALICE):
    reply = await bot.driver.command(node, user=user, channel=CHANNEL)
    assert reply.status == 200
    await bot.idle()
    return bot.parent()


def fix_reply(parent):
    return next(r for r in parent.replies if any(b["type"] == "actions" for b in r.blocks))


async def test_ack_is_fast_while_probes_run_then_thread_and_verdict():
    b = await start_bot(delay_s=1.5)
    try:
        reply = await b.driver.command("worker2", user=ALICE, channel=CHANNEL)
        assert reply.status == 200 and reply.elapsed_s < 3
        await asyncio.sleep(0.2)
        assert b.engine.in_flight == 1  # acked while the probes still run
        parent = b.parent()
        assert parent.text == "netcheck worker2 — running 4 probes… (asked by <@UALICE>)"
        await b.idle()
        verdict = ":x: worker2: 2 problems — act on masquerade: no MASQUERADE on wlp59s0 (resolves pod-api)"
        assert parent.text == verdict
        assert parent.edits == 1
        assert parent.blocks[-1]["elements"][0]["text"].startswith("asked by <@UALICE> · 4 probes in 1.5 s")
        texts = [r.text for r in parent.replies]
        assert texts[0] == "worker2: masquerade — no MASQUERADE on wlp59s0"  # the thing to do first
        assert texts[1] == ":link: *1 consequence* (no fix of their own: the cause's fix clears them)"
        assert texts[2].endswith("2 probes ok: `route`, `mtu`")
        action = parent.replies[0].blocks
        assert action[0]["text"]["text"] == ("1 thing to do on worker2: `masquerade`* — resolves pod-api"
                                             .join([":wrench: *", ""]))
        evidence = action[2]["text"]["text"]
        assert evidence.startswith("```") and "characters trimmed" in evidence and len(evidence) <= 3000
        assert "&lt;rule &amp; more&gt;" in evidence
        (block, button), = SlackDriver.buttons(parent.replies[0])
        assert button["text"]["text"] == "Apply fix: masquerade"
        assert "MASQUERADE" in button["confirm"]["text"]["text"]
        consequence = parent.replies[1].blocks[1]["text"]["text"]
        assert consequence == ":x: `pod-api` pod→API unreachable — _consequence of masquerade_"
        assert sum(len(SlackDriver.buttons(r)) for r in parent.replies) == 1
        # the full evidence, as a file in the thread (beside the layer picture)
        (shared,) = [r for r in parent.replies if r.files and r.files[0]["name"].endswith(".txt")]
        content = b.standin.file_content(shared.files[0]["id"]).decode()
        assert shared.files[0]["name"] == "netcheck-worker2-evidence.txt"
        assert content.count("<rule & more>") == 400 and "== worker2 / pod-api: fail" in content
        assert not any(c.answer.get("ok") is False for c in b.standin.calls)
    finally:
        await b.rt.tasks.close(1)
        await b._site_runner.cleanup()
        await b.standin.stop()


async def test_help_unknown_node_and_channel_policy(bot):
    reply = await bot.driver.command("", user=ALICE, channel=CHANNEL)
    assert reply.status == 200 and "Usage" in json.loads(reply.text)["text"]
    reply = await bot.driver.command("workr2", user=ALICE, channel=CHANNEL)
    await bot.idle()
    hook = bot.standin.webhooks[-1]
    assert hook["response_type"] == "ephemeral" and "did you mean worker2, worker1?" in hook["text"]
    assert bot.standin.messages(CHANNEL) == []
    bot.rt.settings.allowed_channels.append("C0OTHER")
    reply = await bot.driver.command("worker2", user=ALICE, channel=CHANNEL)
    assert "not enabled in this channel" in json.loads(reply.text)["text"]
    await bot.idle()
    assert bot.standin.messages(CHANNEL) == [] and bot.engine.checks == []


async def test_already_running_links_the_thread():
    b = await start_bot(delay_s=1.0)
    try:
        await b.driver.command("worker2", user=ALICE, channel=CHANNEL)
        await asyncio.sleep(0.3)
        await b.driver.command("worker2", user=BOB, channel=CHANNEL)
        await b.idle()
        assert len(b.standin.messages(CHANNEL)) == 1 and b.engine.checks == ["worker2"]
        parent = b.parent()
        hook = b.standin.webhooks[-1]
        assert "already running" in hook["text"]
        assert f"/archives/{CHANNEL}/p{parent.ts.replace('.', '')}" in hook["text"]
    finally:
        await b.rt.tasks.close(1)
        await b._site_runner.cleanup()
        await b.standin.stop()


async def test_already_running_asks_slack_for_the_threads_link_once():
    b = await start_bot(delay_s=1.0)
    try:
        await b.driver.command("worker2", user=ALICE, channel=CHANNEL)
        await asyncio.sleep(0.3)
        for user in (BOB, MALLORY, GROUPIE):
            await b.driver.command("worker2", user=user, channel=CHANNEL)
        await b.idle()
        hooks = [h["text"] for h in b.standin.webhooks if "already running" in h["text"]]
        assert len(hooks) == 3 and len(set(hooks)) == 1  # each refused command got the thread's link
        assert [c.method for c in b.standin.calls].count("chat.getPermalink") == 1
    finally:
        await b.rt.tasks.close(1)
        await b._site_runner.cleanup()
        await b.standin.stop()


async def test_approver_double_click_applies_once_and_rechecks(bot):
    parent = await checked(bot, user=ALICE)
    message = fix_reply(parent)
    first, second = await asyncio.gather(
        bot.driver.click(message, user=BOB), bot.driver.click(message, user=BOB)
    )
    assert first.status == second.status == 200
    await bot.idle()
    assert len(bot.runner.applied) == 1
    node, fix_id, params, approval = bot.runner.applied[0]
    assert (node, fix_id) == ("worker2", "masquerade")
    assert params == {"iface": "wlp59s0", "cidr": "192.168.88.0/24"}
    assert approval.approver == BOB and approval.requested_by == ALICE
    assert not any(b["type"] == "actions" for b in message.blocks)
    assert any("applying… approved by <@UBOB>" in json.dumps(b, ensure_ascii=False) for b in message.blocks)
    assert any("*applied*" in r.text for r in parent.replies)
    # one reply for the fix: posted as "running", updated with the fix's progress, then the verdict
    (outcome,) = [r for r in parent.replies if "fix `masquerade`" in r.text]
    updates = [c.params["text"] for c in bot.standin.calls_to("chat.update")
               if c.params.get("ts") == outcome.ts]
    assert updates[0].endswith("• rule added, verifying") and "running (approved by <@UBOB>)" in updates[0]
    assert "*applied*" in updates[-1] and outcome.text == updates[-1]
    assert parent.text == "re-check after fix: :white_check_mark: worker2: all 4 probes ok"
    assert [e.text for e in bot.standin.ephemeral if e.user == BOB][-1].startswith("Fix `masquerade`")


async def test_stale_copy_click_applies_nothing(bot):
    parent = await checked(bot, user=ALICE)
    message = fix_reply(parent)
    stale = type(message)(**{**message.__dict__, "blocks": list(message.blocks)})  # copy before update
    await bot.driver.click(message, user=BOB)
    await bot.idle()
    await bot.driver.click(stale, user=GROUPIE)  # group member: an approver, but the proposal is used
    await bot.idle()
    assert len(bot.runner.applied) == 1
    assert "already approved" in bot.standin.ephemeral[-1].text


async def test_non_approver_and_self_approval_refused(bot):
    parent = await checked(bot, user=ALICE)
    message = fix_reply(parent)
    await bot.driver.click(message, user=MALLORY)
    await bot.driver.click(message, user=ALICE)
    await bot.idle()
    assert bot.runner.applied == []
    refusals = {e.user: e.text for e in bot.standin.ephemeral}
    assert "not an approver" in refusals[MALLORY] and "<!subteam^S0OPS>" in refusals[MALLORY]
    assert "another approver" in refusals[ALICE]
    assert any(b["type"] == "actions" for b in message.blocks)  # button still there


async def test_group_member_approves(bot):
    parent = await checked(bot, user=ALICE)
    await bot.driver.click(fix_reply(parent), user=GROUPIE)
    await bot.idle()
    assert [a[3].approver for a in bot.runner.applied] == [GROUPIE]
    assert len(bot.standin.calls_to("usergroups.users.list")) == 1


async def test_expired_and_tampered_values_refused(bot):
    parent = await checked(bot, user=ALICE)
    message = fix_reply(parent)
    (block, button), = SlackDriver.buttons(message)
    old = Proposal(n="worker2", f="masquerade", p={"iface": "wlp59s0", "cidr": "192.168.88.0/24"},
                   t=int(time.time()) - 31 * 60, r=ALICE, c=CHANNEL, th=parent.ts)
    await bot.driver.click(message, user=BOB, value=encode(old, SECRET))
    await bot.idle()
    assert "re-run `/netcheck worker2`" in bot.standin.ephemeral[-1].text
    tampered = button["value"].replace("wlp59s0", "eth0")
    await bot.driver.click(message, user=BOB, value=tampered)
    await bot.idle()
    assert "failed verification" in bot.standin.ephemeral[-1].text
    assert bot.runner.applied == []


async def test_bad_signature_and_stale_timestamp_rejected(bot):
    body = bot.driver.command_body("worker2", user=ALICE, channel=CHANNEL)
    assert (await bot.driver.post(body, signature="v0=" + "0" * 64)).status == 401
    assert (await bot.driver.post(body, timestamp=int(time.time()) - 301)).status == 401
    await bot.idle()
    assert bot.standin.messages(CHANNEL) == [] and bot.engine.checks == []


async def test_rate_limited_post_is_retried(bot):
    bot.standin.rate_limit("chat.postMessage", 1, retry_after=1)
    parent = await checked(bot, user=ALICE)
    statuses = [c.status for c in bot.standin.calls_to("chat.postMessage")]
    assert statuses[0] == 429 and statuses[1] == 200
    assert parent.text.startswith(":x: worker2: 2 problems")


async def test_slack_error_is_logged_not_lost(bot, capsys):
    bot.standin.channels.pop(CHANNEL)
    await bot.driver.command("worker2", user=ALICE, channel=CHANNEL)
    await bot.idle()
    assert "cannot post in this channel" in bot.standin.webhooks[-1]["text"]
    assert "channel_not_found" in capsys.readouterr().out


async def test_node_joins(bot):
    source = FakeNodeSource([NodeState(name=n, ready=True) for n in ("master", "worker1", "worker2")])
    watcher = start_node_watch(bot.rt, source)
    await asyncio.wait_for(watcher.ready.wait(), 5)
    source.set("worker1", True)  # existing node: no summary
    bot.engine.nodes.append("worker3")
    source.set("worker3", False, kind="ADDED")  # new but not Ready yet
    await asyncio.sleep(0.1)
    assert bot.standin.messages(JOIN) == []
    source.set("worker3", True)
    await asyncio.sleep(0.1)
    await _settle(bot)
    joins = bot.standin.messages(JOIN)
    assert [m.text.splitlines()[0] for m in joins] == [":white_check_mark: worker3: all 4 probes ok"]
    assert joins[0].replies and bot.engine.refreshes == 1
    source.set("worker3", False)
    source.set("worker3", True)  # flapping: no second summary
    source.events.put_nowait(None)  # dropped stream: resume from the last version
    source.events.put_nowait(ConnectionResetError("reset"))
    await asyncio.sleep(0.1)
    assert source.watches[-1] == str(source.version)
    bot.engine.nodes.append("worker4")
    source.set("worker4", True, announce=False)  # appears while the watch is gone
    source.fail_lists = 1  # and the first re-list after the 410 fails: retried
    source.events.put_nowait(GONE("410"))
    for _ in range(50):
        if len(bot.standin.messages(JOIN)) == 2:
            break
        await asyncio.sleep(0.05)
    await _settle(bot)
    assert source.lists == 3
    assert [m.text.splitlines()[0].split(":", 2)[-1].strip() for m in bot.standin.messages(JOIN)] == [
        "worker3: all 4 probes ok", "worker4: all 4 probes ok"]


async def _settle(bot: Bot) -> None:
    """Wait for every task but the endless watch."""
    for _ in range(100):
        if bot.rt.tasks.running <= 1:
            return
        await asyncio.sleep(0.02)


async def test_netcheck_all_one_line_per_node_details_in_thread(bot):
    reply = await bot.driver.command("all", user=ALICE, channel=CHANNEL)
    assert reply.status == 200
    await bot.idle()
    parent = bot.parent()
    assert parent.blocks[0]["text"]["text"] == (
        "netcheck all — 3 nodes: act first on worker2: masquerade (resolves 1 problem on 1 node)")
    lines = parent.blocks[1]["text"]["text"].splitlines()
    assert lines == [
        ":white_check_mark: master: all 4 probes ok",
        ":white_check_mark: worker1: all 4 probes ok",
        ":x: worker2: 2 problems — act on masquerade: no MASQUERADE on wlp59s0 (resolves pod-api)",
    ]
    texts = [r.text for r in parent.replies]
    assert texts[0] == "worker2: masquerade — no MASQUERADE on wlp59s0"
    assert sum(len(SlackDriver.buttons(r)) for r in parent.replies) == 1  # one button per fix
    node_lines = next(r for r in parent.replies if r.text.startswith("worker2: 2 problems"))
    assert "no MASQUERADE on wlp59s0 (`masquerade`, cause)" in node_lines.blocks[0]["text"]["text"]
    assert [r.files[0]["name"] for r in parent.replies if r.files] == ["netcheck-all-evidence.txt"]


async def test_cluster_failure_is_shown_not_silent(bot):
    bot.engine.nodes.append("unreachable")
    await checked(bot, node="unreachable")
    assert bot.parent().text == (
        ":boom: netcheck unreachable failed: list nodes: API server unreachable: connection refused")


async def test_json_log_line_for_command_click_approval_refusal_and_outcome(bot):
    import io

    import structlog

    from bot.logging import configure

    stream = io.StringIO()
    configure(level="info", stream=stream, json=True)
    try:
        parent = await checked(bot, user=ALICE)
        message = fix_reply(parent)
        await bot.driver.click(message, user=MALLORY)
        await bot.idle()
        await bot.driver.click(message, user=BOB)
        await bot.idle()
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    by_event: dict[str, list[dict]] = {}
    for line in lines:
        by_event.setdefault(line["event"], []).append(line)
    assert by_event["command"][0] | {"user": ALICE, "channel": CHANNEL} == by_event["command"][0]
    assert {c["user"] for c in by_event["click"]} == {MALLORY, BOB}
    refusal = by_event["refusal"][0]
    assert (refusal["user"], refusal["reason"], refusal["node"], refusal["fix"]) == (
        MALLORY, "not-approver", "worker2", "masquerade")
    assert by_event["approval"][0]["user"] == BOB
    outcome = by_event["fix_outcome"][0]
    assert (outcome["user"], outcome["channel"], outcome["node"], outcome["fix"], outcome["outcome"]) == (
        BOB, CHANNEL, "worker2", "masquerade", "applied")


async def test_commands_share_a_bounded_number_of_check_slots():
    b = await start_bot({"max_concurrent_checks": 1}, delay_s=0.5)
    try:
        for node in ("master", "worker1"):
            reply = await b.driver.command(node, user=ALICE, channel=CHANNEL)
            assert reply.status == 200 and reply.elapsed_s < 3
        await asyncio.sleep(0.2)
        assert len(b.standin.messages(CHANNEL)) == 2  # both asked: parents posted at once
        assert b.engine.in_flight == 1  # but only one check runs; the other waits for the slot
        await b.idle()
        assert sorted(b.engine.checks) == ["master", "worker1"]
        assert all("all 4 probes ok" in p.text for p in b.standin.messages(CHANNEL))
    finally:
        await b.rt.tasks.close(1)
        await b._site_runner.cleanup()
        await b.standin.stop()
