"""`bench/run` (= `python -m bench`): the performance goals, measured in the lab, each with ✔/✘.

For each lab size (workers, default 2 and 29 -> 3 and 30 nodes) it brings a lab up (own prefix/state
from NETCHECK_LAB_PREFIX/_STATE), adds latency on the router (bench/delay.py's Delayer: 20 ms each
way, 40 ms RTT between any two lab hosts) and measures, on the smallest lab:

- startup: the CLI's cold start to its first network request and the imports it spends that time
  on (bench/startup.py);
- one: `netcheck check NODE --json` on a healthy node and on the case-study node (best of
  --repeats), each probe alone (`--probe ID`), the sequential baseline (bench/baseline.py: one SSH
  session per node, commands one after another, `kubectl exec`-like pod execs) and the check's
  critical path;

on every size `netcheck check --all --json` with the default settings (and --fleet-parallel bounds),
on the largest a one-node check of a healthy node for the fleet ratio, and there the Slack stage
(bench/slackbench.py: 200 signed `/netcheck NODE` at 20/s during `/netcheck all`, acks, RSS, and a
py-spy profile of the bot, bench/profile.py). The machine's load average is recorded before and after
every stage: other processes on a shared machine slow every figure, so it is printed with them.

Every `netcheck` a stage starts (and the bot) runs in a virtualenv holding netcheck's dependencies
only, what a new user installs (bench/.venv-user, made again when pyproject.toml's dependencies
change), on the code of this checkout.

Prints the figures and the goals, writes bench/results/<UTC timestamp>.json and bench/latest.json
(docs/performance.md is generated from it: `python -m bench.report`). Labs are torn down, also on
error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cpu
from bench.delay import Delayer
from bench.goals import GOALS, goals
from bench.startup import COMPILED

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
LATEST = REPO / "bench" / "latest.json"
USER_VENV = REPO / "bench" / ".venv-user"
STEP_TIMEOUT_S = 900.0
PIP_TIMEOUT_S = 900.0
COMPILE_TIMEOUT_S = 120.0


def machine() -> dict[str, Any]:
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {"nproc": os.cpu_count(), "mem_total_gib": round(int(mem) / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def staged(result: dict[str, Any], key: str, measure: Callable[[], Any], *, append: bool = False) -> Any:
    """Run one stage with the load average before and after it stored beside its figures."""
    before = load()
    value = measure()
    if isinstance(value, dict):
        value["load_before"], value["load_after"] = before, load()
    if append:
        result.setdefault(key, []).append(value)
    else:
        result[key] = value
    return value


def ops(lab: Any, argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    env_argv = ["env", f"PYTHONPATH={REPO}", *argv]
    t0 = time.monotonic()
    done = lab.run_ops(env_argv, timeout=STEP_TIMEOUT_S)
    return time.monotonic() - t0, done


def ops_json(lab: Any, argv: list[str]) -> Any:
    _, done = ops(lab, argv)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{argv[:4]} printed no JSON (exit {done.returncode}): {done.stderr[-800:]}")
    return json.loads(lines[-1])


def probe_ids() -> list[str]:
    import probes.catalog  # noqa: F401  (registers)
    from probes.registry import default_registry

    return default_registry.ids()


def timed_check(lab: Any, node: str, netcheck: list[str]) -> tuple[float, dict[str, Any]]:
    wall, done = ops(lab, [*netcheck, "check", node, "--json"])
    if done.returncode not in (0, 1):
        raise RuntimeError(f"netcheck check {node} failed (exit {done.returncode}): {done.stderr[-800:]}")
    return wall, json.loads(done.stdout)


def critical_path(report_json: dict[str, Any]) -> dict[str, Any]:
    """The check's critical path and every finding's timing (own node and follow-ups)."""
    from bot.render_timings import critical_path as walk
    from probes.model import Report

    def strip(data: dict[str, Any]) -> dict[str, Any]:
        data = {k: v for k, v in data.items() if k != "verdict"}
        data["peers"] = [strip(p) for p in data.get("peers", [])]
        return data

    report = Report.model_validate(strip(report_json))
    rows = []
    for r in [report, *report.peers]:
        for f in r.findings:
            if f.timing is not None:
                rows.append({"node": r.node, "probe": f.probe, "status": f.status.value,
                             "queued_s": f.timing.queued_s, "started_s": f.timing.started_s,
                             "finished_s": f.timing.finished_s, "queued_for": f.timing.queued_for,
                             "waited": [f"{w.on} {w.seconds:.2f} s" for w in f.timing.waited]})
    spans = [s.model_dump() for s in report.timings.spans] if report.timings else []
    return {"steps": [{"from_s": s.from_s, "to_s": s.to_s, "what": s.what} for s in walk(report)],
            "findings": sorted(rows, key=lambda r: r["finished_s"], reverse=True), "spans": spans}


def one_node(lab: Any, node: str, state: str, repeats: int, netcheck: list[str]) -> dict[str, Any]:
    runs = [timed_check(lab, node, netcheck) for _ in range(repeats)]
    best_wall, best = min(runs, key=lambda r: r[0])
    per_probe = {}
    for pid in probe_ids():
        wall, done = ops(lab, [*netcheck, "check", node, "--json", "--probe", pid])
        per_probe[pid] = round(wall, 3)
    base = ops_json(lab, [sys.executable, "-m", "bench.baseline", node])
    slowest = max(per_probe, key=per_probe.__getitem__)
    return {"node": node, "state": state, "verdict": best["verdict"],
            "check_s_runs": [round(w, 3) for w, _ in runs], "check_s": round(best_wall, 3),
            "per_probe_s": per_probe, "slowest_probe": slowest, "slowest_probe_s": per_probe[slowest],
            "baseline": base, "ratio_vs_baseline": round(best_wall / base["baseline_s"], 3),
            "ratio_vs_slowest_probe": round(best_wall / per_probe[slowest], 3),
            "critical_path": critical_path(best)}


def config_with_parallel(lab: Any, parallel: int) -> Path:
    """A copy of the lab's netcheck.yaml with probes.max_nodes_in_parallel set (the fleet's bound)."""
    import yaml

    data = yaml.safe_load(lab.config_file.read_text()) or {}
    data.setdefault("probes", {})["max_nodes_in_parallel"] = parallel
    path = lab.state / f"netcheck-bench-parallel-{parallel}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def default_parallel() -> int:
    from probes.settings import ProbeSettings

    return ProbeSettings().max_nodes_in_parallel


TIME_FORMAT = "NETCHECK_BENCH_CPU %U %S %M"
"""/usr/bin/time's report of the netcheck process: user and system CPU seconds, peak RSS in KiB."""

NETCHECK_COMPONENT = "netcheck (its process tree)"


def lab_components(lab: Any, delay_pid: int | None) -> dict[str, list[int]]:
    """The lab's processes by the PIDs it recorded (<state>/pids), grouped as the fleet's CPU table
    shows them, and the delay program the bench started; never found by name across the machine."""
    groups: dict[str, list[int]] = {"API server stand-in (runs every pod exec)": [],
                                    "sshd of every node (with sessions and commands)": [],
                                    "delay program (bench/latency.py)": [delay_pid] if delay_pid else [],
                                    "rest of the lab (kubelets, DNS, node inits)": []}
    names = list(groups)
    for pid_file in sorted((lab.state / "pids").glob("*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except ValueError:
            continue
        group = (names[0] if pid_file.stem == "apiserver" else
                 names[1] if pid_file.stem.startswith("sshd-") else names[3])
        groups[group].append(pid)
    return groups


def timed_cpu(lab: Any, argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str], dict[str, float]]:
    """Run netcheck under /usr/bin/time: wall, the process, and its tree's CPU seconds and peak RSS."""
    wall, done = ops(lab, ["/usr/bin/time", "-f", TIME_FORMAT, *argv])
    fields = next((line.split()[1:] for line in done.stderr.splitlines()
                   if line.startswith("NETCHECK_BENCH_CPU")), None)
    usage = {"cpu_s": float(fields[0]) + float(fields[1]), "system_s": float(fields[1]),
             "rss_mib": int(fields[2]) / 1024} if fields else {}
    return wall, done, usage


def fleet(lab: Any, parallel: int | None, netcheck: list[str], delay_pid: int | None = None,
          ) -> dict[str, Any]:
    """`netcheck check --all` wall time and where the machine's CPU went meanwhile: netcheck's process
    tree, the lab's API server, sshds, delay program and other processes, the rest of the machine
    (bench/cpu.py); the lab shares the machine with netcheck, the table tells their shares apart.
    parallel=None keeps the default bound."""
    argv = [*netcheck, "check", "--all", "--json"]
    if parallel is not None:
        argv += ["--config", str(config_with_parallel(lab, parallel))]
    components = lab_components(lab, delay_pid)
    before = cpu.snapshot(components)
    wall, done, usage = timed_cpu(lab, argv)
    after = cpu.snapshot(components)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"netcheck check --all failed: {done.stderr[-800:]}")
    reports = json.loads(done.stdout)
    extra = {NETCHECK_COMPONENT: usage["cpu_s"]} if usage else {}
    extra_kernel = {NETCHECK_COMPONENT: usage["system_s"]} if usage else {}
    return {"nodes": len(reports), "max_nodes_in_parallel": parallel or default_parallel(),
            "default_settings": parallel is None, "check_all_s": round(wall, 3),
            "slowest_report_s": max(r["duration_s"] for r in reports),
            "netcheck_cpu_s": round(usage["cpu_s"], 2) if usage else None,
            "netcheck_peak_rss_mib": round(usage["rss_mib"]) if usage else None,
            "cpu_split": cpu.split(before, after, wall, os.cpu_count() or 1, extra_s=extra,
                                   extra_kernel_s=extra_kernel)}


def fleet_one(lab: Any, nodes: dict[str, str], netcheck: list[str]) -> dict[str, Any]:
    """One-node checks on the fleet's own lab, each node of `nodes` (name -> state) alone: what the
    sweep is compared with. A sweep cannot end before its slowest node's check does, so the slowest
    of them alone is the yardstick (the case-study node, whose failing probes wait for their
    timeouts); the others are reported beside it. Each with its CPU (the estimate of a sweep that only
    netcheck's CPU would slow needs it)."""
    measured = []
    for node, state in nodes.items():
        runs = []
        for _ in range(2):
            wall, done, usage = timed_cpu(lab, [*netcheck, "check", node, "--json"])
            if done.returncode not in (0, 1):
                raise RuntimeError(f"netcheck check {node} failed (exit {done.returncode}): "
                                   f"{done.stderr[-800:]}")
            runs.append((wall, usage.get("cpu_s")))
        best = min(runs, key=lambda r: r[0])
        measured.append({"nodes": len(lab.nodes), "node": node, "state": state,
                         "check_s_runs": [round(w, 3) for w, _ in runs], "check_s": round(best[0], 3),
                         "netcheck_cpu_s": round(best[1], 2) if best[1] is not None else None})
    slowest = max(measured, key=lambda m: m["check_s"])
    return {**slowest, "others": [m for m in measured if m is not slowest]}


def ensure_user_venv(path: Path) -> str:
    """A virtualenv with netcheck's dependencies only (no test extras), what a new user installs;
    made again when pyproject.toml's dependencies changed. Every `netcheck` the stages start runs
    on it, the code coming from this checkout (PYTHONPATH): the development venv's test extras would
    add imports a user does not have (structlog loads `rich` for its tracebacks when it is there)."""
    python = path / "bin" / "python"
    stamp = path / "netcheck-dependencies.txt"
    wanted = json.dumps(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        print(f"[bench] making {path} (netcheck's dependencies, no test extras)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], check=True,
                       timeout=PIP_TIMEOUT_S)
        stamp.write_text(wanted)
    return str(python)


def ensure_py_spy() -> None:
    """py-spy for the Slack stage's profile: a bench tool, installed here, not a netcheck dependency."""
    if not (Path(sys.executable).parent / "py-spy").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True,
                       timeout=PIP_TIMEOUT_S)


def with_lab(workers: int, delay_ms: float, body: Callable[[Any, Delayer], None]) -> None:
    from lab.cluster import Lab

    Lab.teardown()  # a leftover of an interrupted run with this prefix
    lab = Lab.up(workers=workers)
    try:
        with Delayer(lab.router_ns, delay_ms) as delayer:
            body(lab, delayer)
    finally:
        lab.down()


def table(result: dict[str, Any]) -> str:
    lines = [f"delay {result['delay_ms']:g} ms each way on the router (40 ms RTT); machine "
             f"{result['machine']['nproc']} CPUs, load average (1/5/15 min) at start "
             f"{'/'.join(str(x) for x in result['load_at_start'])}"]
    for one in result.get("one_node", []):
        b = one["baseline"]
        lines.append(f"check {one['node']} ({one['state']}, {one['verdict']}): best {one['check_s']:.2f} s "
                     "of "
                     f"{one['check_s_runs']}; baseline {b['baseline_s']:.2f} s ({b['ssh_commands']} node "
                     f"commands over {b['ssh_sessions']} ssh sessions, {b['pod_commands']} pod execs, pod "
                     f"start {b['baseline_pod_start_s']:.2f} s); load after {one['load_after']}")
    start = result.get("startup")
    if start:
        top = ", ".join(f"{p['package']} {p['ms']:.0f}" for p in start["imports_by_package"][:6])
        lines.append(f"cold start: first request {start['first_request_wall_s']:.2f} s (runs "
                     f"{start['wall_s_runs']}), imports {start['imports_ms_total']:.0f} ms: {top} ms")
    for f in result.get("fleet", []):
        lines.append(f"check --all, {f['nodes']} nodes, {f['max_nodes_in_parallel']} at once: "
                     f"{f['check_all_s']:.2f} s (slowest report {f['slowest_report_s']:.2f} s, netcheck's "
                     f"own CPU {f.get('netcheck_cpu_s')} s); load after {f['load_after']}")
        split = f.get("cpu_split")
        if split:
            parts = ", ".join(f"{name} {seconds:.2f}" for name, seconds in split["components_s"].items())
            lines.append(f"  CPU s in it: {parts}; kernel interrupts {split['kernel_interrupts_s']:.2f}, "
                         f"stolen {split['stolen_s']:.2f}, "
                         f"rest of the machine {split['rest_of_machine_s']:.2f}, "
                         f"idle {split['machine_idle_s']:.2f}, of {split['capacity_s']:.2f} "
                         f"({split['cpus']} CPUs x wall)")
    slack = result.get("slack")
    if slack and slack.get("profile") and slack["profile"].get("self_all"):
        top = ", ".join(f"{e['function']} {e['pct']}%" for e in slack["profile"]["self_all"][:5])
        samples = slack["profile"]["samples"]
        lines.append(f"bot profile during the burst (self time, {samples} samples): {top}")
    lines.append("")
    width = max((len(g) for g, _, _ in goals(result)), default=0)
    for goal, measured, met in goals(result):
        mark = "✔" if met else "✘"
        lines.append(f"{mark} {goal:<{width}}  {measured}")
    if max(result["load_at_start"][0], result.get("load_at_end", [0])[0]) > result["machine"]["nproc"]:
        lines.append(f"note: the load average exceeded the {result['machine']['nproc']} CPUs during this "
                     "run "
                     "(other processes on the machine): wall times are longer than on an idle machine")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--sizes", default="2,29", help="worker counts of the labs (first: one node)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the one-node check (best is kept)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--fleet-parallel", default="",
                        help="extra probes.max_nodes_in_parallel bounds to time --all with, e.g. 4,10")
    parser.add_argument("--stages", default="startup,one,fleet,slack",
                        help="subset of: startup, one (first size), fleet (every size), slack (last size)")
    parser.add_argument("--user-venv", type=Path, default=USER_VENV,
                        help="virtualenv with netcheck's dependencies only, that every netcheck runs on")
    parser.add_argument("--no-latest", action="store_true", help="do not overwrite bench/latest.json")
    args = parser.parse_args(argv)
    stages = set(args.stages.split(","))
    if not stages <= {"startup", "one", "fleet", "slack"}:
        parser.error("--stages takes startup, one, fleet, slack")
    if os.geteuid() != 0:
        print("bench/run needs root: it builds the lab (network namespaces)", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    bounds = [int(b) for b in args.fleet_parallel.split(",") if b]
    # every `netcheck` the stages start runs from this checkout: give it the bytecode an install
    # has (pip compiles at install), or each start compiles netcheck's modules from source whenever
    # PYTHONDONTWRITEBYTECODE is set (bench/startup.py does the same for the cold start)
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(REPO / p) for p in COMPILED)],
                   check=True, timeout=COMPILE_TIMEOUT_S)
    user_python = ensure_user_venv(args.user_venv)
    netcheck = [user_python, "-m", "bot.cli"]
    if "slack" in stages:
        ensure_py_spy()
    result: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": machine(), "delay_ms": args.delay_ms, "load_at_start": load(),
                              "stages": sorted(stages), "goals": GOALS}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"

    def save() -> None:  # after every stage, so an interrupted run keeps what it measured
        result["load_at_end"] = load()
        out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")

    for i, workers in enumerate(sizes):
        first, last = i == 0, i == len(sizes) - 1
        if not ("fleet" in stages or (first and stages & {"one", "startup"}) or (last and "slack" in stages)):
            continue

        def body(lab: Any, delayer: Delayer, first: bool = first, last: bool = last) -> None:
            healthy, broken = lab.wired_worker.name, lab.wifi_node.name
            if first and "startup" in stages:
                print(f"[bench] cold start, {len(lab.nodes)}-node lab", file=sys.stderr)
                staged(result, "startup", lambda: ops_json(
                    lab, [sys.executable, "-m", "bench.startup", healthy, "--python", str(user_python)]))
                save()
            if first and "one" in stages:
                for node, state in ((healthy, "healthy"), (broken, "case study")):
                    print(f"[bench] one node ({node}, {state}), {len(lab.nodes)}-node lab", file=sys.stderr)
                    staged(result, "one_node",
                           lambda n=node, s=state: one_node(lab, n, s, args.repeats, netcheck), append=True)
                    save()
            if "fleet" in stages:
                for parallel in [None, *bounds]:
                    print(f"[bench] check --all, {len(lab.nodes)} nodes, bound {parallel or 'default'}",
                          file=sys.stderr)
                    staged(result, "fleet", lambda p=parallel: fleet(lab, p, netcheck, delayer.pid),
                           append=True)
                    save()
                if last:
                    staged(result, "fleet_one", lambda: fleet_one(
                        lab, {healthy: "healthy", broken: "case study"}, netcheck))
                    save()
            if last and "slack" in stages:
                print(f"[bench] slack acks + RSS + profile, {len(lab.nodes)} nodes", file=sys.stderr)
                slack = [sys.executable, "-m", "bench.slackbench", "--requests", str(args.requests),
                         "--python", user_python,
                         "--profile", str(RESULTS_DIR / f"{out.stem}-bot-profile.txt")]
                staged(result, "slack", lambda: ops_json(lab, slack))
                save()

        with_lab(workers, args.delay_ms, body)
    save()
    print(table(result))
    if not args.no_latest:
        LATEST.write_text(out.read_text())
    print(f"\nJSON: {out}" + ("" if args.no_latest else f" (and {LATEST})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
