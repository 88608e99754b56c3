"""The layer picture of a check, uploaded into the check's thread (docs/slack.md#file-uploads).

`start(rt, report)` begins drawing at once (in a worker thread, bot/picture) while the findings and
the verdict are posted, so neither waits for the picture; `upload(...)` then shares it into the
thread with Slack's external upload flow (`files_upload_v2`: files.getUploadURLExternal, POST of the
bytes, files.completeUploadExternal with `channel_id` and the parent's `thread_ts`). A failed upload
(no `files:write` scope, the bot not a member of a private channel) is logged and the check goes on:
the findings are already in the thread. Used by `threads.post_node_check` and the watch's regression
threads; off with `slack.pictures: false`.
"""

from __future__ import annotations

import asyncio

import structlog
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.picture import box_shades, cause_marks, node_values, render_png_async
from bot.slack.runtime import Runtime
from probes.model import Report

log = structlog.get_logger("netcheck.slack.pictures")

ALT_TEXT_LIMIT = 1000
"""Slack refuses longer alt text (`alt_txt_too_large`)."""


def filename(report: Report) -> str:
    return f"netcheck-{report.node}-{report.started_at.strftime('%Y%m%dT%H%M%SZ')}.png"


def alt_text(report: Report) -> str:
    """What the picture shows, in words (screen readers; clients that do not show images)."""
    shades = box_shades(report)
    by_shade: dict[str, list[str]] = {}
    for box, shade in shades.items():
        by_shade.setdefault(shade.value, []).append(box)
    parts = [f"{shade}: {', '.join(boxes)}" for shade, boxes in by_shade.items()]
    causes = "; ".join(f"cause {m.label}" for m in cause_marks(report))
    text = f"Layer picture of {report.node}, from the pod to the API server. " + "; ".join(parts)
    if causes:
        text += f". {causes}"
    return text[: ALT_TEXT_LIMIT - 1] + "…" if len(text) > ALT_TEXT_LIMIT else text


async def _draw(rt: Runtime, report: Report) -> bytes:
    try:
        facts = await rt.engine.facts()  # the facts of the check just run (cached by the engine)
    except Exception as exc:  # values are a nicety; the colours come from the report alone
        log.warning("picture_facts_failed", node=report.node, error=str(exc))
        facts = None
    return await render_png_async(report, node_values(report, facts))


def start(rt: Runtime, report: Report) -> asyncio.Task[bytes] | None:
    """Begin drawing the report's picture; None when pictures are off."""
    if not rt.settings.pictures:
        return None
    return asyncio.get_running_loop().create_task(_draw(rt, report), name=f"picture-{report.node}")


async def upload(rt: Runtime, channel: str, parent_ts: str, report: Report,
                 drawing: asyncio.Task[bytes] | None) -> str | None:
    """Share the drawn picture into the thread; the file id, or None when off or failed (logged)."""
    if drawing is None:
        return None
    try:
        png = await drawing
        answer = await rt.client.files_upload_v2(
            content=png, filename=filename(report), title=f"{report.node}: layer picture",
            alt_txt=alt_text(report), channel=channel, thread_ts=parent_ts,
        )
    except (SlackClientError, OSError, TimeoutError) as exc:  # SlackApiError is a SlackClientError
        error = exc.response.get("error") if isinstance(exc, SlackApiError) else str(exc)
        log.warning("picture_upload_failed", node=report.node, channel=channel, error=error)
        return None
    except Exception:  # drawing failed: a bug to see in the log, not a reason to lose the check
        log.exception("picture_failed", node=report.node)
        return None
    file_id = str((answer.get("file") or {}).get("id", ""))
    log.info("picture_uploaded", node=report.node, channel=channel, thread_ts=parent_ts, file=file_id,
             bytes=len(png))
    return file_id
