"""The "Apply fix" button: verify the signed value, decide (approver, self-approval, expiry), claim
the proposal once, swap the button for "applying… approved by", run the fix with one thread reply
that is updated as the fix reports progress and ends with the outcome, and refresh the parent by a
re-check. Registered by `app.py::build_app`.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp

from bot.slack import blocks as bk
from bot.slack import guard, threads
from bot.slack import messages as msg
from bot.slack.approvals import Decision, InvalidValue, Proposal, decode
from bot.slack.ports import ApprovalRecord
from bot.slack.runtime import Runtime

log = structlog.get_logger("netcheck.slack")

NOTHING_CHANGED = ("refused", "busy")
"""Outcomes after which the node is as it was: no re-check (a hostile click costs no check)."""


def register(app: AsyncApp, rt: Runtime) -> None:
    @app.action(bk.ACTION_ID)
    async def apply_fix(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        rt.tasks.spawn(handle_click(rt, body, action), name="apply-fix")


async def _ephemeral(rt: Runtime, channel: str, user: str, text: str, thread_ts: str | None) -> None:
    await threads.call(rt, "chat.postEphemeral", channel=channel, user=user, text=text, thread_ts=thread_ts)


async def handle_click(rt: Runtime, body: dict[str, Any], action: dict[str, Any]) -> None:
    # Every field is read defensively: a payload may lack `user` or carry the wrong types.
    container = guard.mapping(body.get("container"))
    user_id = guard.mapping(body.get("user")).get("id")
    clicker = guard.slack_id_or_none(user_id, "Slack user id")
    channel = guard.slack_id_or_none(
        container.get("channel_id") or guard.mapping(body.get("channel")).get("id"), "Slack channel id"
    )
    if clicker is None or channel is None:
        log.warning("refusal", reason="malformed-click", user=guard.short(user_id),
                    channel=guard.short(container.get("channel_id")))
        return  # nobody to answer: no valid user or channel to post an ephemeral to
    message_ts = guard.text_field(container.get("message_ts"))
    try:
        proposal = decode(guard.text_field(action.get("value")), rt.settings.secret())
    except InvalidValue as exc:
        log.warning("refusal", reason="tampered", user=clicker, channel=channel, error=str(exc))
        await _ephemeral(rt, channel, clicker, msg.tampered(), None)
        return
    fields = {"user": clicker, "channel": channel, "node": proposal.node, "fix": proposal.fix}
    log.info("click", **fields, requested_by=proposal.requested_by)
    decision = await rt.approvers.decide(proposal, clicker)
    if decision is not Decision.APPROVED:
        text = {
            Decision.EXPIRED: msg.expired(proposal.node),
            Decision.NOT_APPROVER: msg.not_approver(rt.approvers.hint()),
            Decision.SELF_APPROVAL: msg.self_approval(),
        }[decision]
        log.info("refusal", reason=decision.value, **fields)
        await _ephemeral(rt, channel, clicker, text, proposal.thread_ts)
        return
    if not rt.ledger.claim(proposal.key):
        log.info("refusal", reason="already-applied", **fields)
        await _ephemeral(rt, channel, clicker, msg.already_applied(proposal.fix), proposal.thread_ts)
        return
    log.info("approval", **fields, requested_by=proposal.requested_by)
    blocks = guard.mapping(body.get("message")).get("blocks")
    message_blocks = [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []
    block_id = guard.text_field(action.get("block_id"))
    replaced = bk.replace_action(message_blocks, block_id, bk.context(msg.applying(clicker)))
    await threads.call(
        rt, "chat.update", channel=channel, ts=message_ts, text=msg.applying(clicker), blocks=replaced
    )
    await _run_fix(rt, proposal, clicker, fields)


async def _run_fix(rt: Runtime, proposal: Proposal, approver: str, fields: dict[str, str]) -> None:
    record = ApprovalRecord(
        approved_by=approver,
        requested_by=proposal.requested_by,
        proposal=proposal.key,
        channel=proposal.channel,
        proposed_at=proposal.proposed_at,
    )
    # One thread reply for the fix: posted now, updated as the fix advances ("calico-node 2/3
    # updated"), and finally replaced by the verdict.
    progress_lines: list[str] = []
    started = msg.fix_progress(proposal.fix, proposal.node, approver, progress_lines)
    posted = await threads.call(rt, "chat.postMessage", channel=proposal.channel,
                                thread_ts=proposal.thread_ts, text=started, blocks=[bk.section(started)])
    reply_ts = str(posted["ts"]) if posted and posted.get("ts") else None

    async def progress(line: str) -> None:
        progress_lines.append(line)
        if reply_ts is not None:
            text = msg.fix_progress(proposal.fix, proposal.node, approver, progress_lines)
            await threads.call(rt, "chat.update", channel=proposal.channel, ts=reply_ts, text=text,
                               blocks=[bk.section(text)])

    verification: list[str] = []
    if rt.runner is None:
        outcome, message = "refused", "fixes are not enabled on this bot"
    else:
        try:
            result = await rt.runner.apply(proposal.node, proposal.fix, dict(proposal.params),
                                           rt.approval_factory(record), progress=progress)
            outcome, message = str(result.outcome), result.message
            verification = [msg.verification_line(f) for f in result.verification]
        except Exception as exc:  # the runner reports outcomes; an exception here is a bug to show
            log.exception("fix_crashed", **fields)
            outcome, message = "failed", str(exc)
    log.info("fix_outcome", **fields, outcome=outcome, detail=message)
    text = msg.outcome(proposal.fix, proposal.node, outcome, message, approver, verification)
    if reply_ts is not None:
        posted = await threads.call(rt, "chat.update", channel=proposal.channel, ts=reply_ts,
                                    text=bk.clip(text, 3000), blocks=bk.sections(text))
    else:
        posted = await threads.call(rt, "chat.postMessage", channel=proposal.channel,
                                    thread_ts=proposal.thread_ts, text=bk.clip(text, 3000),
                                    blocks=bk.sections(text))
    if outcome not in NOTHING_CHANGED:
        await _recheck(rt, proposal, None if posted else msg.outcome_undelivered(text))


async def _recheck(rt: Runtime, proposal: Proposal, missing: str | None) -> None:
    try:
        report = await rt.engine.check(proposal.node, probes=rt.settings.probes)
    except Exception as exc:  # the parent then says the re-check failed
        log.exception("recheck_failed", node=proposal.node)
        await threads.update_parent(rt, proposal.channel, proposal.thread_ts,
                                    msg.check_failed(proposal.node, str(exc)), None, missing=missing)
        return
    line = "re-check after fix: " + msg.verdict_line(report)
    await threads.update_parent(rt, proposal.channel, proposal.thread_ts, line, report, missing=missing)
