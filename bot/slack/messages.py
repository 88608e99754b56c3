"""Every user-facing sentence of the Slack bot, as pure functions (no Slack calls here).

Called by `blocks.py` (message layout) and by the listeners in `commands.py`/`actions.py`.
"""

from __future__ import annotations

from probes.model import AccessPath, Finding, Report, Status

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
    return sorted(found, key=lambda f: f.caused_by is not None)


def verdict(report: Report) -> str:
    """'NODE: 2 problems — pod→API unreachable (cause: no MASQUERADE on wlp59s0)' or 'all N ok'."""
    found = problems(report)
    if not found:
        counted = [f for f in report.findings if f.status != Status.SKIP]
        return f"{report.node}: all {len(counted)} probes ok"
    parts = []
    for cause in report.causes:
        effects = [f for f in found if f.caused_by == cause.probe]
        parts.append(f"{effects[0].summary} (cause: {cause.summary})" if effects else cause.summary)
    noun = "problem" if len(found) == 1 else "problems"
    return f"{report.node}: {len(found)} {noun} — " + "; ".join(parts)


def verdict_line(report: Report) -> str:
    return f"{STATUS_EMOJI[report.verdict]} {escape(verdict(report))}"


def finding_title(finding: Finding) -> str:
    because = f" — caused by `{finding.caused_by}`" if finding.caused_by else ""
    return (
        f"{STATUS_EMOJI[finding.status]} *{escape(finding.summary)}*\n"
        f"_{finding.probe} · {finding.layer.value}_{because}"
    )


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
    return f"New node {escape(node)} is Ready — checking it…"
