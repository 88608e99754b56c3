"""`bench/run` (= `python -m bench`): the figures of docs/performance.md, measured in the lab.

For each lab size (workers 2, 9, 29 -> 3, 10, 30 nodes) it brings a lab up (own prefix/state from
NETCHECK_LAB_PREFIX/_STATE), adds latency on the router (bench/delay.py's Delayer), and measures:
one node (`netcheck check NODE --json` wall time, each probe alone with --probe, the sequential
baseline of bench/baseline.py) on the smallest lab; `netcheck check --all --json` on every size;
ack latency and RSS (bench/slackbench.py) on the largest; with `--dead-node`, `check --all` again on
every size with one worker `unreachable` (a dead node: InternalIP silent, NotReady, pods Pending).
Prints a table and writes JSON to
bench/results/<UTC timestamp>.json. Each lab is torn down, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.delay import Delayer

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
NETCHECK = [sys.executable, "-m", "bot.cli"]
STEP_TIMEOUT_S = 900.0
DEFAULT_PARALLEL = 4  # probes.settings.ProbeSettings.max_nodes_in_parallel's default


def machine() -> dict[str, Any]:
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {"nproc": os.cpu_count(), "mem_total_gib": round(int(mem) / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def ops(lab: Any, argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    env_argv = ["env", f"PYTHONPATH={REPO}", *argv]
    t0 = time.monotonic()
    done = lab.run_ops(env_argv, timeout=STEP_TIMEOUT_S)
    return time.monotonic() - t0, done


def ops_json(lab: Any, argv: list[str]) -> dict[str, Any]:
    _, done = ops(lab, argv)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{argv[:4]} printed no JSON (exit {done.returncode}): {done.stderr[-800:]}")
    return json.loads(lines[-1])


def probe_ids() -> list[str]:
    import probes.catalog  # noqa: F401  (registers)
    from probes.registry import default_registry

    return default_registry.ids()


def one_node(lab: Any, node: str, repeats: int) -> dict[str, Any]:
    walls = []
    for _ in range(repeats):
        wall, done = ops(lab, [*NETCHECK, "check", node, "--json"])
        if done.returncode not in (0, 1):
            raise RuntimeError(f"netcheck check {node} failed: {done.stderr[-800:]}")
        walls.append(wall)
    per_probe = {}
    for pid in probe_ids():
        wall, done = ops(lab, [*NETCHECK, "check", node, "--json", "--probe", pid])
        per_probe[pid] = round(wall, 3)
    base = ops_json(lab, [sys.executable, "-m", "bench.baseline", node])
    check_s = min(walls)
    slowest = max(per_probe, key=per_probe.__getitem__)
    return {"node": node, "check_s_runs": [round(w, 3) for w in walls], "check_s": round(check_s, 3),
            "per_probe_s": per_probe, "slowest_probe": slowest, "slowest_probe_s": per_probe[slowest],
            "baseline": base, "ratio_vs_baseline": round(check_s / base["baseline_s"], 3),
            "ratio_vs_slowest_probe": round(check_s / per_probe[slowest], 3),
            "load_avg_1m_after": round(os.getloadavg()[0], 2)}


def config_with_parallel(lab: Any, parallel: int) -> Path:
    """A copy of the lab's netcheck.yaml with probes.max_nodes_in_parallel set (the fleet's bound)."""
    import yaml

    data = yaml.safe_load(lab.config_file.read_text()) or {}
    data.setdefault("probes", {})["max_nodes_in_parallel"] = parallel
    path = lab.state / f"netcheck-bench-parallel-{parallel}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def fleet(lab: Any, parallel: int | None) -> dict[str, Any]:
    """`netcheck check --all` wall time; parallel=None keeps the configured bound (default 4)."""
    argv = [*NETCHECK, "check", "--all", "--json"]
    if parallel is not None:
        argv += ["--config", str(config_with_parallel(lab, parallel))]
    wall, done = ops(lab, argv)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"netcheck check --all failed: {done.stderr[-800:]}")
    reports = json.loads(done.stdout)
    return {"nodes": len(reports), "max_nodes_in_parallel": parallel or DEFAULT_PARALLEL,
            "load_avg_1m_after": round(os.getloadavg()[0], 2),
            "check_all_s": round(wall, 3), "slowest_report_s": max(r["duration_s"] for r in reports)}


def fleet_with_dead_node(lab: Any, parallel: int | None) -> dict[str, Any]:
    """`check --all` with the last worker unreachable: what one dead node costs the sweep."""
    import yaml

    dead = [n for n in lab.nodes if n.role != "control-plane"][-1].name
    connect_timeout = yaml.safe_load(lab.config_file.read_text()).get("ssh", {}).get("connect_timeout")
    argv = [*NETCHECK, "check", "--all", "--json"]
    if parallel is not None:
        argv += ["--config", str(config_with_parallel(lab, parallel))]
    lab.fault("unreachable", node=dead, on=True)
    try:
        wall, done = ops(lab, argv)
    finally:
        lab.fault("unreachable", node=dead, on=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"netcheck check --all failed: {done.stderr[-800:]}")
    reports = {r["node"]: r for r in json.loads(done.stdout)}
    healthy = [r["duration_s"] for node, r in reports.items() if node != dead]
    from probes.transports.ssh import SSHSettings

    return {"nodes": len(reports), "max_nodes_in_parallel": parallel or DEFAULT_PARALLEL,
            "dead_node": dead, "check_all_s": round(wall, 3),
            "dead_report_s": round(reports[dead]["duration_s"], 3),
            "slowest_healthy_report_s": round(max(healthy), 3),
            "ssh_connect_timeout_s": connect_timeout or SSHSettings().connect_timeout,
            "dead_findings": {f["probe"]: f["summary"] for f in reports[dead]["findings"]
                              if f["probe"] in ("ssh", "debug-pod")},
            "load_avg_1m_after": round(os.getloadavg()[0], 2)}


def with_lab(workers: int, delay_ms: float, body: Any) -> Any:
    from lab.cluster import Lab

    Lab.teardown()  # a leftover of an interrupted run with this prefix
    lab = Lab.up(workers=workers)
    try:
        with Delayer(lab.router_ns, delay_ms):
            return body(lab)
    finally:
        lab.down()


def table(result: dict[str, Any]) -> str:
    one, rows = result.get("one_node"), []
    rows.append(("delay per bridge crossing", f"{result['delay_ms']:g} ms each way"))
    if one:
        rows += _one_rows(one)
    for f in result["fleet"]:
        bound = f.get("max_nodes_in_parallel", DEFAULT_PARALLEL)
        rows.append((f"check --all, {f['nodes']} nodes, {bound} at once", f"{f['check_all_s']:.2f} s"))
    if one and result["fleet"]:
        biggest = max(f["nodes"] for f in result["fleet"])
        for f in (f for f in result["fleet"] if f["nodes"] == biggest):
            ratio = f["check_all_s"] / one["check_s"]
            rows.append((f"{biggest}-node sweep ({f.get('max_nodes_in_parallel', DEFAULT_PARALLEL)} at once) "
                         "/ one node (goal <= 2)", f"{ratio:.2f}"))
    for d in result.get("fleet_dead", []):
        rows.append((f"check --all, {d['nodes']} nodes, {d['max_nodes_in_parallel']} at once, one dead "
                     f"(connect timeout {d['ssh_connect_timeout_s']:g} s)",
                     f"{d['check_all_s']:.2f} s (dead node's report {d['dead_report_s']:.2f} s)"))
    rows += _slack_rows(result.get("slack"), ", each starting a check")
    rows += _slack_rows(result.get("slack_sweep_only"), ", help only, during the sweep")
    rows += _slack_rows(result.get("slack_idle"), ", help only, idle bot")
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _one_rows(one: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    rows.append((f"check {one['node']} (wall)", f"{one['check_s']:.2f} s"))
    rows.append(("sequential baseline", f"{one['baseline']['baseline_s']:.2f} s "
                 f"({one['baseline']['ssh_commands']} ssh + {one['baseline']['pod_commands']} pod cmds)"))
    rows.append(("ratio check/baseline (goal <= 0.3)", f"{one['ratio_vs_baseline']:.2f}"))
    rows.append((f"slowest probe alone ({one['slowest_probe']})", f"{one['slowest_probe_s']:.2f} s"))
    rows.append(("ratio check/slowest (goal <= 1.3)", f"{one['ratio_vs_slowest_probe']:.2f}"))
    return rows


def _slack_rows(s: dict[str, Any] | None, label: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if s:
        rows.append((f"ack p50 / p99 ({s['requests']} requests{label})",
                     f"{s['ack']['p50_ms']:.1f} / {s['ack']['p99_ms']:.1f} ms (goal p99 < 100)"))
    if s and not label.endswith("idle bot"):
        rss = f"{s['rss_idle_kib'] / 1024:.0f} / {s['rss_peak_kib'] / 1024:.0f} MiB"
        rows.append((f"bot RSS idle / peak in sweep{label}", rss))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--sizes", default="2,9,29", help="worker counts of the fleet labs")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the one-node check (min is kept)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--node", default=None, help="the one node to time (default: the lab's WiFi node)")
    parser.add_argument("--slack-references", action="store_true",
                        help="also time acks of `/netcheck help` during the sweep only, and with an idle bot")
    parser.add_argument("--fleet-parallel", default="",
                        help="extra probes.max_nodes_in_parallel bounds to time --all with, e.g. 10,30")
    parser.add_argument("--dead-node", action="store_true",
                        help="also time check --all with one worker unreachable (fleet stage)")
    parser.add_argument("--stages", default="one,fleet,slack",
                        help="subset of: one (first size), fleet (every size), slack (last size)")
    args = parser.parse_args(argv)
    stages = set(args.stages.split(","))
    if not stages <= {"one", "fleet", "slack"}:
        parser.error("--stages takes one, fleet, slack")
    if os.geteuid() != 0:
        print("bench/run needs root: it builds the lab (network namespaces)", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    bounds = [int(b) for b in args.fleet_parallel.split(",") if b]
    result: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": machine(), "delay_ms": args.delay_ms, "fleet": []}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"

    def save() -> None:  # after every stage, so an interrupted run keeps what it measured
        out.write_text(json.dumps(result, indent=1) + "\n")

    for i, workers in enumerate(sizes):
        first, last = i == 0, i == len(sizes) - 1
        if not ("fleet" in stages or (first and "one" in stages) or (last and "slack" in stages)):
            continue

        def body(lab: Any, first: bool = first, last: bool = last) -> None:
            if first and "one" in stages:
                node = args.node or lab.wifi_node.name
                print(f"[bench] one node ({node}), {len(lab.nodes)}-node lab", file=sys.stderr)
                result["one_node"] = one_node(lab, node, args.repeats)
                save()
            if "fleet" in stages:
                for parallel in [None, *bounds]:
                    print(f"[bench] check --all, {len(lab.nodes)} nodes, bound {parallel or 'default'}",
                          file=sys.stderr)
                    result["fleet"].append(fleet(lab, parallel))
                    save()
                for parallel in [None, *bounds] if args.dead_node else []:
                    print(f"[bench] check --all, {len(lab.nodes)} nodes, bound {parallel or 'default'}, "
                          "one dead", file=sys.stderr)
                    result.setdefault("fleet_dead", []).append(fleet_with_dead_node(lab, parallel))
                    save()
            if last and "slack" in stages:
                print(f"[bench] slack acks + RSS, {len(lab.nodes)} nodes", file=sys.stderr)
                slack = [sys.executable, "-m", "bench.slackbench", "--requests", str(args.requests)]
                result["slack"] = ops_json(lab, slack)
                save()
                if args.slack_references:
                    print("[bench] slack acks: sweep only, then idle", file=sys.stderr)
                    result["slack_sweep_only"] = ops_json(lab, [*slack, "--help-only"])
                    result["slack_idle"] = ops_json(lab, [*slack, "--help-only", "--no-sweep"])
                    save()

        with_lab(workers, args.delay_ms, body)
    print(table(result))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
