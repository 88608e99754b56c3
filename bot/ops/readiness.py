"""The two readiness checks `/readyz` runs, built from what `netcheck serve` already has.

`slack_web_ready(client)`: auth.test answers ok with the bot token (needs no scope; a revoked token
or an unreachable Slack makes the replica NotReady). `socket_mode_ready(handler, client)`: the leader
also needs its Socket Mode connection up; a standby has none, so only auth.test counts for it.
`cluster_ready(store, lease)`: the API server answers a read of the leader Lease — a 404 or a 403
is an answer too (a 403 is leader election's problem, which its own readiness check names) — which
needs no RBAC beyond the leader election's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.ops.leader import LeaseStore
from probes.errors import ClusterError, ClusterForbidden, ClusterNotFound

ReadinessCheck = Callable[[], Awaitable[bool]]


def slack_web_ready(client: AsyncWebClient) -> ReadinessCheck:
    async def check() -> bool:
        try:
            answer = await client.auth_test()
        except SlackApiError:
            return False
        return bool(answer.get("ok"))

    return check


def socket_mode_ready(handler: Any, client: AsyncWebClient, is_leader: Callable[[], bool]) -> ReadinessCheck:
    """`handler` is Bolt's AsyncSocketModeHandler; its aiohttp client says whether it is connected."""
    web_ready = slack_web_ready(client)

    async def check() -> bool:
        if is_leader() and not await handler.client.is_connected():
            return False
        return await web_ready()

    return check


def cluster_ready(store: LeaseStore, lease_name: str) -> ReadinessCheck:
    async def check() -> bool:
        try:
            await store.get(lease_name)
        except ClusterNotFound:
            return True  # the API answered
        except ClusterForbidden as exc:
            return exc.status == 403  # answered (and authenticated); a 401 means bad credentials
        except ClusterError:
            return False
        return True

    return check
