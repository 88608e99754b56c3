"""The App Home tab's view, built from the fleet state and kept inside Slack's limits for a Home view
(100 blocks, docs/slack.md#app-home; a section's text 3000 characters).

One section per node (problems first, then nodes not checked yet, then healthy ones) with its
last verdict, cause and age and a "Re-check" button; a fleet too big for that gets its first nodes
that way and the rest folded, several per section, then a count of what did not fit. Below: the
last regressions with a link to their threads. Pure: `home.py` publishes what this returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.fleet.state import FleetState, NodeRecord
from bot.slack import blocks as bk
from bot.slack import fleet_text

MAX_HOME_BLOCKS = 100
RECHECK_ACTION = "home_recheck"
FIXED_BLOCKS = 8
"""Blocks outside the node list: header, watch line, dividers, regressions header and sections, note."""
FOLDED_RESERVE = 10
"""Of the node budget, blocks kept for folded lines when the fleet does not fit a section per node."""
REGRESSION_SECTIONS = 2


@dataclass(frozen=True)
class HomeContext:
    """What the view says about the watch, and where a re-check posts its thread (None: no buttons)."""

    interval: float | None
    probes: list[str] | None
    watch_channel: str | None
    recheck_channel: str | None


def _order(records: list[NodeRecord], unchecked: list[str]) -> list[NodeRecord | str]:
    problems = sorted((r for r in records if r.report.verdict.is_problem), key=lambda r: r.node)
    healthy = sorted((r for r in records if not r.report.verdict.is_problem), key=lambda r: r.node)
    return [*problems, *sorted(unchecked), *healthy]


def _node_section(item: NodeRecord | str, index: int, now: float, buttons: bool) -> bk.Block:
    if isinstance(item, str):
        node, text = item, fleet_text.home_unchecked_line(item)
    else:
        node, text = item.node, fleet_text.home_node_line(item, now)
    block = bk.section(text)
    block["block_id"] = f"home-node-{index}"
    if buttons:
        block["accessory"] = {
            "type": "button", "action_id": RECHECK_ACTION, "value": node,
            "text": bk.plain(fleet_text.home_recheck_button(), bk.BUTTON_TEXT_LIMIT),
        }
    return block


def _folded(items: list[NodeRecord | str], now: float, budget: int) -> tuple[list[bk.Block], int]:
    """Sections of one short line per node, at most `budget` of them; and how many nodes did not fit."""
    blocks: list[bk.Block] = []
    lines: list[str] = []
    shown = 0
    for item in items:
        line = (fleet_text.home_unchecked_line(item) if isinstance(item, str)
                else fleet_text.home_folded_line(item, now))
        if lines and sum(len(x) + 1 for x in lines) + len(line) > bk.SECTION_LIMIT:
            if len(blocks) + 1 >= budget:
                break
            blocks.append(bk.section("\n".join(lines)))
            lines = []
        lines.append(line)
        shown += 1
    if lines:
        blocks.append(bk.section("\n".join(lines)))
    return blocks, len(items) - shown


def build(fleet: FleetState, known: list[str], context: HomeContext, now: float,
          links: dict[tuple[str, str], str] | None = None) -> dict[str, object]:
    """The Home view: `known` are the cluster's node names (some may not be checked yet)."""
    links = links or {}
    records = [fleet.nodes[name] for name in sorted(fleet.nodes)]
    unchecked = [name for name in known if name not in fleet.nodes]
    items = _order(records, unchecked)
    last_sweep = None if fleet.last_sweep_at is None else now - fleet.last_sweep_at
    blocks: list[bk.Block] = [
        bk.header(fleet_text.HOME_TITLE),
        bk.context(fleet_text.home_watch_line(context.interval, context.probes, context.watch_channel,
                                              fleet.sweeps, last_sweep)),
        {"type": "divider"},
    ]
    buttons = context.recheck_channel is not None
    budget = MAX_HOME_BLOCKS - FIXED_BLOCKS
    one_each = items if len(items) <= budget else items[: budget - FOLDED_RESERVE]
    blocks += [_node_section(item, i, now, buttons) for i, item in enumerate(one_each)]
    rest = items[len(one_each):]
    if rest:
        folded, left = _folded(rest, now, FOLDED_RESERVE - 1)
        blocks += folded
        if left:
            blocks.append(bk.context(fleet_text.home_more_nodes(left)))
    if not buttons:
        blocks.append(bk.context(fleet_text.home_no_channel()))
    blocks += [{"type": "divider"}, bk.header("Last regressions")]
    lines = [fleet_text.home_regression_line(r, now, links.get(r.thread) if r.thread else None)
             for r in fleet.regressions] or [fleet_text.home_no_regressions()]
    chunk: list[str] = []
    sections = 0
    for line in lines:
        if chunk and sum(len(x) + 1 for x in chunk) + len(line) > bk.SECTION_LIMIT:
            if sections + 1 >= REGRESSION_SECTIONS:
                break
            blocks.append(bk.section("\n".join(chunk)))
            sections, chunk = sections + 1, []
        chunk.append(line)
    if chunk:
        blocks.append(bk.section("\n".join(chunk)))
    return {"type": "home", "callback_id": "netcheck-home", "blocks": blocks}
