"""The fleet's series on /metrics: the last status of every probe on every node, each node's check
durations, and the watch's sweeps and posts.

`netcheck_node_probe_status{node, probe, status}` is 1 for the status the probe last had on the node
and 0 for the others (one series per status, so `== 1` queries and alerts need no value mapping).
Updated by `FleetState.record` for every check, whoever ran it; registered in the bot's registry
(`bot.ops.metrics.METRICS.registry`) by `netcheck serve`, in a private one by tests.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bot.ops.metrics import CHECK_BUCKETS
from probes.model import Report, Status

STATUSES = tuple(s.value for s in Status)


class FleetMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.probe_status = Gauge(
            "netcheck_node_probe_status", "1 for the status a probe last had on a node, 0 for the others.",
            ["node", "probe", "status"], registry=registry,
        )
        self.problems = Gauge(
            "netcheck_node_problems", "Problem findings (warn, fail, error) in a node's last check.",
            ["node"], registry=registry,
        )
        self.last_check = Gauge(
            "netcheck_node_last_check_timestamp_seconds", "When a node was last checked (unix time).",
            ["node"], registry=registry,
        )
        self.node_check_duration = Histogram(
            "netcheck_node_check_duration_seconds", "Wall time of one check of a node, by node and source.",
            ["node", "source"], buckets=CHECK_BUCKETS, registry=registry,
        )
        self.sweeps = Counter("netcheck_watch_sweeps", "Watch sweeps completed.", registry=registry)
        self.sweep_duration = Histogram(
            "netcheck_watch_sweep_duration_seconds", "Wall time of one sweep of every node.",
            buckets=CHECK_BUCKETS, registry=registry,
        )
        self.posts = Counter(
            "netcheck_watch_posts", "Posts of the watch, by kind (regression, recovery, improved).", ["kind"],
            registry=registry,
        )
        self._probes: dict[str, set[str]] = {}
        self._sources: dict[str, set[str]] = {}

    def record(self, report: Report, source: str) -> None:
        node = report.node
        seen = self._probes.setdefault(node, set())
        for finding in report.findings:
            seen.add(finding.probe)
            for status in STATUSES:
                value = 1.0 if status == finding.status.value else 0.0
                self.probe_status.labels(node=node, probe=finding.probe, status=status).set(value)
        self.problems.labels(node=node).set(sum(1 for f in report.findings if f.status.is_problem))
        self.last_check.labels(node=node).set(report.started_at.timestamp() + report.duration_s)
        self.node_check_duration.labels(node=node, source=source).observe(report.duration_s)
        self._sources.setdefault(node, set()).add(source)

    def forget(self, node: str) -> None:
        """Remove a node's series (it left the cluster)."""
        for probe in self._probes.pop(node, set()):
            for status in STATUSES:
                self.probe_status.remove(node, probe, status)
        for gauge in (self.problems, self.last_check):
            try:
                gauge.remove(node)
            except KeyError:
                pass
        for source in self._sources.pop(node, set()):
            self.node_check_duration.remove(node, source)


_BY_REGISTRY: dict[int, FleetMetrics] = {}


def for_registry(registry: CollectorRegistry) -> FleetMetrics:
    """The fleet series of `registry`, registered once (a second `serve` in one process reuses them)."""
    metrics = _BY_REGISTRY.get(id(registry))
    if metrics is None or metrics.registry is not registry:
        metrics = _BY_REGISTRY[id(registry)] = FleetMetrics(registry)
    return metrics
