"""Slack writes delivered or reported: the one retry policy of the Web API client, and the check
that keeps a retried chat.postMessage from posting twice.

Used by `app.py::make_client` (the retry handlers) and `threads.py::call` (every Web API call the
bot makes). Slack answers a passing fault with HTTP 5xx, or with `internal_error`,
`service_unavailable`, `fatal_error` or `request_timeout`; a connection can also drop mid-request.
`TransientErrorRetryHandler` (an slack_sdk `AsyncRetryHandler`) retries those with exponential
backoff and jitter, at most `slack.server_error_retries` times; 429 stays with slack_sdk's
rate-limit handler (Retry-After). See docs/faults.md#slack-transient-errors and
docs/slack.md#rate-limits-and-retries.

Slack documents that after `internal_error` or `fatal_error` "some aspect of the operation" may have
succeeded, and a dropped connection says nothing either: a chat.postMessage may have landed although
its answer was an error. Before retrying one, the handler asks Slack whether it landed: every post
carries a delivery key in its message metadata, and `conversations.replies` (a thread reply) or
`conversations.history` (a top-level message) is searched for it. Found: no retry, the call counts as
delivered (with the ts Slack gave it; docs/faults.md#message-metadata-and-thread-lookups). The
context of the post travels to the handler in a ContextVar set around the call (the handler only
sees the HTTP request, not its JSON body).
"""

from __future__ import annotations

import random
import secrets
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import ClientOSError, ServerConnectionError, ServerDisconnectedError
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.jitter import Jitter
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

log = structlog.get_logger("netcheck.slack")

TRANSIENT_ERRORS = frozenset({"internal_error", "service_unavailable", "fatal_error", "request_timeout"})
"""Slack's `error` strings for a fault on its side (the request itself was fine)."""
CONNECTION_ERRORS = (ServerConnectionError, ServerDisconnectedError, ClientOSError)
"""aiohttp errors of a connection that failed or dropped (a read timeout is a ServerTimeoutError)."""
METADATA_EVENT = "netcheck_delivery"
"""Message metadata event_type carrying the delivery key of a post."""
LOOKUP_LIMIT = 200
"""Messages of a thread (or of the channel since the first attempt) searched for the delivery key."""
CLOCK_MARGIN_S = 120.0
"""A top-level post is looked for from this long before its first attempt: this host's clock and the
ts Slack stamps may differ, and a channel posts far fewer than LOOKUP_LIMIT messages in that time."""
POST_METHOD = "chat.postMessage"


def transient(response: HttpResponse | None, error: Exception | None) -> bool:
    """A fault Slack (or the network) may not repeat: worth another attempt."""
    if error is not None:
        return isinstance(error, CONNECTION_ERRORS)
    if response is None:
        return False
    if response.status_code >= 500:
        return True
    body = response.body if isinstance(response.body, dict) else {}
    return response.status_code == 200 and body.get("ok") is False and body.get("error") in TRANSIENT_ERRORS


@dataclass
class PendingPost:
    """One chat.postMessage in flight: where it goes and the key that finds it again."""

    client: AsyncWebClient
    channel: str
    thread_ts: str | None
    key: str = field(default_factory=lambda: secrets.token_hex(8))
    started: float = field(default_factory=time.time)
    landed_ts: str | None = None
    """The ts of the message when an attempt that answered with an error did land."""

    @property
    def metadata(self) -> dict[str, Any]:
        return {"event_type": METADATA_EVENT, "event_payload": {"delivery": self.key}}

    async def landed(self) -> bool:
        """Did an earlier attempt post the message? Unknown (the lookup failed) counts as no:
        a rare duplicate is better than a lost finding."""
        if self.thread_ts:
            method = "conversations.replies"
            params: dict[str, object] = {"channel": self.channel, "ts": self.thread_ts}
        else:  # a top-level message: the channel since (a margin before) the first attempt
            method, params = "conversations.history", {"channel": self.channel,
                                                       "oldest": f"{self.started - CLOCK_MARGIN_S:.6f}"}
        params |= {"limit": LOOKUP_LIMIT, "include_all_metadata": True}
        try:
            answer = await self.client.api_call(method, params=params)
        except SlackApiError as exc:
            log.warning("slack_delivery_unknown", channel=self.channel, method=method,
                        error=exc.response.get("error"), status=exc.response.status_code)
            return False
        for message in answer.get("messages") or []:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("delivery") == self.key:
                self.landed_ts = str(message.get("ts"))
                log.info("slack_post_landed_despite_error", channel=self.channel, ts=self.landed_ts)
                return True
        return False


PENDING_POST: ContextVar[PendingPost | None] = ContextVar("netcheck_pending_post", default=None)


class ProportionalJitter(Jitter):
    """Half to one and a half times the backoff step. slack_sdk's RandomJitter adds up to a whole
    second whatever the step, which would make every short backoff about one second."""

    def recalculate(self, duration: float) -> float:
        return duration * (0.5 + random.random())  # noqa: S311 (spreading retries, not a secret)


class TransientErrorRetryHandler(AsyncRetryHandler):
    """Retries 5xx, Slack's transient error strings and dropped connections, with backoff; a
    chat.postMessage only after checking that the failed attempt did not land."""

    def __init__(self, max_retry_count: int, backoff_s: float) -> None:
        backoff = BackoffRetryIntervalCalculator(backoff_factor=backoff_s, jitter=ProportionalJitter())
        super().__init__(max_retry_count, backoff)

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not transient(response, error):
            return False
        pending = PENDING_POST.get()
        if pending is not None and request.url.endswith("/" + POST_METHOD):
            return not await pending.landed()
        return True
