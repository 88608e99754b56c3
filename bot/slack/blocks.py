"""Pure Block Kit builders for the bot's messages, kept inside Slack's limits.

Limits: 50 blocks per message, section text 3000, header 150, button text 75, button value 2000,
confirm title 100 / text 300. Long evidence keeps its head and tail with a note (probes.model.trim).
Used by `threads.py`, `commands.py` and `actions.py`; everything here is a pure function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.slack import messages as msg
from bot.slack.approvals import VALUE_LIMIT, Proposal, encode
from probes.diff import NodeDiff
from probes.graph import Action, consequences_for, role
from probes.model import Finding, Report, trim

Block = dict[str, Any]

MAX_BLOCKS = 50
SECTION_LIMIT = 3000
HEADER_LIMIT = 150
BUTTON_TEXT_LIMIT = 75
CONFIRM_TITLE_LIMIT = 100
CONFIRM_TEXT_LIMIT = 300
ACTION_ID = "apply_fix"
MESSAGE_TEXT_BUDGET = 10000
"""Characters of block text per message: Slack refuses roughly 12–13k in all (msg_blocks_too_long)
even when every block is within its own limit (docs/slack.md, "Block Kit and message limits")."""
_FENCE = "```"
_MIN_EVIDENCE = 300
_TRIM_FLOOR = 120  # `trim` keeps a head, a tail and its note: below this it has nothing left to cut


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


def evidence(text: str, limit: int = SECTION_LIMIT) -> Block:
    """Evidence in a code block; escaping may grow the text, so trim until it fits."""
    target = min(limit, SECTION_LIMIT) - 2 * len(_FENCE) - 2
    budget = target
    body = msg.escape(trim(text, budget))
    while len(body) > target and budget > _TRIM_FLOOR:
        # strictly smaller each round: escaping can grow text fivefold (&amp;)
        budget = max(_TRIM_FLOOR, min(budget - 1, budget * target // len(body) - 20))
        body = msg.escape(trim(text, budget))
    if len(body) > target:  # even the shortest trim escapes too long: cut before a whole entity
        cut = body.rfind("&", 0, target - 1)
        body = body[: cut if cut > target - 6 else target - 1] + "…"
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
                "text": {"type": "plain_text", "text": clip(msg.fix_button(proposal.fix), BUTTON_TEXT_LIMIT)},
                "style": "primary",
                "value": value,
                "confirm": {
                    "title": plain(msg.confirm_title(proposal.node), CONFIRM_TITLE_LIMIT),
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


def what_to_do(remediation: str, button: Block | None, button_note: str | None) -> list[Block]:
    """The remediation, then the fix button, or the reason there is none."""
    blocks = [section("*What to do*\n" + msg.escape(remediation))] if remediation else []
    if button is not None:
        blocks.append(button)
    elif button_note:
        blocks.append(context(msg.no_button(button_note)))
    return blocks


def finding(f: Finding, button: Block | None, button_note: str | None = None) -> list[Block]:
    blocks = [section(msg.finding_title(f))]
    if f.proof_or_evidence:
        blocks.append(evidence(f.proof_or_evidence))
    return blocks + what_to_do(f.remediation, button, button_note)


def _text_size(blocks: list[Block]) -> int:
    size = 0
    for block in blocks:
        size += len((block.get("text") or {}).get("text", ""))
        size += sum(len(e.get("text", "")) for e in block.get("elements", []) if block["type"] == "context")
    return size


def action(act: Action, number: int, total: int, button: Block | None, button_note: str | None,
           evidence_note: str | None = None) -> list[Block]:
    """One thing to do: its title (what it resolves), each cause with the lines that prove it, one
    remediation and one button — within the message's text budget (evidence shrinks first, then
    further causes sharing the fix are only named)."""
    head = [section(msg.action_title(act, number, total))]
    tail = what_to_do(act.remediation, button, button_note)
    if evidence_note:
        tail.append(context(evidence_note))
    budget = MESSAGE_TEXT_BUDGET - _text_size(head) - _text_size(tail)
    shown: list[Block] = []
    left = list(act.causes[: (MAX_BLOCKS - 6) // 2])
    while left:
        cause = left.pop(0)
        title = section(msg.finding_title(cause, act.node))
        share = (budget - _text_size(shown)) // (len(left) + 1) - _text_size([title])
        if share < _MIN_EVIDENCE and shown:
            left.insert(0, cause)
            break
        shown.append(title)
        if cause.proof_or_evidence:
            shown.append(evidence(cause.proof_or_evidence, max(share, _MIN_EVIDENCE)))
    unnamed = left + act.causes[(MAX_BLOCKS - 6) // 2:]
    if unnamed:
        shown.append(context(msg.more_causes([c.probe for c in unnamed])))
    return head + shown + tail


def _chunked(head: str, lines: Sequence[str]) -> list[Block]:
    """A heading and lines split over sections, within the text, block and message limits."""
    blocks: list[Block] = [section(head)]
    chunk: list[str] = []
    used = len(head)
    for shown, line in enumerate(lines):
        line = clip(line, SECTION_LIMIT)
        if used + len(line) > MESSAGE_TEXT_BUDGET or len(blocks) >= MAX_BLOCKS - 2:
            if chunk:
                blocks.append(section("\n".join(chunk)))
            blocks.append(context(msg.more_lines(len(lines) - shown)))
            return blocks
        if chunk and sum(len(x) + 1 for x in chunk) + len(line) > SECTION_LIMIT:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
        used += len(line) + 1
    if chunk:
        blocks.append(section("\n".join(chunk)))
    return blocks


def consequences(run: Sequence[Report], here: str | None, todo: Sequence[Action] = ()) -> list[Block]:
    """The consequence problems (`probes.graph.consequences_for`), one line each, naming its cause."""
    lines = [msg.consequence_line(node, f, here) for node, f in consequences_for(run, here, todo)]
    return _chunked(msg.consequences_heading(len(lines)), lines) if lines else []


def node_diff(diff: NodeDiff) -> list[Block]:
    blocks = _chunked(msg.diff_heading(diff), msg.diff_lines(diff)) if diff.differences \
        else [section(msg.diff_heading(diff))]
    footer = msg.diff_footer(diff)
    return blocks + ([context(footer)] if footer else [])


def ok_folded(findings: list[Finding]) -> list[Block]:
    return [section(msg.ok_folded(findings))]


def node_summary(report: Report, run: Sequence[Report] | None = None) -> list[Block]:
    """One node's compact lines: verdict plus one line per problem with its role."""
    lines = [msg.verdict_line(report, run)]
    for f in msg.problems(report):
        tag = msg.escape(role(f, report.node))
        lines.append(f"{msg.STATUS_EMOJI[f.status]} {msg.escape(f.summary)} (`{f.probe}`, {tag})")
    return [section("\n".join(lines))]


def summary_all(title: str, reports: list[Report]) -> list[Block]:
    """Parent of `/netcheck all`: what to act on first, then a line per node, within the limits."""
    return _chunked(title, [msg.verdict_line(r, reports) for r in reports])


def replace_action(blocks: list[Block], block_id: str, replacement: Block) -> list[Block]:
    """The message's blocks with the clicked actions block swapped for `replacement`."""
    return [replacement if b.get("block_id") == block_id else b for b in blocks]
