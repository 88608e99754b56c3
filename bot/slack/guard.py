"""What stands between Bolt and our listeners: a shape check and catch-all listeners.

Bolt's listener matchers and the arguments it builds for every listener, middleware and error
handler index the body without checking it (`body["actions"][0]`, `body["event"]["type"]`,
`body["command"]` through `re.search`), so an authenticated but malformed body was a 500 with a
traceback, raised where no error handler could catch it. `bolt_problem` finds such a body before
Bolt sees it (bot/slack/http.py answers it 400 with one log line). Socket Mode bodies come from
Slack over the app-token connection and are not checked here.
`register_catch_all` adds listeners, registered after every real one, that ack whatever no listener
handles (an unknown action_id, another slash command, a shortcut, a view, an event) and log it as
one JSON line, instead of Bolt's multi-line "[Suggestion]" warning. Used by `app.py::build_app`;
the field readers at the end let listeners tolerate missing or mistyped fields.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.payload_utils import (
    to_action,
    to_command,
    to_event,
    to_message,
    to_options,
    to_shortcut,
    to_step,
    to_view,
)

from probes.errors import InvalidInput
from probes.transports.commands import slack_id

log = structlog.get_logger("netcheck.slack")

ANYTHING = re.compile(r".*", re.DOTALL)
SHOWN_MAX = 80
"""Characters of a hostile id or type kept in a log line."""

_EXTRACTORS = (to_options, to_shortcut, to_action, to_view, to_command, to_event, to_message, to_step)
"""What Bolt's kwargs injection evaluates for every middleware, listener and error handler."""

_CALLBACK_KINDS = ("shortcut", "message_action", "interactive_message", "dialog_submission",
                   "dialog_cancellation", "dialog_suggestion", "workflow_step_edit")


def short(value: Any) -> str:
    """A payload value for a log line: a string, cut to SHOWN_MAX characters."""
    text = value if isinstance(value, str) else repr(type(value).__name__)
    return text[:SHOWN_MAX]


def _str_field(mapping: Any, key: str) -> bool:
    return isinstance(mapping, dict) and isinstance(mapping.get(key), str)


def shape_problem(body: dict[str, Any]) -> str | None:
    """What Bolt's matchers would trip over in this body, or None."""
    kind = body.get("type")
    if "command" in body:
        return None if _str_field(body, "command") else "command is not a string"
    if kind == "event_callback" or "event" in body:
        return None if _str_field(body.get("event"), "type") else "event without a string type"
    if kind in ("block_actions", "interactive_message"):
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions or not all(isinstance(a, dict) for a in actions):
            return f"{kind} without actions"
        if kind == "block_actions" and not _str_field(actions[0], "action_id"):
            return "block_actions action without a string action_id"
    if kind in _CALLBACK_KINDS and not _str_field(body, "callback_id"):
        return f"{kind} without a string callback_id"
    if kind in ("view_submission", "view_closed") and not _str_field(body.get("view"), "callback_id"):
        return f"{kind} without a view callback_id"
    if kind == "block_suggestion" and not _str_field(body, "action_id"):
        return "block_suggestion without a string action_id"
    return None


def bolt_problem(body: dict[str, Any]) -> str | None:
    """Why Bolt would fail on this body before any of our code runs, or None: the shape its matchers
    index, and a trial run of the extractors Bolt evaluates for every listener's arguments."""
    problem = shape_problem(body)
    if problem is not None:
        return problem
    try:
        for extract in _EXTRACTORS:
            extract(body)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        return f"{type(exc).__name__} in {extract.__name__}"
    return None


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    return short(user.get("id") if isinstance(user, dict) else body.get("user_id") or user)


def register_catch_all(app: AsyncApp) -> None:
    """Ack-and-log listeners for everything the real listeners leave; register them last."""

    def listener(kind: str, id_of: Callable[[dict[str, Any]], Any]) -> Callable[..., Awaitable[None]]:
        async def unhandled(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            log.info("unhandled", kind=kind, id=short(id_of(body)), user=_user(body))

        return unhandled

    def first_action(body: dict[str, Any]) -> Any:
        actions = body.get("actions") or [{}]
        return actions[0].get("action_id") or body.get("callback_id")

    app.action(ANYTHING)(listener("action", first_action))
    app.command(ANYTHING)(listener("command", lambda b: b.get("command")))
    app.shortcut(ANYTHING)(listener("shortcut", lambda b: b.get("callback_id")))
    app.view(ANYTHING)(listener("view", lambda b: (b.get("view") or {}).get("callback_id")))
    app.options(ANYTHING)(listener("options", lambda b: b.get("action_id") or b.get("callback_id")))
    app.event(ANYTHING)(listener("event", lambda b: (b.get("event") or {}).get("type")))


def mapping(value: Any) -> dict[str, Any]:
    """A payload field that should be an object; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


def text_field(value: Any) -> str:
    """A payload field that should be a string; anything else reads as empty."""
    return value if isinstance(value, str) else ""


def slack_id_or_none(value: Any, kind: str) -> str | None:
    """A user/channel id from a payload through the validator module, or None (it goes into
    `<@U…>` mentions and Web API calls)."""
    try:
        return slack_id(value, kind).value
    except InvalidInput:
        return None
