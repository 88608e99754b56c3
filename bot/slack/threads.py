"""Posting a check: the parent message, one reply per problem (with its fix button), the ok ones
folded into one reply, the layer picture (pictures.py), and the parent updated with the verdict.
Slack errors are logged with the report, never lost. Used by `commands.py`, `actions.py` (re-check)
and `nodewatch.py`.

Every write goes through `call()`: the client retries transient Slack faults (delivery.py); a write
that still fails is counted in `netcheck_slack_undelivered_total`, and a thread reply that could not
be posted is reported on the parent (how many findings are missing, and `netcheck check NODE`).
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError

from bot.ops import metrics
from bot.slack import blocks as bk
from bot.slack import messages as msg
from bot.slack import pictures
from bot.slack.approvals import Proposal
from bot.slack.delivery import PENDING_POST, POST_METHOD, PendingPost
from bot.slack.runtime import Runtime
from probes.model import Finding, Report, Status

log = structlog.get_logger("netcheck.slack")


async def call(
    rt: Runtime, method: str, report: Report | None = None, **kwargs: Any
) -> dict[str, Any] | None:
    """One Web API call (transient faults retried by the client); on a Slack error that outlasted the
    retries, log it (with the report, if any), count it and return None."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}  # Slack rejects explicit nulls
    pending = None
    if method == POST_METHOD:  # a retried post must not land twice: it carries a delivery key
        pending = PendingPost(rt.client, kwargs["channel"], kwargs.get("thread_ts"))
        kwargs["metadata"] = pending.metadata
    token = PENDING_POST.set(pending)
    try:
        answer = await rt.client.api_call(method, json=kwargs)
        return dict(answer.data) if isinstance(answer.data, dict) else {}
    except SlackApiError as exc:
        if pending is not None and pending.landed_ts is not None:  # an attempt landed despite its error
            return {"ok": True, "channel": kwargs["channel"], "ts": pending.landed_ts}
        _undelivered(method, kwargs, report, error=exc.response.get("error"), status=exc.response.status_code)
        return None
    except (aiohttp.ClientError, TimeoutError) as exc:  # the connection failed past the retries
        if pending is not None and pending.landed_ts is not None:
            return {"ok": True, "channel": kwargs["channel"], "ts": pending.landed_ts}
        _undelivered(method, kwargs, report, error=f"{type(exc).__name__}: {exc}", status=None)
        return None
    finally:
        PENDING_POST.reset(token)


def _undelivered(
    method: str, kwargs: dict[str, Any], report: Report | None, *, error: Any, status: int | None
) -> None:
    metrics.record_slack_undelivered(method)
    log.error("slack_error", method=method, channel=kwargs.get("channel"), error=error, status=status,
              report=report.as_json() if report else None)


async def post_parent(rt: Runtime, channel: str, text: str) -> str | None:
    answer = await call(rt, "chat.postMessage", channel=channel, text=text, blocks=bk.parent(text))
    return str(answer["ts"]) if answer else None


async def update_parent(
    rt: Runtime, channel: str, ts: str, text: str, report: Report | None, note: str | None = None,
    missing: str | None = None,
) -> None:
    """Replace the parent's text; `note` (who asked, how long) stays visible under it, and `missing`
    (what the thread lacks) under that."""
    blocks = bk.parent(text) + [bk.context(line) for line in (note, missing) if line]
    await call(rt, "chat.update", report, channel=channel, ts=ts, text=text, blocks=blocks)


async def _fix_block(rt: Runtime, f: Finding, proposal: Proposal) -> tuple[dict[str, Any] | None, str | None]:
    if rt.runner is None:
        return None, "fixes are not enabled"
    try:
        plan = await rt.runner.plan(proposal.n, proposal.f, dict(proposal.p))
    except Exception as exc:  # an unplannable fix still shows the finding, with the reason
        log.warning("fix_plan_failed", node=proposal.n, fix=proposal.f, error=str(exc))
        return None, f"fix {proposal.f} cannot be planned: {exc}"
    button = bk.fix_button(proposal, rt.settings.secret(), plan.summary)
    return button, None if button else "its parameters are too long for a button"


async def post_findings(rt: Runtime, channel: str, parent_ts: str, report: Report, requested_by: str) -> int:
    """Thread replies for one node: each problem on its own (cause first), the ok ones folded.
    Returns how many findings could not be posted."""
    missing = 0
    for f in msg.problems(report):
        button, note = None, None
        if f.fix is not None:
            proposal = Proposal(
                n=report.node,
                f=f.fix.id,
                p=dict(f.fix.params),
                t=int(time.time()),
                r=requested_by,
                c=channel,
                th=parent_ts,
            )
            button, note = await _fix_block(rt, f, proposal)
        if not await post_reply(rt, channel, parent_ts, report, f"{report.node}: {f.summary}",
                                bk.finding(f, button, note)):
            missing += 1
    fine = [f for f in report.findings if f.status in (Status.OK, Status.SKIP)]
    if fine and not await post_reply(rt, channel, parent_ts, report, msg.ok_folded(fine), bk.ok_folded(fine)):
        missing += len(fine)
    return missing


async def post_reply(
    rt: Runtime, channel: str, parent_ts: str, report: Report | None, text: str, blocks: list[dict[str, Any]]
) -> bool:
    """One reply in the check's thread; False when Slack refused it past the retries (logged with
    the report, counted)."""
    answer = await call(rt, "chat.postMessage", report, channel=channel, thread_ts=parent_ts, text=text,
                        blocks=blocks)
    return answer is not None


async def post_node_check(
    rt: Runtime, channel: str, parent_ts: str, report: Report, requested_by: str
) -> None:
    drawing = pictures.start(rt, report)  # drawn in a thread while the findings and verdict are posted
    try:
        missing = await post_findings(rt, channel, parent_ts, report, requested_by)
        line = msg.verdict_line(report)
        lost = msg.findings_undelivered(report.node, missing, len(report.findings)) if missing else None
        note = msg.checked_note(report, requested_by)
        await update_parent(rt, channel, parent_ts, line, report, note, lost)
        await pictures.upload(rt, channel, parent_ts, report, drawing)  # the verdict never waits for it
    finally:
        if drawing is not None:
            drawing.cancel()  # no-op once done; stops the drawing if posting failed


async def run_check(rt: Runtime, node: str, channel: str, requested_by: str, parent_ts: str) -> Report | None:
    """Check one node into an existing parent; an engine failure becomes a visible message."""
    rt.running[node] = (channel, parent_ts)
    try:
        async with rt.check_slots:
            report = await rt.engine.check(node, probes=rt.settings.probes)
    except Exception as exc:  # the engine turns probe failures into findings; this is the engine itself
        log.exception("check_failed", node=node, channel=channel, user=requested_by)
        await update_parent(rt, channel, parent_ts, msg.check_failed(node, str(exc)), None)
        return None
    finally:
        rt.running.pop(node, None)
    log.info("check_done", node=node, channel=channel, user=requested_by, verdict=report.verdict.value)
    await post_node_check(rt, channel, parent_ts, report, requested_by)
    return report
