"""The performance goals and how a `bench/run` result is judged against them (✔/✘).

Used by bench/__main__.py (the printed table) and bench/report.py (docs/performance.md).
"""

from __future__ import annotations

from typing import Any

GOALS = {"ratio_vs_baseline": 0.3, "ratio_vs_slowest_probe": 1.3, "first_request_s": 0.4,
         "fleet_ratio": 2.0, "ack_p99_ms": 100.0, "rss_idle_mib": 120.0}
"""Ratios, seconds, milliseconds and MiB as the goals state them."""


def goals(result: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(goal, measured, met) for every goal the run measured."""
    rows: list[tuple[str, str, bool | None]] = []
    for one in result.get("one_node", []):
        ratio = one["ratio_vs_baseline"]
        rows.append((f"check {one['node']} ({one['state']}) ≤ {GOALS['ratio_vs_baseline']} × sequential",
                     f"{one['check_s']:.2f} s / {one['baseline']['baseline_s']:.2f} s = {ratio:.2f}",
                     ratio <= GOALS["ratio_vs_baseline"]))
        ratio = one["ratio_vs_slowest_probe"]
        rows.append((f"check {one['node']} ({one['state']}) ≤ {GOALS['ratio_vs_slowest_probe']} × "
                     "slowest probe",
                     f"{one['check_s']:.2f} s / {one['slowest_probe_s']:.2f} s ({one['slowest_probe']}) "
                     f"= {ratio:.2f}", ratio <= GOALS["ratio_vs_slowest_probe"]))
    start = result.get("startup")
    if start:
        floor = start.get("libraries_only_wall_s")
        rows.append((f"cold start to first request ≤ {GOALS['first_request_s']} s",
                     f"{start['first_request_wall_s']:.2f} s wall, {start['first_request_cpu_s']:.2f} s CPU"
                     + (f"; its libraries alone {floor:.2f} s" if floor is not None else ""),
                     start["first_request_wall_s"] <= GOALS["first_request_s"]))
    one = result.get("fleet_one")
    for f in result.get("fleet", []):
        if one and f["nodes"] == one["nodes"] and f.get("default_settings"):
            ratio = f["check_all_s"] / one["check_s"]
            yardstick = f"its slowest node alone ({one['node']}, {one['state']})" if "state" in one \
                else "one node"
            rows.append((f"check --all, {f['nodes']} nodes, default settings ≤ "
                         f"{GOALS['fleet_ratio']:g} × {yardstick}",
                         f"{f['check_all_s']:.2f} s / {one['check_s']:.2f} s = {ratio:.2f}",
                         ratio <= GOALS["fleet_ratio"]))
    slack = result.get("slack")
    if slack and slack.get("ack"):
        p99 = slack["ack"]["p99_ms"]
        rows.append((f"ack p99 < {GOALS['ack_p99_ms']:g} ms ({slack['requests']} commands at 20/s, "
                     f"{slack['nodes']}-node sweep)",
                     f"p50 {slack['ack']['p50_ms']:.1f} ms, p99 {p99:.1f} ms",
                     p99 < GOALS["ack_p99_ms"]))
        idle = slack["rss_idle_kib"] / 1024
        rows.append((f"bot RSS idle < {GOALS['rss_idle_mib']:g} MiB (peak reported)",
                     f"idle {idle:.0f} MiB, peak {slack['rss_peak_kib'] / 1024:.0f} MiB",
                     idle < GOALS["rss_idle_mib"]))
    return rows
