"""The fleet's CPU account (bench/cpu.py): /proc parsing, process trees by parent links, and the split.

Pure: a fake /proc directory written by the test, no timings. One test reads this machine's real
/proc for the test process's own tree (its CPU only grows).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import cpu


def _stat(pid: int, comm: str, ppid: int, utime: int, stime: int, cutime: int = 0, cstime: int = 0) -> str:
    # fields after the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime priority ...
    return (f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 10 0 0 0 "
            f"{utime} {stime} {cutime} {cstime} 20 0 1 0 100 1000 10\n")


def test_parse_pid_stat_counts_from_the_last_parenthesis() -> None:
    parsed = cpu.parse_pid_stat(42, _stat(42, "sshd: root@notty (x) y", 7, 100, 20, 3, 4))
    assert parsed == cpu.ProcStat(42, 7, 127, 24)


def test_parse_machine_stat_reads_the_aggregate_line() -> None:
    text = "cpu  10 1 5 100 2 3 4 6 0 0\ncpu0 5 0 2 50 1 1 2 3 0 0\nintr 1 2\n"
    assert cpu.parse_machine_stat(text) == {"user": 10, "nice": 1, "system": 5, "idle": 100, "iowait": 2,
                                            "irq": 3, "softirq": 4, "steal": 6}
    with pytest.raises(ValueError):
        cpu.parse_machine_stat("cpu0 1 2 3\n")


def test_tree_ticks_follows_parents_and_never_counts_a_process_twice() -> None:
    procs = {p.pid: p for p in [cpu.ProcStat(10, 1, 5), cpu.ProcStat(11, 10, 7), cpu.ProcStat(12, 11, 1),
                                cpu.ProcStat(20, 1, 100), cpu.ProcStat(21, 20, 50)]}
    taken: set[int] = set()
    assert cpu.tree_ticks(procs, [10], taken) == (13, 0)
    assert cpu.tree_ticks(procs, [11, 20, 999], taken) == (150, 0)  # 11's tree is taken; 999 is gone
    assert taken == {10, 11, 12, 20, 21}


def _fake_proc(root: Path, stats: dict[int, str], machine: str) -> Path:
    for pid, text in stats.items():
        (root / str(pid)).mkdir(parents=True, exist_ok=True)
        (root / str(pid) / "stat").write_text(text)
    (root / "stat").write_text(machine)
    return root


def test_split_charges_reaped_children_and_leaves_the_rest_to_the_machine(tmp_path: Path) -> None:
    tick = cpu.CLOCK_TICKS
    components = {"api": [100], "sshd": [200, 300]}
    before = cpu.snapshot(components, _fake_proc(tmp_path / "a", {
        100: _stat(100, "python3", 1, 1 * tick, 0),
        200: _stat(200, "sshd", 1, 0, 0),
        201: _stat(201, "sshd: root", 200, 1 * tick, 0),  # a session alive at the start
        300: _stat(300, "sshd", 1, 0, 0),
    }, f"cpu  {10 * tick} 0 0 {100 * tick} 0 0 0 0 0 0\n"))
    after = cpu.snapshot(components, _fake_proc(tmp_path / "b", {
        100: _stat(100, "python3", 1, 2 * tick, 0, tick // 2, 0),  # ran 1 s, reaped a 0.5 s child
        200: _stat(200, "sshd", 1, 0, 0, 2 * tick, 1 * tick),  # reaped the session (3 s, 1 s in the kernel)
        300: _stat(300, "sshd", 1, 0, 0),
        301: _stat(301, "sshd: root", 300, 1 * tick, 0),  # a new session
    }, f"cpu  {18 * tick} 0 {2 * tick} {102 * tick} 0 0 {1 * tick} {1 * tick} 0 0\n"))
    table = cpu.split(before, after, 6.0, 2, extra_s={"netcheck": 2.5}, extra_kernel_s={"netcheck": 0.5})
    assert table["components_s"] == {"netcheck": 2.5, "api": 1.5, "sshd": 3.0}
    assert table["components_in_kernel_s"] == {"netcheck": 0.5, "api": 0.0, "sshd": 1.0}
    assert table["capacity_s"] == 12.0
    assert table["machine_busy_s"] == 12.0 and table["machine_idle_s"] == 2.0
    assert table["kernel_interrupts_s"] == 1.0 and table["stolen_s"] == 1.0
    assert table["rest_of_machine_s"] == 12.0 - 1.0 - 1.0 - 7.0


def test_snapshot_of_this_process_tree_on_the_real_proc() -> None:
    first = cpu.snapshot({"me": [os.getpid()]})
    sum(i * i for i in range(200_000))  # some CPU of our own
    second = cpu.snapshot({"me": [os.getpid()]})
    assert second.components["me"] >= first.components["me"]
    assert second.processes["me"] >= 1
    assert set(second.machine) == set(cpu.STAT_COLUMNS)
    assert all(second.machine[k] >= first.machine[k] for k in cpu.STAT_COLUMNS)  # counters only grow


def test_report_shows_the_split_and_the_estimates() -> None:
    from bench import report

    split = {"wall_s": 20.0, "cpus": 2, "capacity_s": 40.0, "machine_busy_s": 39.0, "machine_idle_s": 1.0,
             "components_s": {"netcheck (its process tree)": 4.0, "API server stand-in": 5.0, "sshd": 8.0},
             "kernel_interrupts_s": 0.5, "stolen_s": 0.5, "rest_of_machine_s": 21.0}
    fleet = {"nodes": 30, "max_nodes_in_parallel": 32, "default_settings": True, "check_all_s": 20.0,
             "slowest_report_s": 18.0, "netcheck_cpu_s": 4.0, "cpu_split": split,
             "load_before": [3.0, 2.0, 1.0], "load_after": [4.0, 2.0, 1.0]}
    one = {"nodes": 30, "node": "n1", "check_s_runs": [5.0], "check_s": 5.0, "netcheck_cpu_s": 1.1,
           "load_after": [4.0, 2.0, 1.0]}
    result = {"fleet": [fleet], "fleet_one": one}
    assert report.fleet_estimate(result) == {"floor_s": 8.5, "netcheck_only_low_s": 5.0,
                                             "netcheck_only_high_s": 7.9, "netcheck_per_extra_node_s": 0.1}
    page = "\n".join(report._fleet(result) + report._misses(result))
    assert "| sshd | 8.00 |  | 20 % |" in page and "| idle | 1.00 |  | 2 % |" in page
    assert "| **capacity: 2 CPUs × 20.00 s wall** | 40.00 | | 100 % |" in page
    assert "netcheck used **4.00 s**" in page and "5.00–7.90 s, 1.00–1.58× one node" in page
