"""bench/ reading its own measurements: py-spy's collapsed stacks (bench/profile.py), importtime
lines (bench/startup.py), the goals' ✔/✘ (bench/goals.py), and docs/performance.md generated from
bench/latest.json (bench/report.py) — the page and the JSON must not drift apart."""

from __future__ import annotations

import json

from bench import report
from bench.goals import GOALS, goals
from bench.profile import top_entries
from bench.startup import imports_by_package

COLLAPSED = """\
<module> (bot/cli.py:120);run (asyncio/runners.py:118);_run_once (asyncio/base_events.py:1922);\
_run (asyncio/events.py:80);events_app.<locals>.events (/work/x/bot/slack/http.py:90);\
dispatch (slack_bolt/app/async_app.py:600) 30
<module> (bot/cli.py:120);run (asyncio/runners.py:118);_run_once (asyncio/base_events.py:1922);\
_run (asyncio/events.py:80);read (asyncssh/connection.py:900) 60
<module> (bot/cli.py:120);run (asyncio/runners.py:118);select (selectors.py:468) 10
"""


def test_profile_top_entries_split_the_ack_handler_from_the_rest() -> None:
    top = top_entries(COLLAPSED)
    assert top["samples"] == 100 and top["samples_in_ack_handler"] == 30
    assert top["self_all"][0] == {"function": "read (connection.py)", "samples": 60, "pct": 60.0}
    assert top["self_in_ack"] == [{"function": "dispatch (async_app.py)", "samples": 30, "pct": 100.0}]
    inclusive = {e["function"]: e["pct"] for e in top["inclusive_in_ack"]}
    assert inclusive == {"events_app.<locals>.events (slack/http.py)": 100.0,
                         "dispatch (async_app.py)": 100.0}


def test_profile_tells_the_bot_loop_from_the_engine_loop_and_worker_threads() -> None:
    engine = ("Thread._bootstrap (threading.py:1002);EngineLoop._main (/x/bot/ops/engine_loop.py:150);"
              "_run_once (asyncio/base_events.py:1922);send_packet (asyncssh/connection.py:1200) 50")
    worker = ("Thread._bootstrap (threading.py:1002);_worker (concurrent/futures/thread.py:83);"
              "render_png (/x/bot/picture/draw.py:211);_encode_tile (PIL/ImageFile.py:640) 20")
    top = top_entries(COLLAPSED + engine + "\n" + worker + "\n")
    assert top["threads"] == {"bot loop": {"samples": 100, "pct": 58.8},
                              "engine loop": {"samples": 50, "pct": 29.4},
                              "worker threads": {"samples": 20, "pct": 11.8}}
    assert top["self_bot_loop"][0] == {"function": "read (connection.py)", "samples": 60, "pct": 35.3}
    assert "send_packet (connection.py)" not in {e["function"] for e in top["self_bot_loop"]}


def test_imports_are_summed_per_top_level_package() -> None:
    text = "\n".join([
        "import time: self [us] | cumulative | imported package",
        "import time:      2000 |       2000 |     kubernetes.config",
        "import time:       500 |       2500 |   kubernetes",
        "import time:      1000 |       1000 |   probes.model",
        "import time:      3000 |       4000 | bot.cli",
    ])
    assert imports_by_package(text) == [
        {"package": "netcheck (bot)", "ms": 3.0}, {"package": "kubernetes", "ms": 2.5},
        {"package": "netcheck (probes)", "ms": 1.0}]


def test_goals_are_judged_against_their_bounds() -> None:
    one = {"node": "n1", "state": "healthy", "check_s": 3.0, "baseline": {"baseline_s": 12.0},
           "ratio_vs_baseline": 0.25, "ratio_vs_slowest_probe": 1.5, "slowest_probe": "pod-api",
           "slowest_probe_s": 2.0}
    result = {"one_node": [one], "startup": {"first_request_wall_s": 0.5, "first_request_cpu_s": 0.4},
              "fleet": [{"nodes": 30, "default_settings": True, "check_all_s": 5.0}],
              "fleet_one": {"nodes": 30, "check_s": 3.0},
              "slack": {"requests": 200, "nodes": 30, "ack": {"p50_ms": 10.0, "p99_ms": 99.0},
                        "rss_idle_kib": 130 * 1024, "rss_peak_kib": 140 * 1024}}
    assert [met for _, _, met in goals(result)] == [True, False, False, True, True, False]
    assert GOALS["ack_p99_ms"] == 100.0


def test_performance_page_is_generated_from_latest_json() -> None:
    latest = json.loads(report.LATEST.read_text())
    assert report.PAGE.read_text() == report.render(latest), "run: python -m bench.report"
    block = report.readme_block(latest)
    assert block in report.README.read_text(), "run: python -m bench.report"
    assert "| ack p99" in block and block.count("| ✔ |") + block.count("| ✘ |") == len(goals(latest))


def test_slack_section_and_note_read_a_gil_profile() -> None:
    engine = ("Thread._bootstrap (threading.py:1002);EngineLoop._main (/x/bot/ops/engine_loop.py:150);"
              "send_packet (asyncssh/connection.py:1200) 50")
    slack = {"requests": 200, "nodes": 30, "answered": 200,
             "ack": {"p50_ms": 40.0, "p99_ms": 300.0, "max_ms": 320.0},
             "rss_idle_kib": 80 * 1024, "rss_peak_kib": 150 * 1024, "load_after": [9.0, 8.0, 7.0],
             "profile": top_entries(COLLAPSED + engine + "\n")}
    section = "\n".join(report._slack(slack))
    assert "samples of the thread holding the GIL" in section
    assert "by thread: bot loop 66.7 %, engine loop 33.3 %" in section
    note = "\n".join(report._misses({"slack": slack}))
    assert "the ack handler holds the GIL in 20.0 % of the samples, the engine's loop in 33.3 %" in note


def test_cold_start_text_follows_the_run() -> None:
    """A run with the byte-compiled checkout and without the synchronous kubernetes side says so; an
    older run's figures (oauthlib in the table) keep the words that explain them."""
    latest = json.loads(report.LATEST.read_text())
    start = {**latest["startup"], "first_request_wall_s": 0.5, "bytecode_compiled": True,
             "imports_by_package": [{"package": "aiohttp", "ms": 150.0},
                                    {"package": "netcheck (probes)", "ms": 90.0}]}
    page = report.render({**latest, "startup": start})
    assert "netcheck's modules byte-compiled first as an install does: **0.50 s** wall" in page
    assert "is not imported (probes/transports/kubeaio.py)" in page
    assert "oauthlib, urllib3) before" not in page
    older = {k: v for k, v in start.items() if k != "bytecode_compiled"}
    older["imports_by_package"] = [{"package": "kubernetes", "ms": 458.0},
                                   {"package": "oauthlib", "ms": 148.0}]
    old = report.render({**latest, "startup": older})
    assert "oauthlib, urllib3) before `kubernetes.aio` can load" in old and "byte-compiled" not in old


def test_the_libraries_floor_is_taken_out_where_a_goal_is_missed() -> None:
    """With the libraries' floor measured, the cold start's note and the one-node note say how much of
    the time it is and what remains; the library-module list drops netcheck's, the standard library's,
    the Kubernetes client's (kubeaio loads it) and asyncssh's (its own thread) modules."""
    from bench.startup import library_modules

    latest = json.loads(report.LATEST.read_text())
    start = {**latest["startup"], "first_request_wall_s": 0.7, "libraries_only_wall_s": 0.55,
             "libraries_only_modules": 180}
    one = {**latest["one_node"][0], "check_s": 2.0, "ratio_vs_baseline": 0.4,
           "baseline": {**latest["one_node"][0]["baseline"], "baseline_s": 5.0}}
    page = report.render({**latest, "startup": start, "one_node": [one]})
    assert "the 180 third-party modules" in page and "**0.55 s** (median of" in page
    assert "the libraries alone take **0.55 s** (the floor above, measured), more than the goal" in page
    assert "Without it the check takes 1.45 s, 0.29× the sequential run." in page
    assert "its libraries alone 0.55 s" in page  # the goals table
    importtime = "\n".join(
        f"import time:       10 |         10 | {name}"
        for name in ("aiohttp.hdrs", "bot.cli", "json", "kubernetes.aio.client", "asyncssh.misc", "yaml"))
    assert library_modules(importtime) == ["aiohttp.hdrs", "yaml", "probes.transports.kubeaio"]


def test_the_sweep_is_judged_against_its_slowest_node_alone() -> None:
    """The fleet goal's yardstick is the slowest of the nodes checked alone on the fleet's lab (a sweep
    cannot end before it); the healthy node is shown beside it."""
    healthy = {"nodes": 30, "node": "n1", "state": "healthy", "check_s_runs": [1.9, 2.0], "check_s": 1.9,
               "netcheck_cpu_s": 0.9}
    slowest = {**healthy, "node": "n2", "state": "case study", "check_s": 6.0, "others": [healthy]}
    result = {"fleet": [{"nodes": 30, "default_settings": True, "check_all_s": 11.4,
                         "max_nodes_in_parallel": 32, "slowest_report_s": 9.0, "netcheck_cpu_s": 4.0,
                         "load_after": [1.0, 1.0, 1.0]}],
              "fleet_one": {**slowest, "load_after": [1.0, 1.0, 1.0]}}
    [(goal, measured, met)] = goals(result)
    assert goal.endswith("≤ 2 × its slowest node alone (n2, case study)")
    assert (measured, met) == ("11.40 s / 6.00 s = 1.90", True)
    section = "\n".join(report._fleet(result))
    assert "`check n2`, case study, the goal's yardstick" in section and "`check n1`, healthy)" in section
