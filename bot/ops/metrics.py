"""Prometheus metrics of the bot: checks run, findings by probe and status, fixes by outcome,
probe and check durations, Slack writes that could not be delivered.

`netcheck serve` hangs `record_report` on the engine's `on_report` hook and `record_fix` on the fix
runner's `on_result` hook, so every check and fix the bot's engine runs is counted. `bot.ops.health`
serves `REGISTRY` on /metrics. A private registry (not the client's global one) keeps the exposition
to netcheck's own series and lets tests build isolated `Metrics` objects.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from probes.model import Report

CHECK_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
PROBE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60)


class FixResultLike(Protocol):
    """The part of `fixes.model.FixResult` the metrics read."""

    @property
    def outcome(self) -> object: ...


class Metrics:
    """One set of netcheck's series in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.checks = Counter(
            "netcheck_checks", "Node checks run, by verdict.", ["verdict"], registry=self.registry
        )
        self.findings = Counter(
            "netcheck_findings", "Findings reported, by probe and status.", ["probe", "status"],
            registry=self.registry,
        )
        self.fixes = Counter(
            "netcheck_fixes", "Fix runs, by fix id and outcome.", ["fix", "outcome"], registry=self.registry
        )
        self.check_duration = Histogram(
            "netcheck_check_duration_seconds", "Wall time of one node check.",
            buckets=CHECK_BUCKETS, registry=self.registry,
        )
        self.probe_duration = Histogram(
            "netcheck_probe_duration_seconds", "Wall time of one probe, by probe id.", ["probe"],
            buckets=PROBE_BUCKETS, registry=self.registry,
        )
        self.slack_undelivered = Counter(
            "netcheck_slack_undelivered", "Slack Web API writes that failed after their retries, by method.",
            ["method"], registry=self.registry,
        )

    def record_report(self, report: Report) -> None:
        self.checks.labels(verdict=report.verdict.value).inc()
        self.check_duration.observe(report.duration_s)
        for finding in report.findings:
            self.findings.labels(probe=finding.probe, status=finding.status.value).inc()
            if finding.duration_s is not None:
                self.probe_duration.labels(probe=finding.probe).observe(finding.duration_s)

    def record_fix(self, fix_id: str, result: FixResultLike) -> None:
        self.fixes.labels(fix=fix_id, outcome=str(result.outcome)).inc()

    def record_slack_undelivered(self, method: str) -> None:
        self.slack_undelivered.labels(method=method).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


METRICS = Metrics()
"""The process-wide metrics the bot records into and /metrics serves."""


def record_report(report: Report) -> None:
    METRICS.record_report(report)


def record_fix(fix_id: str, result: FixResultLike) -> None:
    METRICS.record_fix(fix_id, result)


def record_slack_undelivered(method: str) -> None:
    METRICS.record_slack_undelivered(method)
