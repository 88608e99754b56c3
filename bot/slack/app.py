"""Builds the Bolt `AsyncApp` with its Web API client, listeners and shared runtime.

Called by `bot/commands/serve.py` (and the tests). The client gets `base_url` from SLACK_API_URL
(slack_sdk reads no variable for it), retries 429 after Retry-After, and retries 5xx, Slack's
transient errors and dropped connections with backoff (bot/slack/delivery.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.error import BoltUnhandledRequestError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.fleet.recording import RecordingEngine
from bot.fleet.state import FleetState
from bot.slack import actions, commands, guard, home
from bot.slack.approvals import Approvers, ProposalLedger
from bot.slack.delivery import TransientErrorRetryHandler
from bot.slack.ports import ApprovalFactory, ApprovalRecord, FixRunner
from bot.slack.runtime import Runtime
from bot.slack.settings import SlackSettings
from bot.watch.settings import WatchSettings
from fixes.model import Approval
from probes.api import EngineAPI
from probes.errors import ConfigError

log = structlog.get_logger("netcheck.slack")

WEB_API_TIMEOUT_S = 30
"""Seconds one Web API call may take (slack_sdk's default for AsyncWebClient)."""


def make_client(settings: SlackSettings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """`session`: the connections every Web API call reuses (`web_api_session`); None: slack_sdk opens
    a session, a TCP connection and, against Slack, a TLS handshake for each call and closes them."""
    if settings.bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set")
    kwargs: dict[str, Any] = {}
    if settings.api_url:
        kwargs["base_url"] = settings.api_url.rstrip("/") + "/"
    return AsyncWebClient(
        token=settings.bot_token.get_secret_value(),
        timeout=WEB_API_TIMEOUT_S,
        session=session,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=settings.rate_limit_retries),
            TransientErrorRetryHandler(settings.server_error_retries, settings.server_error_backoff_s),
        ],
        **kwargs,
    )


def web_api_session() -> aiohttp.ClientSession:
    """One HTTP session for the bot's Web API calls (and so for Bolt's per-request clients, which
    share the app client's session), created on the running loop; the caller closes it. slack_sdk
    applies its own timeout only to sessions it opens itself, so this one carries the same total."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEB_API_TIMEOUT_S))


def fix_approval(record: ApprovalRecord) -> Approval:
    """The fix runner's `Approval` for an approved click."""
    return Approval(
        approver=record.approved_by, approved_at=datetime.now(UTC), requested_by=record.requested_by
    )


def build_app(
    settings: SlackSettings,
    engine: EngineAPI,
    runner: FixRunner | None,
    *,
    probe_count: int,
    approval_factory: ApprovalFactory = fix_approval,
    fleet: FleetState | None = None,
    watch: WatchSettings | None = None,
    session: aiohttp.ClientSession | None = None,
) -> tuple[AsyncApp, Runtime]:
    """The app and its runtime. `fleet` is the shared fleet state (a fresh one when None); `watch`
    the continuous watch's settings, which the Home tab describes (the watch itself runs in serve);
    `session` the Web API client's connections (`make_client`)."""
    if not settings.signing_secret:
        raise ConfigError("SLACK_SIGNING_SECRET is not set (it also signs fix buttons)")
    client = make_client(settings, session)

    async def group_members(group: str) -> list[str]:
        answer = await client.usergroups_users_list(usergroup=group)
        return list(answer.get("users", []))

    fleet = fleet if fleet is not None else FleetState()
    rt = Runtime(
        settings=settings,
        engine=RecordingEngine(engine, fleet),  # every on-demand check updates the fleet state
        runner=runner,
        approval_factory=approval_factory,
        probe_count=len(settings.probes) if settings.probes else probe_count,
        client=client,
        approvers=Approvers(settings, group_members),
        ledger=ProposalLedger(settings.proposal_ttl_minutes * 60),
        watch=watch,
        fleet=fleet,
    )
    # Unhandled requests go to `on_error` (one line) rather than Bolt's multi-line suggestion.
    app = AsyncApp(client=client, signing_secret=settings.secret(), name="netcheck",
                   raise_error_for_unhandled_request=True)
    commands.register(app, rt)
    actions.register(app, rt)
    home.register(app, rt)
    guard.register_catch_all(app)  # last: only what no listener above takes

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        kind = guard.short(body.get("type") or body.get("command"))
        if isinstance(error, BoltUnhandledRequestError):
            log.info("unhandled", kind=kind)  # Bolt answers it 404, as without this handler
            return
        log.error("listener_error", error=repr(error)[:300], type=kind, exc_info=error)

    return app, rt
