"""Pure Block Kit builders for the bot's messages, kept inside Slack's limits.

Limits: 50 blocks per message, section text 3000, header 150, button text 75, button value 2000,
confirm title 100 / text 300. Long evidence keeps its head and tail with a note (probes.model.trim).
Called by `commands.py`, `actions.py` and `nodewatch.py`; everything here is a pure function.
"""

from __future__ import annotations

from typing import Any

from bot.slack import messages as msg
from bot.slack.approvals import VALUE_LIMIT, Proposal, encode
from probes.model import Finding, Report, Status, trim

Block = dict[str, Any]

MAX_BLOCKS = 50
SECTION_LIMIT = 3000
HEADER_LIMIT = 150
BUTTON_TEXT_LIMIT = 75
CONFIRM_TITLE_LIMIT = 100
CONFIRM_TEXT_LIMIT = 300
ACTION_ID = "apply_fix"
_FENCE = "```"


def clip(text: str, limit: int) -> str:
    """Cut plain text to `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int) -> dict[str, str]:
    return {"type": "plain_text", "text": clip(text, limit)}


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}}


def sections(text: str) -> list[Block]:
    """Long text as consecutive sections, split at line ends, within the block limit."""
    chunks: list[str] = []
    for line in text.splitlines():
        if chunks and len(chunks[-1]) + 1 + len(line) <= SECTION_LIMIT:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    blocks = [section(chunk) for chunk in chunks or [""]]
    return blocks[:MAX_BLOCKS]


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_LIMIT)}}


def evidence(text: str) -> Block:
    """Evidence in a code block; escaping may grow the text, so trim until it fits."""
    target = SECTION_LIMIT - 2 * len(_FENCE) - 2
    budget = target
    body = msg.escape(trim(text, budget))
    while len(body) > target:
        budget = max(200, budget * target // len(body) - 20)
        body = msg.escape(trim(text, budget))
    return section(f"{_FENCE}\n{body}\n{_FENCE}")


def fix_button(proposal: Proposal, secret: str, plan_summary: str) -> Block | None:
    value = encode(proposal, secret)
    if len(value) > VALUE_LIMIT:
        return None
    return {
        "type": "actions",
        "block_id": f"fix-{proposal.key}",
        "elements": [
            {
                "type": "button",
                "action_id": ACTION_ID,
                "text": {"type": "plain_text", "text": clip(msg.fix_button(proposal.f), BUTTON_TEXT_LIMIT)},
                "style": "primary",
                "value": value,
                "confirm": {
                    "title": plain(msg.confirm_title(proposal.n), CONFIRM_TITLE_LIMIT),
                    "text": plain(plain_summary(plan_summary), CONFIRM_TEXT_LIMIT),
                    "confirm": {"type": "plain_text", "text": "Apply"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                },
            }
        ],
    }


def plain_summary(summary: str) -> str:
    return " ".join(summary.split()) or "Apply the proposed fix."


def parent(text: str) -> list[Block]:
    return [section(text)]


def finding(f: Finding, button: Block | None, button_note: str | None = None) -> list[Block]:
    blocks = [section(msg.finding_title(f))]
    if f.evidence:
        blocks.append(evidence(f.evidence))
    if f.remediation:
        blocks.append(section("*What to do*\n" + msg.escape(f.remediation)))
    if button is not None:
        blocks.append(button)
    elif button_note:
        blocks.append(context(msg.no_button(button_note)))
    return blocks


def ok_folded(findings: list[Finding]) -> list[Block]:
    return [section(msg.ok_folded(findings))]


def node_summary(report: Report) -> list[Block]:
    """One node's compact reply for `/netcheck all`: verdict plus one line per problem."""
    lines = [msg.verdict_line(report)]
    for f in msg.problems(report):
        lines.append(f"{msg.STATUS_EMOJI[f.status]} {msg.escape(f.summary)} (`{f.probe}`)")
    return [section("\n".join(lines))]


def summary_all(title: str, reports: list[Report]) -> list[Block]:
    """Parent of `/netcheck all`: a line per node, split over sections, within the block limit."""
    blocks: list[Block] = [section(title)]
    chunk: list[str] = []
    for report in reports:
        line = msg.verdict_line(report)
        if sum(len(x) + 1 for x in chunk) + len(line) > SECTION_LIMIT:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section("\n".join(chunk)))
    if len(blocks) > MAX_BLOCKS:
        blocks = blocks[: MAX_BLOCKS - 1] + [context(f"… and {len(blocks) - MAX_BLOCKS + 1} more sections")]
    return blocks


def replace_action(blocks: list[Block], block_id: str, replacement: Block) -> list[Block]:
    """The message's blocks with the clicked actions block swapped for `replacement`."""
    return [replacement if b.get("block_id") == block_id else b for b in blocks]


def status_is_problem(status: Status) -> bool:
    return status.is_problem
