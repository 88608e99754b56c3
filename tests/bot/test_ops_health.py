"""Health server and metrics over real HTTP on 127.0.0.1.

Covers: /healthz answers 200; /readyz is 200 when both checks pass, 503 naming the failing check
when Slack is down, when the cluster check raises, and when a check hangs past readiness_timeout;
/metrics serves Prometheus text with checks, findings by probe and status, check duration, fixes by
outcome after `record_report` / `record_fix`, and probe durations.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.ops.health import HealthServer
from bot.ops.metrics import Metrics
from bot.ops.settings import OpsSettings
from fixes.model import FixResult, Outcome, Plan
from probes.errors import ClusterUnreachable
from probes.model import Finding, Layer, Report, Status


class Flag:
    """A readiness check whose answer the test flips."""

    def __init__(self, value: bool = True) -> None:
        self.value = value

    async def __call__(self) -> bool:
        return self.value


@pytest.fixture
async def served():
    metrics = Metrics()
    slack, cluster = Flag(), Flag()
    server = HealthServer(
        slack_ready=slack, cluster_ready=cluster, metrics=metrics, settings=OpsSettings(readiness_timeout=0.3)
    )
    port = await server.start("127.0.0.1", 0)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
        yield server, http, metrics, slack, cluster
    await server.stop()


async def test_healthz_alive(served):
    _server, http, *_ = served
    async with http.get("/healthz") as resp:
        assert resp.status == 200
        assert (await resp.text()).strip() == "ok"


async def test_readyz_ready_then_slack_down(served):
    _server, http, _metrics, slack, _cluster = served
    async with http.get("/readyz") as resp:
        assert resp.status == 200
    slack.value = False
    async with http.get("/readyz") as resp:
        assert resp.status == 503
        body = await resp.text()
    assert "slack: not ready" in body
    assert "cluster" not in body


async def test_readyz_cluster_error_and_hang():
    async def cluster_broken() -> bool:
        raise ClusterUnreachable("connect to 10.96.0.1:443 refused")

    async def slack_hangs() -> bool:
        await asyncio.sleep(30)
        return True

    server = HealthServer(
        slack_ready=slack_hangs, cluster_ready=cluster_broken, metrics=Metrics(),
        settings=OpsSettings(readiness_timeout=0.2),
    )
    port = await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            assert resp.status == 503
            body = await resp.text()
    finally:
        await server.stop()
    assert "cluster: ClusterUnreachable: connect to 10.96.0.1:443 refused" in body
    assert "slack: no answer within 0.2s" in body


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_after_report_and_fix(served):
    _server, http, metrics, *_ = served
    report = Report(
        node="worker2",
        started_at=datetime.now(UTC),
        duration_s=3.5,
        findings=[
            Finding(probe="masquerade", layer=Layer.IPTABLES, status=Status.FAIL, summary="no MASQUERADE",
                    duration_s=0.4),
            Finding(probe="pod-to-api", layer=Layer.POD_APP, status=Status.FAIL, summary="unreachable",
                    caused_by="masquerade"),
            Finding(probe="mtu", layer=Layer.PHYSICAL, status=Status.OK, summary="1500"),
        ],
    )
    metrics.record_report(report)  # the engine stamps each finding with its probe's duration
    plan = Plan(fix="masquerade", node="worker2", params={"interface": "wlp59s0"}, summary="add rule",
                change="iptables -t nat -A ...")
    metrics.record_fix("masquerade", FixResult(outcome=Outcome.APPLIED, message="done", plan=plan))
    metrics.record_fix("etc-hosts", FixResult(outcome=Outcome.REFUSED, message="not an approver"))

    async with http.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        samples = _samples(await resp.text())

    assert samples[("netcheck_checks_total", (("verdict", "fail"),))] == 1
    assert samples[("netcheck_findings_total", (("probe", "masquerade"), ("status", "fail")))] == 1
    assert samples[("netcheck_findings_total", (("probe", "mtu"), ("status", "ok")))] == 1
    assert samples[("netcheck_check_duration_seconds_sum", ())] == 3.5
    assert samples[("netcheck_check_duration_seconds_bucket", (("le", "5.0"),))] == 1
    assert samples[("netcheck_check_duration_seconds_bucket", (("le", "2.0"),))] == 0
    assert samples[("netcheck_fixes_total", (("fix", "masquerade"), ("outcome", "applied")))] == 1
    assert samples[("netcheck_fixes_total", (("fix", "etc-hosts"), ("outcome", "refused")))] == 1
    assert samples[("netcheck_probe_duration_seconds_count", (("probe", "masquerade"),))] == 1
    assert samples[("netcheck_probe_duration_seconds_sum", (("probe", "masquerade"),))] == 0.4
    assert ("netcheck_probe_duration_seconds_count", (("probe", "mtu"),)) not in samples  # no duration
