"""Posting a check: the parent message, one reply per thing to do (one fix, one button, the list of
problems it resolves — on any node of the run), one reply listing the consequences, the ok ones
folded, the full evidence as a file, the layer picture (pictures.py), and the parent updated with the
verdict. Slack errors are logged with the report, never lost. Used by `commands.py`, `actions.py`
(re-check) and `nodewatch.py`.

Every write goes through `call()`: the client retries transient Slack faults (delivery.py); a write
that still fails is counted in `netcheck_slack_undelivered_total`, and a thread reply that could not
be posted is reported on the parent (how many findings are missing, and `netcheck check NODE`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.ops import metrics
from bot.slack import blocks as bk
from bot.slack import messages as msg
from bot.slack import pictures
from bot.slack.approvals import Proposal
from bot.slack.delivery import PENDING_POST, POST_METHOD, PendingPost
from bot.slack.runtime import Runtime
from probes.graph import Action, consequences_for
from probes.model import Report, Status

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


async def _fix_block(rt: Runtime, proposal: Proposal) -> tuple[dict[str, Any] | None, str | None]:
    if rt.runner is None:
        return None, "fixes are not enabled"
    try:
        plan = await rt.runner.plan(proposal.node, proposal.fix, dict(proposal.params))
    except Exception as exc:  # an unplannable fix still shows the finding, with the reason
        log.warning("fix_plan_failed", node=proposal.node, fix=proposal.fix, error=str(exc))
        return None, f"fix {proposal.fix} cannot be planned: {exc}"
    button = bk.fix_button(proposal, rt.settings.secret(), plan.summary)
    return button, None if button else "its parameters are too long for a button"


async def _action_button(rt: Runtime, action: Action, channel: str, parent_ts: str,
                         requested_by: str) -> tuple[dict[str, Any] | None, str | None]:
    if action.fix is None:
        return None, None
    proposal = Proposal(node=action.node, fix=action.fix.id, params=dict(action.fix.params),
                        proposed_at=int(time.time()), requested_by=requested_by, channel=channel,
                        thread_ts=parent_ts)
    return await _fix_block(rt, proposal)


async def post_plan(rt: Runtime, channel: str, parent_ts: str, run: Sequence[Report], requested_by: str,
                    here: str | None) -> tuple[str | None, int]:
    """The things to do of a run (one reply and one button each), then its consequences in one reply.
    Returns the name the full-evidence file is announced under (None: nothing to attach; the caller
    uploads it last, `upload_evidence`) and how many findings could not be posted."""
    todo, others = msg.plan_split(run, here) if here is not None else (msg.plan(run), [])
    evidence_name = evidence_filename(here) if todo else None
    missing = 0
    for number, action in enumerate(todo, 1):
        button, note = await _action_button(rt, action, channel, parent_ts, requested_by)
        blocks = bk.action(action, number, len(todo), button, note,
                           msg.evidence_note(evidence_name) if evidence_name else None)
        text = f"{action.node}: {action.title} — {action.causes[0].summary}"
        if not await post_reply(rt, channel, parent_ts, None, text, blocks):
            missing += len(action.causes)
    blocks = bk.consequences(run, here, todo)
    if blocks:
        count = len(consequences_for(run, here, todo))
        if not await post_reply(rt, channel, parent_ts, None, msg.consequences_heading(count), blocks):
            missing += count
    also = msg.elsewhere(others, here) if here is not None else None
    if also and not await post_reply(rt, channel, parent_ts, None, also, [bk.context(also)]):
        missing += 1
    return evidence_name, missing


def evidence_filename(node: str | None) -> str:
    return f"netcheck-{node or 'all'}-evidence.txt"


def evidence_file(run: Sequence[Report]) -> str:
    """Every problem's full command output, node by node (what the replies show only the proof of)."""
    parts = []
    for report in run:
        for f in report.findings:
            if f.status.is_problem:
                head = f"== {report.node} / {f.probe}: {f.status.value} — {f.summary}"
                parts.append(f"{head}\n{f.evidence or '(no output)'}\n")
    return "\n".join(parts)


async def upload_evidence(rt: Runtime, channel: str, parent_ts: str, run: Sequence[Report],
                          filename: str) -> None:
    """The full evidence as a text file in the thread (files.getUploadURLExternal, the upload,
    files.completeUploadExternal: docs/slack.md, "File uploads"); a failure is logged, counted and
    said in the thread, never raised."""
    content = evidence_file(run)
    try:
        await rt.client.files_upload_v2(channel=channel, thread_ts=parent_ts, content=content,
                                        filename=filename, title=filename)
    except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
        error = (exc.response.get("error") if isinstance(exc, SlackApiError)
                 else f"{type(exc).__name__}: {exc}")
        _undelivered("files_upload_v2", {"channel": channel}, None, error=error, status=None)
        await post_reply(rt, channel, parent_ts, None, "full evidence not attached",
                         [bk.context(msg.evidence_not_attached(str(error)))])


async def post_findings(rt: Runtime, channel: str, parent_ts: str, report: Report, requested_by: str) -> int:
    """Thread replies for one node's check: its plan (with the peers it looked at), the ok ones folded,
    the full evidence. Returns how many findings could not be posted."""
    run = [report, *report.peers]
    evidence_name, missing = await post_plan(rt, channel, parent_ts, run, requested_by, report.node)
    fine = [f for f in report.findings if f.status in (Status.OK, Status.SKIP)]
    if fine and not await post_reply(rt, channel, parent_ts, report, msg.ok_folded(fine), bk.ok_folded(fine)):
        missing += len(fine)
    if evidence_name:
        await upload_evidence(rt, channel, parent_ts, run, evidence_name)
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


async def run_join(rt: Runtime, node: str, channel: str, requested_by: str, parent_ts: str) -> None:
    """A joining node: check it, compare it with the reference field by field, post the diff, the
    things to do and the consequences, and make the parent the summary (verdict plus differences)."""
    rt.running[node] = (channel, parent_ts)
    try:
        async with rt.check_slots:
            comparison = await rt.engine.compare(node)
    except Exception as exc:  # shown in the channel rather than lost
        log.exception("join_check_failed", node=node, channel=channel)
        await update_parent(rt, channel, parent_ts, msg.check_failed(node, str(exc)), None)
        return
    finally:
        rt.running.pop(node, None)
    report = comparison.report
    log.info("join_checked", node=node, channel=channel, verdict=report.verdict.value,
             reference=comparison.diff.reference if comparison.diff else None,
             differences=len(comparison.diff.differences) if comparison.diff else None)
    missing = 0
    if comparison.diff is not None and not await post_reply(
            rt, channel, parent_ts, report, comparison.diff.sentence(), bk.node_diff(comparison.diff)):
        missing += len(comparison.diff.differences)
    missing += await post_findings(rt, channel, parent_ts, report, requested_by)
    lost = msg.findings_undelivered(report.node, missing, len(report.findings)) if missing else None
    await update_parent(rt, channel, parent_ts, msg.join_summary(report, comparison.diff), report,
                        msg.checked_note(report, requested_by), lost)
