"""Every sentence of the watch's posts and the App Home tab, as pure functions (no Slack calls here).

The watch's posts (bot/watch/sweeper.py): a regression thread's parent, a recovery line, an
"improved" line. The Home tab (bot/slack/homeview.py): a node's line, the watch's state, the last
regressions. Shared wording of checks (verdict lines, escaping) comes from `messages.py`.
"""

from __future__ import annotations

from bot.fleet.causes import Cause
from bot.fleet.state import Change, NodeRecord, Regression
from bot.slack import messages as msg
from probes.model import Status

WATCH_REQUESTER = "the watch"
"""Who asked for a check the watch posts (fix buttons carry it; never a user, so any approver may click)."""
NO_CHECK_EMOJI = ":white_circle:"


def age(seconds: float) -> str:
    """'just now', '45 s ago', '3 min ago', '2 h ago', '4 days ago'."""
    seconds = max(0.0, seconds)
    if seconds < 5:
        return "just now"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def cause_phrase(cause: Cause) -> str:
    where = f" on {msg.escape(cause.node)}" if cause.elsewhere else ""
    return f"`{cause.probe}`{where}: {msg.escape(cause.summary)}"


def regression_pending(node: str) -> str:
    return f":rotating_light: netcheck watch: {msg.escape(node)} regressed — posting the findings…"


def regression_parent(change: Change) -> str:
    """The regression thread's parent once the findings are in: the new cause(s) first."""
    causes = "; ".join(cause_phrase(c) for c in change.new)
    return (f":rotating_light: *Regression on {msg.escape(change.node)}* — {causes}\n"
            f"{msg.verdict_line(change.report)}")


def regression_note(change: Change, agree: int) -> str:
    checks = "check" if agree == 1 else f"{agree} checks in a row"
    report = change.report
    return (f"seen by {WATCH_REQUESTER} ({checks}) · {len(report.findings)} probes in "
            f"{report.duration_s:.1f} s · fix buttons follow the usual approval rules")


def _since(change: Change, now: float, link: str | None) -> str:
    parts = []
    if change.since is not None:
        parts.append(f"regressed {age(now - change.since.timestamp())}")
    if link:
        parts.append(f"<{link}|thread>")
    return f" ({', '.join(parts)})" if parts else ""


def recovery_line(change: Change, now: float, link: str | None) -> str:
    gone = ", ".join(f"`{key}`" for key in change.resolved)
    since = _since(change, now, link)
    return f":white_check_mark: {msg.escape(change.node)} recovered: {gone} ok again{since}"


def improved_line(change: Change, now: float, link: str | None) -> str:
    gone = ", ".join(f"`{key}`" for key in change.resolved)
    still = "; ".join(cause_phrase(c) for c in change.still)
    return (f":large_yellow_circle: {msg.escape(change.node)} better: {gone} ok again, still failing: "
            f"{still}{_since(change, now, link)}")


# ---- App Home ------------------------------------------------------------------------------------

HOME_TITLE = "netcheck — the fleet"


def home_watch_line(interval: float | None, probes: list[str] | None, channel: str | None,
                    sweeps: int, last_sweep_age: float | None) -> str:
    if interval is None:
        return "The watch is off (set `watch.interval` and `watch.channel`); nodes show their last check."
    which = ", ".join(f"`{p}`" for p in probes) if probes else "every probe"
    last = f", last {age(last_sweep_age)}" if last_sweep_age is not None else ", first sweep running"
    return (f"The watch checks every node every {interval:g} s ({which}) and posts changes to "
            f"<#{channel}>: {sweeps} sweeps{last}.")


def home_node_line(record: NodeRecord, now: float) -> str:
    report = record.report
    if report.verdict.is_problem:
        causes = record.causes
        what = "; ".join(cause_phrase(c) for c in causes[:3]) or msg.escape(msg.verdict(report))
        more = f" (+{len(causes) - 3} more)" if len(causes) > 3 else ""
        head = f"{msg.STATUS_EMOJI[report.verdict]} *{msg.escape(record.node)}* — {what}{more}"
    else:
        counted = [f for f in report.findings if f.status is not Status.SKIP]
        what = f"all {len(counted)} probes ok" if counted else "nothing checked (every probe skipped)"
        mark = msg.STATUS_EMOJI[Status.OK if counted else Status.SKIP]
        head = f"{mark} *{msg.escape(record.node)}* — {what}"
    return f"{head}\n_checked {age(now - record.checked_at)} ({record.source.label})_"


def home_unchecked_line(node: str) -> str:
    return f"{NO_CHECK_EMOJI} *{msg.escape(node)}* — not checked since the bot started"


def home_folded_line(record: NodeRecord, now: float) -> str:
    """One short line per node when the fleet is too big for a section each."""
    mark = msg.STATUS_EMOJI[record.report.verdict]
    return f"{mark} {msg.escape(record.node)} · {age(now - record.checked_at)}"


def home_regression_line(regression: Regression, now: float, link: str | None) -> str:
    causes = "; ".join(cause_phrase(c) for c in regression.causes)
    where = f" · <{link}|thread>" if link else ""
    return f":rotating_light: {msg.escape(regression.node)} {age(now - regression.at)}: {causes}{where}"


def home_no_regressions() -> str:
    return "No regression since the bot started."


def home_recheck_button() -> str:
    return "Re-check"


def home_recheck_parent(node: str, user: str) -> str:
    return f"netcheck {msg.escape(node)} — re-check asked from the Home tab by {msg.user(user)}…"


def home_no_channel() -> str:
    return "Re-check buttons need a channel for the thread: set `watch.channel` (or `slack.join_channel`)."


def home_more_nodes(count: int) -> str:
    return f"… and {count} more nodes (ask `/netcheck all` for every line)"
