"""What a standby replica says in HTTP mode: people get a short failover answer, Slack's own
retries get 503.

Called by `bot/commands/serve.py` for every /slack/events request while this replica does not hold
the Lease (the leader's requests go to Bolt). Slack does not retry a slash command or a button click
that fails (docs/faults.md#what-slack-retries), so a bare 503 would leave the user with "dispatch
failed": a signed slash command is acked with an ephemeral answer, a signed click is acked and
answered through its `response_url` (interaction acks carry no message). Events API deliveries,
which Slack does retry, still get 503 + Retry-After, so the retry can reach the leader. Nothing here
runs a check or a fix. The signature is verified first (the same v0 HMAC and 5-minute window as
Bolt): unsigned requests get 401.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

import structlog
from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.slack import messages as msg

log = structlog.get_logger("netcheck.slack")

MAX_BODY_BYTES = 1 << 20
"""Larger than any Slack request (a click carries its message's blocks, well under 1 MiB)."""
RESPONSE_URL_TIMEOUT_S = 5
"""Seconds the failover answer to a click may take to post through its response_url."""


class StandbyAnswers:
    """The standby's answers; keeps the response_url posts it started until they end."""

    def __init__(self, signing_secret: str, retry_after_s: int) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._retry_after_s = retry_after_s
        self._posting: set[asyncio.Task[None]] = set()

    async def answer(self, request: web.Request) -> web.StreamResponse:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return web.json_response({"error": "payload too large"}, status=413)
        body = await request.read()
        if not self._verifier.is_valid_request(body, dict(request.headers)):
            return web.json_response({"error": "invalid request"}, status=401)
        form = parse_qs(body.decode(errors="replace")) if request.content_type.endswith("urlencoded") else {}
        if "command" in form:
            typed = f"{form['command'][0]} {(form.get('text') or [''])[0]}".strip()
            log.info("standby_answered", kind="command", user=(form.get("user_id") or [""])[0])
            return web.json_response({"response_type": "ephemeral", "text": msg.failing_over_command(typed)})
        if "payload" in form:
            try:
                payload = json.loads(form["payload"][0])
            except ValueError:
                return web.json_response({"error": "invalid payload"}, status=400)
            url = payload.get("response_url") if isinstance(payload, dict) else None
            log.info("standby_answered", kind=payload.get("type") if isinstance(payload, dict) else None,
                     user=((payload.get("user") or {}) if isinstance(payload, dict) else {}).get("id"))
            if isinstance(url, str) and url:
                self._post(url, msg.failing_over_click())
            return web.Response(status=200)
        # Events API (JSON): Slack retries these, so let the retry find the leader
        return web.json_response({"ok": False, "error": "standby replica; the leader answers"}, status=503,
                                 headers={"Retry-After": str(self._retry_after_s)})

    def _post(self, url: str, text: str) -> None:
        async def post() -> None:
            try:
                await AsyncWebhookClient(url, timeout=RESPONSE_URL_TIMEOUT_S).send(
                    text=text, response_type="ephemeral", replace_original=False)
            except Exception as exc:  # a failover notice is best effort; the user can click again
                log.warning("standby_answer_failed", error=str(exc))

        task = asyncio.get_running_loop().create_task(post())
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def aclose(self) -> None:
        if self._posting:
            await asyncio.gather(*self._posting, return_exceptions=True)
