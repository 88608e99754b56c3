"""Readiness checks against real stand-ins: the Slack Web API stand-in (lab/slack) over HTTP and the
API server stand-in (lab/apiserver) over HTTPS with the official client.

Covers: auth.test ok → ready, a wrong bot token (invalid_auth) → not ready, Slack gone → not ready;
the cluster check is ready when the Lease exists or is missing (404 is an answer), not ready when the
API server is gone; wired into HealthServer, /readyz turns 503 naming "slack" when the token is bad.
"""

from __future__ import annotations

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.ops.health import HealthServer
from bot.ops.metrics import Metrics
from bot.ops.readiness import cluster_ready, slack_web_ready
from bot.ops.settings import OpsSettings
from lab.slack.webapi import SlackStandIn
from probes.transports.leases import KubernetesLeaseStore
from tests.lab.test_apiserver_support import running_lab


async def test_slack_readiness_follows_auth_test():
    slack = SlackStandIn(bot_token="xoxb-good")
    await slack.start()
    try:
        good = slack_web_ready(AsyncWebClient(token="xoxb-good", base_url=slack.api_url))
        bad = slack_web_ready(AsyncWebClient(token="xoxb-revoked", base_url=slack.api_url))
        assert await good() is True
        assert await bad() is False
        assert [c.method for c in slack.calls] == ["auth.test", "auth.test"]
        server = HealthServer(slack_ready=bad, cluster_ready=good, metrics=Metrics(),
                              settings=OpsSettings(readiness_timeout=2.0))
        port = await server.start("127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                assert resp.status == 503
                assert (await resp.text()).strip() == "slack: not ready"
        finally:
            await server.stop()
    finally:
        await slack.stop()
    gone = slack_web_ready(AsyncWebClient(token="xoxb-good", base_url=slack.api_url, timeout=2))
    with pytest.raises(aiohttp.ClientConnectionError):  # HealthServer reports it by type: not ready
        await gone()


async def test_cluster_readiness_follows_the_api_server(tmp_path):
    async with running_lab(tmp_path) as lab:
        store = KubernetesLeaseStore(lab.cluster(), "kube-system", request_timeout=2.0)
        assert await cluster_ready(store, "netcheck-leader")() is True  # 404: the API answered
    assert await cluster_ready(store, "netcheck-leader")() is False  # server gone
