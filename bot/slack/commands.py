"""The `/netcheck` slash command: ack at once, then check in a tracked task.

`/netcheck NODE`, `/netcheck all`, `/netcheck` / `help` (ephemeral usage). Unknown nodes and checks
already running get an ephemeral answer. Registered by `app.py::build_app`.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.slack import blocks as bk
from bot.slack import guard, threads
from bot.slack import messages as msg
from bot.slack.runtime import Runtime
from probes.errors import InvalidInput, UnknownNode
from probes.transports import commands as validate

log = structlog.get_logger("netcheck.slack")


TEXT_MAX = 500
"""Characters of slash-command text read: `/netcheck NODE` needs at most a node name (253)."""


def register(app: AsyncApp, rt: Runtime) -> None:
    @app.command("/netcheck")
    async def netcheck(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        channel = guard.slack_id_or_none(command.get("channel_id"), "Slack channel id")
        user = guard.slack_id_or_none(command.get("user_id"), "Slack user id")
        if channel is None or user is None:
            log.warning("refusal", reason="malformed-command", user=guard.short(command.get("user_id")),
                        channel=guard.short(command.get("channel_id")))
            await ack(response_type="ephemeral", text=msg.malformed_command())
            return
        try:
            text = validate.text(command.get("text") or "", TEXT_MAX, "command text").strip()
            words = text.split()
            if len(words) > 1:  # `NODE && touch x` must not quietly become a check of NODE
                raise InvalidInput(f"invalid command text {validate.shown(text)}: "
                                   "give one node name, `all` or `help`")
            target = words[0] if words else ""
            if target and target.lower() not in ("all", "help"):
                validate.node_name(target)
        except InvalidInput as exc:  # refused before anything runs: one line back to the user
            log.info("refusal", reason="invalid-input", user=user, channel=channel, error=str(exc))
            await ack(response_type="ephemeral", text=msg.invalid_input(str(exc)))
            return
        log.info("command", user=user, channel=channel, text=text)
        if not text or target.lower() == "help":
            await ack(response_type="ephemeral", text=msg.USAGE)
            return
        if not rt.channel_allowed(channel):
            log.info("refusal", reason="channel-not-allowed", user=user, channel=channel)
            await ack(response_type="ephemeral", text=msg.channel_not_allowed())
            return
        await ack()
        if target.lower() == "all":
            rt.tasks.spawn(check_all(rt, channel, user), name="netcheck-all")
        else:
            rt.tasks.spawn(check_node(rt, target, channel, user, respond), name=f"netcheck-{target}")


async def check_node(rt: Runtime, node: str, channel: str, user: str, respond: AsyncRespond) -> None:
    if node in rt.running:
        where_channel, where_ts = rt.running[node]
        link = await rt.permalink(where_channel, where_ts) if where_ts else "(starting)"
        log.info("refusal", reason="already-running", node=node, user=user, channel=channel)
        await respond(response_type="ephemeral", text=msg.already_running(node, link))
        return
    rt.running[node] = (channel, "")
    try:
        await rt.engine.resolve_node(node)
        parent_ts = await threads.post_parent(rt, channel, msg.running(node, rt.probe_count, user))
    except UnknownNode as exc:  # names the closest nodes
        rt.running.pop(node, None)
        log.info("refusal", reason="unknown-node", node=node, user=user, channel=channel)
        await respond(response_type="ephemeral", text=msg.unknown_node(node, str(exc)))
        return
    except BaseException:
        rt.running.pop(node, None)
        raise
    if parent_ts is None:
        rt.running.pop(node, None)
        await respond(response_type="ephemeral", text="I cannot post in this channel; invite me first.")
        return
    await threads.run_check(rt, node, channel, user, parent_ts)


async def check_all(rt: Runtime, channel: str, user: str) -> None:
    names = await rt.engine.node_names()
    title = msg.running_all(len(names), user)
    parent_ts = await threads.post_parent(rt, channel, title)
    if parent_ts is None:
        return
    try:
        # paced like the commands' checks (slack.max_concurrent_checks nodes at once), not the CLI's
        # one wave: the sweep runs on the engine's loop but shares the CPUs and the GIL with the loop
        # that acknowledges every slash command (docs/event-loops.md)
        reports = await rt.engine.check_all(probes=rt.settings.probes,
                                            concurrency=rt.settings.max_concurrent_checks)
    except Exception as exc:  # shown in the channel rather than lost
        log.exception("check_all_failed", channel=channel, user=user)
        await threads.update_parent(rt, channel, parent_ts, msg.check_failed("all", str(exc)), None)
        return
    # the things to do across the whole run first (one button per fix), then each node with problems
    evidence_name, missing = await threads.post_plan(rt, channel, parent_ts, reports, user, None)
    lost = [report.node for report in reports if report.verdict.is_problem
            and not await threads.post_reply(rt, channel, parent_ts, report, msg.verdict(report, reports),
                                             bk.node_summary(report, reports))]
    if evidence_name:
        await threads.upload_evidence(rt, channel, parent_ts, reports, evidence_name)
    title = f"netcheck all — {len(reports)} nodes: {msg.headline(reports)}"
    summary = bk.summary_all(msg.escape(title), reports)
    if lost or missing:  # the one line per node is in the summary; say what the thread lacks
        lost = lost or [r.node for r in reports if r.verdict.is_problem]
        summary = summary[: bk.MAX_BLOCKS - 1] + [bk.context(msg.nodes_undelivered(lost))]
    fallback = title + "; " + "; ".join(msg.verdict(r, reports) for r in reports)
    await threads.call(
        rt, "chat.update", None, channel=channel, ts=parent_ts, text=fallback[:3000], blocks=summary
    )
