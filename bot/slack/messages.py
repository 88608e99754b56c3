"""Every user-facing sentence of the Slack bot, as pure functions (no Slack calls here).

Used by `blocks.py` (message layout), `threads.py`, `nodewatch.py`, `standby.py` and the listeners in
`commands.py`/`actions.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

from probes.diff import NodeDiff
from probes.graph import Action, actions, role, split_for
from probes.model import AccessPath, Finding, Report, Status
from probes.registry import default_registry

STATUS_EMOJI = {
    Status.OK: ":white_check_mark:",
    Status.SKIP: ":fast_forward:",
    Status.WARN: ":warning:",
    Status.ERROR: ":boom:",
    Status.FAIL: ":x:",
}

USAGE = (
    "*Usage*\n"
    "• `/netcheck NODE`: check why pods on NODE cannot reach the API server\n"
    "• `/netcheck all`: check every node, one line each\n"
    "• `/netcheck help`: this text"
)


def escape(text: str) -> str:
    """mrkdwn escaping: only &, < and > (Slack's rule); nothing else is encoded."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def user(user_id: str) -> str:
    return f"<@{user_id}>"


def running(node: str, probes: int, asked_by: str) -> str:
    return f"netcheck {escape(node)} — running {probes} probes… (asked by {user(asked_by)})"


def running_all(nodes: int, asked_by: str) -> str:
    return f"netcheck all — checking {nodes} nodes… (asked by {user(asked_by)})"


def checked_note(report: Report, asked_by: str) -> str:
    who = user(asked_by) if asked_by.startswith(("U", "W")) else escape(asked_by)
    return f"asked by {who} · {len(report.findings)} probes in {report.duration_s:.1f} s{access_note(report)}"


def access_note(report: Report) -> str:
    """' · via host pod' / ' · via SSH': which path reached the node's host side."""
    if report.access is None:
        return ""
    return f" · via {'host pod' if report.access.path == AccessPath.HOST_POD else 'SSH'}"


def problems(report: Report) -> list[Finding]:
    """Non-ok findings, causes first then what they explain (the engine's cause → consequence order)."""
    found = [f for f in report.findings if f.status.is_problem]
    return sorted(found, key=lambda f: f.explained)


def plan(run: Sequence[Report], here: str | None = None) -> list[Action]:
    """The things to do for a run (one per fix), most problems resolved first; with `here` (a node's
    check), only those on `here` or behind one of its problems (`plan_split` gives the rest too)."""
    todo = actions(run, default_registry)
    return todo if here is None else split_for(todo, here)[0]


def plan_split(run: Sequence[Report], here: str) -> tuple[list[Action], list[Action]]:
    """A node's things to do, and the actions for the problems its compared-with peers have of
    their own (`elsewhere` says those in one line)."""
    return split_for(actions(run, default_registry), here)


def elsewhere(others: Sequence[Action], here: str) -> str | None:
    """The peers' own problems (`plan_split`'s second part) in a line that names them and where
    their own thread comes from, or None."""
    if not others:
        return None
    named = ", ".join(f"{escape(a.node)} `{escape(a.title)}`" for a in others)
    nodes = sorted({a.node for a in others})
    ask = " or ".join(f"`/netcheck {escape(n)}`" for n in nodes)
    return (f"Also seen on the nodes this check compared with, and behind no problem of "
            f"{escape(here)}'s: {named}. {ask} gives its own thread.")


def verdict(report: Report, run: Sequence[Report] | None = None) -> str:
    """'NODE: 2 problems — act on masquerade: no MASQUERADE on wlp59s0 (resolves pod-api)', 'NODE: 1
    problem — consequence of ip-forward on worker1', or 'NODE: all N probes ok'. `run`: every report
    of the run (default: the node and the peers it looked at), for causes on other nodes."""
    found = problems(report)
    if not found:
        counted = [f for f in report.findings if f.status != Status.SKIP]
        return f"{report.node}: all {len(counted)} probes ok"
    noun = "problem" if len(found) == 1 else "problems"
    head = f"{report.node}: {len(found)} {noun} — "
    own = [a for a in plan(run if run is not None else [report, *report.peers]) if a.node == report.node]
    if own:
        first = own[0]
        resolved = first.resolved_labels(report.node)
        more = f" (resolves {', '.join(resolved)})" if resolved else ""
        others = f"; {len(own) - 1} more thing{'s' if len(own) > 2 else ''} to do" if len(own) > 1 else ""
        return f"{head}act on {first.title}: {first.causes[0].summary}{more}{others}"
    remote = sorted({role(f, report.node) for f in found if f.explained})
    return head + "; ".join(remote)


def verdict_line(report: Report, run: Sequence[Report] | None = None) -> str:
    return f"{STATUS_EMOJI[report.verdict]} {escape(verdict(report, run))}"


def headline(run: Sequence[Report]) -> str:
    """The parent of a multi-node run: the node and probe to act on first."""
    todo = plan(run)
    if not todo:
        return f"all {len(run)} nodes ok"
    first = todo[0]
    problems_ = first.resolves()
    nodes = {first.node, *(p.node for p in problems_)}
    more = (f" (resolves {len(problems_)} problem{'s' if len(problems_) != 1 else ''} on {len(nodes)} "
            f"node{'s' if len(nodes) != 1 else ''})") if problems_ else ""
    rest = f"; {len(todo)} things to do in all" if len(todo) > 1 else ""
    return f"act first on {first.node}: {first.title}{more}{rest}"


def action_title(action: Action, number: int, total: int) -> str:
    """'1 thing to do on worker2: `masquerade` — resolves pod-api, return-path, pod-dns'."""
    where = (f"1 thing to do on {escape(action.node)}" if total == 1
             else f"Thing {number} of {total}, on {escape(action.node)}")
    resolved = action.resolved_labels()
    tail = f" — resolves {escape(', '.join(resolved))}" if resolved else ""
    return f":wrench: *{where}: `{escape(action.title)}`*{tail}"


def scope_text(finding: Finding) -> str:
    if finding.scope is None:
        return ""
    return escape(finding.scope + (f" — {finding.comparison}" if finding.comparison else ""))


def finding_title(finding: Finding, here: str | None = None) -> str:
    tag = role(finding, here or "")
    scope = scope_text(finding)
    return (
        f"{STATUS_EMOJI[finding.status]} *{escape(finding.summary)}*\n"
        f"_{finding.probe} · {finding.layer.value}{' · ' + escape(tag) if tag else ''}_"
        + (f"\n_{scope}_" if scope else "")
    )


def consequence_line(node: str, finding: Finding, here: str | None) -> str:
    where = "" if node == here else f"{escape(node)}/"
    scope = scope_text(finding)
    return (f"{STATUS_EMOJI[finding.status]} `{where}{finding.probe}` {escape(finding.summary)} — "
            f"_{escape(role(finding, node))}_" + (f" ({scope})" if scope else ""))


def consequences_heading(count: int) -> str:
    noun = "consequence" if count == 1 else "consequences"
    return f":link: *{count} {noun}* (no fix of their own: the cause's fix clears them)"


def more_causes(probes: list[str]) -> str:
    return f"_… and {len(probes)} more cause(s) this fix addresses: {escape(', '.join(probes))}_"


def more_lines(count: int) -> str:
    return f"_… and {count} more (the terminal shows all: `netcheck check --all`)_"


def evidence_note(filename: str) -> str:
    return f"Full evidence of every problem: the file `{escape(filename)}` in this thread."


def evidence_not_attached(error: str) -> str:
    return f"_Full evidence could not be attached ({escape(error)}); `netcheck check --verbose` prints it._"


def diff_heading(diff: NodeDiff) -> str:
    if not diff.differences:
        return (f":scales: {escape(diff.node)} matches the reference {escape(diff.reference)} "
                "in every field measured")
    return f":scales: *{escape(diff.node)} differs from {escape(diff.reference)} in:*"


def diff_lines(diff: NodeDiff) -> list[str]:
    return [f"• {escape(line)}" for line in diff.lines()]


def diff_footer(diff: NodeDiff) -> str:
    parts = []
    if diff.same:
        parts.append("same: " + ", ".join(diff.same))
    if diff.unmeasured:
        parts.append("not measured on both: " + ", ".join(diff.unmeasured))
    return escape(" · ".join(parts))


def no_reference(node: str) -> str:
    return f"_No healthy node to compare {escape(node)} with (set `probes.reference_node`)._"


def ok_folded(findings: list[Finding]) -> str:
    names = ", ".join(f"`{f.probe}`" for f in findings)
    return f"{STATUS_EMOJI[Status.OK]} {len(findings)} probes ok: {names}"


def fix_button(fix_id: str) -> str:
    return f"Apply fix: {fix_id}"


def confirm_title(node: str) -> str:
    return f"Apply a fix on {node}?"


def applying(approver: str) -> str:
    return f":hourglass_flowing_sand: applying… approved by {user(approver)}"


PROGRESS_LINES_SHOWN = 8
"""Progress lines a fix's reply shows while it runs (the latest ones; each update replaces the text)."""


def fix_progress(fix_id: str, node: str, approver: str, lines: list[str]) -> str:
    """The fix's thread reply while it runs: who approved it and how far it got."""
    head = (f":hourglass_flowing_sand: fix `{fix_id}` on {escape(node)}: running "
            f"(approved by {user(approver)})")
    shown = lines[-PROGRESS_LINES_SHOWN:]
    more = [f"… {len(lines) - len(shown)} earlier steps"] if len(lines) > len(shown) else []
    return "\n".join([head, *more, *(f"• {escape(line)}" for line in shown)])


def verification_line(finding: Finding) -> str:
    return f"{STATUS_EMOJI[finding.status]} `{finding.probe}` {finding.status.value}: {finding.summary}"


def outcome(fix_id: str, node: str, result: str, message: str, approver: str,
            verification: list[str] | None = None) -> str:
    icons = {"applied": ":white_check_mark:", "nothing-to-do": ":information_source:"}
    icon = icons.get(result, ":x:")
    head = f"{icon} fix `{fix_id}` on {escape(node)}: *{result}* (approved by {user(approver)})"
    checked = [escape(line) for line in verification or []]
    return "\n".join([head, escape(message), *checked])


def no_button(reason: str) -> str:
    return f"_No fix button: {escape(reason)}_"


# Refusals and notices (ephemeral)
def unknown_node(node: str, closest: str) -> str:
    return f"Unknown node `{escape(node)}`. {escape(closest)}"


def already_running(node: str, link: str) -> str:
    return f"A check of {escape(node)} is already running: <{link}|see its thread>."


def channel_not_allowed() -> str:
    return "`/netcheck` is not enabled in this channel."


def not_approver(approver_hint: str) -> str:
    return f"You are not an approver of netcheck fixes; ask {approver_hint}. Nothing was changed."


def self_approval() -> str:
    return "You asked for this check, so another approver must approve its fix. Nothing was changed."


def expired(node: str) -> str:
    return f"This fix proposal has expired; re-run `/netcheck {escape(node)}`. Nothing was changed."


def invalid_input(error: str) -> str:
    """A refused slash-command argument: the validator's one line, escaped, and the usage."""
    return f"{escape(error)}. Nothing was run.\n{USAGE}"


def malformed_command() -> str:
    return "This command arrived without a valid user or channel; nothing was run."


def tampered() -> str:
    return "This button's value failed verification; re-run the check. Nothing was changed."


def already_applied(fix_id: str) -> str:
    return f"Fix `{fix_id}` from this proposal was already approved; it runs only once."


def check_failed(node: str, error: str) -> str:
    return f":boom: netcheck {escape(node)} failed: {escape(error)}"


NAMES_SHOWN = 20
"""Node names listed in one line before it ends in an ellipsis (a context block holds 3000 characters)."""


def findings_undelivered(node: str, missing: int, total: int) -> str:
    """Under the verdict when thread replies could not be posted (Slack kept failing)."""
    return (f":warning: {missing} of {total} findings could not be posted to this thread (Slack errors); "
            f"get the full report with `netcheck check {escape(node)}`.")


def nodes_undelivered(nodes: list[str]) -> str:
    names = ", ".join(escape(n) for n in nodes[:NAMES_SHOWN]) + (" …" if len(nodes) > NAMES_SHOWN else "")
    return (f":warning: the details of {names} could not be posted to this thread (Slack errors); "
            "get them with `netcheck check NODE`.")


def outcome_undelivered(text: str) -> str:
    """The fix outcome, on the parent, when its thread reply could not be posted."""
    return f":warning: the fix outcome could not be posted to this thread: {text}"


def failing_over_command(command: str) -> str:
    """A standby replica's answer to a slash command (the leader is being replaced)."""
    return (f"`{escape(command)}` was not run: netcheck is failing over to another replica. "
            "Try again in a few seconds.")


def failing_over_click() -> str:
    return ("Your click was not processed: netcheck is failing over to another replica. Click again in a few "
            "seconds. Nothing was changed.")


def node_joined(node: str) -> str:
    return f"New node {escape(node)} is Ready — checking it and comparing it with a healthy node…"


def join_summary(report: Report, diff: NodeDiff | None) -> str:
    """The node-join parent: the verdict and the differences against the reference node."""
    line = verdict_line(report)
    if diff is None:
        return f"{line}\n{no_reference(report.node)}"
    return f"{line}\n:scales: {escape(diff.sentence())}"
