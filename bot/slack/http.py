"""HTTP mode's `/slack/events`: authenticate the raw body before anything parses it.

Bolt's aiohttp adapter builds its request object first, which parses the body (JSON, a form, or a
form's `payload=` JSON), and verifies the signature only afterwards, in a middleware: a body that
does not parse was a 500 with a traceback in the log for anyone who can reach the port. This
endpoint does the steps in the safe order, each refusal one JSON log line and no traceback:

1. size: more than `slack.max_request_bytes` -> 413 (before reading further);
2. authentication on the raw bytes: Slack's `v0` HMAC-SHA256 signature over
   `v0:{timestamp}:{body}` with the signing secret, timestamp within 300 s -> else 401 with
   Bolt's own body `{"error": "invalid request"}` (docs/slack.md, "Request verification");
3. parsing exactly as Bolt does (`parse_body`) -> a body that is not UTF-8, not JSON where JSON is
   due, not a JSON object, or shaped so that Bolt's own extractors fail (bot/slack/guard.py) ->
   400 `{"error": "malformed request"}`;
4. only then Bolt's `async_dispatch`.

A form body `ssl_check=1` (Slack checking the certificate of a slash-command URL) is answered with
Bolt's empty 200 even unsigned: Bolt's SslCheck middleware runs before its verification too, and
nothing is run for it. Used by `bot/commands/serve.py` and the Slack tests.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import parse_qs

import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body

from bot.slack import guard
from bot.slack.settings import SlackSettings

log = structlog.get_logger("netcheck.slack.http")

SIGNATURE_MAX_AGE_S = 300
"""Slack's documented replay window: a timestamp further than this from now is refused."""
SSL_CHECK_MAX_BYTES = 512
"""An ssl_check body is `ssl_check=1&token=…`; anything longer is not one."""

Clock = Callable[[], float]


def signature_problem(secret: str, raw: bytes, timestamp: str | None, signature: str | None,
                      now: float) -> str | None:
    """Why the request is not Slack's, or None when the signature and timestamp are good."""
    if not timestamp or not signature:
        return "no signature"
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return "malformed timestamp"
    if abs(now - int(timestamp)) > SIGNATURE_MAX_AGE_S:
        return "stale timestamp"
    base = b"v0:" + timestamp.encode() + b":" + raw
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return "bad signature"
    return None


def _is_ssl_check(raw: bytes, content_type: str) -> bool:
    if len(raw) > SSL_CHECK_MAX_BYTES or content_type != "application/x-www-form-urlencoded":
        return False
    form = parse_qs(raw.decode("ascii", "replace"), keep_blank_values=True)
    return form.get("ssl_check") == ["1"]


def _refuse(request: web.Request, status: int, reason: str, size: int, body: dict[str, str]) -> web.Response:
    log.warning("request_refused", status=status, reason=reason, bytes=size, path=request.path,
                content_type=request.content_type, remote=request.remote)
    return web.json_response(body, status=status)


def events_app(app: AsyncApp, settings: SlackSettings, *, path: str = "/slack/events",
               clock: Clock = time.time) -> web.Application:
    """An aiohttp application serving Bolt's `app` on `path`, authenticated before parsing."""
    secret = settings.secret()

    async def events(request: web.Request) -> web.StreamResponse:
        try:
            raw = await request.read()  # aiohttp stops at client_max_size and raises 413
        except web.HTTPRequestEntityTooLarge:
            return _refuse(request, 413, "body too large", request.content_length or 0,
                           {"error": "request too large"})
        problem = signature_problem(secret, raw, request.headers.get("X-Slack-Request-Timestamp"),
                                    request.headers.get("X-Slack-Signature"), clock())
        if problem is not None:
            if _is_ssl_check(raw, request.content_type):
                return web.Response(status=200, text="")
            return _refuse(request, 401, problem, len(raw), {"error": "invalid request"})
        content_type = (request.headers.get("Content-Type") or "").split(";")[0] or None  # as Bolt reads it
        try:
            text = raw.decode("utf-8")
            parsed = parse_body(text, content_type)
            if not isinstance(parsed, dict):
                raise ValueError(f"the body is a JSON {type(parsed).__name__}, not an object")
            problem = guard.bolt_problem(parsed)
            if problem is not None:
                raise ValueError(problem)
            bolt_request = AsyncBoltRequest(body=text, query=request.query_string,
                                            headers=request.headers)  # type: ignore[arg-type]
        except (ValueError, RecursionError, TypeError, AttributeError, KeyError, IndexError) as exc:
            # Authenticated but unreadable: Bolt would answer 500 with a traceback.
            why = str(exc) if isinstance(exc, ValueError) and not isinstance(exc, UnicodeError) else ""
            return _refuse(request, 400, f"malformed body: {type(exc).__name__} {why[:80]}".strip(),
                           len(raw), {"error": "malformed request"})
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    web_app = web.Application(client_max_size=settings.max_request_bytes)
    web_app.router.add_post(path, events)
    return web_app
