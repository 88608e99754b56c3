"""The suite's parallel workers (tests/workerlabs.py) can never multiply: pytest-xdist workers never
start workers, and a pytest started from inside a worker runs in its own one process.

Each case runs a real `python -m pytest` over a tiny test directory with this repository's pytest
settings (pyproject's addopts: `-n auto --dist loadgroup`) and the workerlabs plugin, in a process
group of its own. Every pytest process of that run records itself (pid, parent, worker id) when it
configures, and a watchdog counts the run's whole process tree while it runs; a run that grows past
the bound is killed at once (its own process group, which this test created) and fails the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import spec
from tests import workerlabs

REPO = Path(__file__).resolve().parents[1]
INNER_TESTS = 6
RUN_TIMEOUT_S = 120.0
WATCH_INTERVAL_S = 0.05
SLACK_PROCESSES = 3
"""Processes beyond pytest's own a run may have for a moment (execnet's popen bootstrap)."""

INNER_CONFTEST = '''
import json, os

def pytest_configure(config):
    record = {"pid": os.getpid(), "ppid": os.getppid(),
              "worker": getattr(config, "workerinput", {}).get("workerid"),
              "workers": config.getoption("numprocesses")}
    with open(os.environ["RECORD_FILE"], "a") as out:
        out.write(json.dumps(record) + "\\n")
'''

INNER_TEST = '''
import os

def test_ran(n):
    with open(os.environ["RAN_FILE"], "a") as out:
        out.write(f"{os.getpid()}\\n")

def pytest_generate_tests(metafunc):
    metafunc.parametrize("n", range(int(os.environ["INNER_TESTS"])))
'''

INNER_GROUPED_TEST = '''
import os
import pytest

pytestmark = pytest.mark.xdist_group("one-worker")

@pytest.mark.parametrize("n", range(int(os.environ["INNER_TESTS"])))
def test_grouped(n):
    with open(os.environ["GROUPED_FILE"], "a") as out:
        out.write(f"{os.getpid()}\\n")
'''


def descendants(root: int) -> set[int]:
    """Every live process below `root` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def run_inner(tmp_path: Path, env_extra: dict[str, str],
              max_processes: int) -> tuple[list[dict], list[int], int]:
    """Run the tiny suite; return the pytest processes' records, the pids that ran its tests and the
    largest process tree seen (the pytest process itself included)."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(INNER_CONFTEST)
    (suite / "test_tiny.py").write_text(INNER_TEST)
    (suite / "test_grouped.py").write_text(INNER_GROUPED_TEST)
    records, ran = tmp_path / "configured.jsonl", tmp_path / "ran.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env |= {"RECORD_FILE": str(records), "RAN_FILE": str(ran), "INNER_TESTS": str(INNER_TESTS),
            "GROUPED_FILE": str(tmp_path / "grouped.txt"),
            # the plugin sweeps its workers' labs: give it a prefix of its own, with nothing under it
            spec.PREFIX_ENV: spec.prefix().rstrip("-") + "x-", spec.STATE_ENV: str(tmp_path / "state"),
            **env_extra}
    argv = [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(suite),
            "-p", "tests.workerlabs", "-p", "no:cacheprovider", "-q", str(suite)]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    largest, deadline = 1, time.monotonic() + RUN_TIMEOUT_S
    try:
        while proc.poll() is None:
            largest = max(largest, 1 + len(descendants(proc.pid)))
            if largest > max_processes or time.monotonic() > deadline:
                break
            time.sleep(WATCH_INTERVAL_S)  # a watchdog's polling interval, not a wait for a result
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the group start_new_session made for this run
        output = proc.communicate(timeout=RUN_TIMEOUT_S)[0]
    assert largest <= max_processes, f"the run grew to {largest} processes:\n{output[-3000:]}"
    assert proc.returncode == 0, output[-3000:]
    configured = [json.loads(line) for line in records.read_text().splitlines()]
    return configured, [int(pid) for pid in ran.read_text().split()], largest


def test_workers_never_start_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run with the repo's settings: one controller and exactly default_workers() workers, all its
    children; no worker configures a worker count or has a child pytest."""
    monkeypatch.delenv(workerlabs.WORKER_ENV, raising=False)  # as in run_inner (this may be a worker)
    workers = workerlabs.default_workers()
    configured, ran, largest = run_inner(tmp_path, {}, max_processes=1 + workers + SLACK_PROCESSES)
    controllers = [r for r in configured if r["worker"] is None]
    assert len(controllers) == 1, configured
    controller = controllers[0]
    in_workers = [r for r in configured if r["worker"] is not None]
    assert sorted(r["worker"] for r in in_workers) == [f"gw{i}" for i in range(workers)]
    assert all(r["ppid"] == controller["pid"] for r in in_workers), configured
    assert all(not r["workers"] for r in in_workers), configured  # xdist cleared -n in each worker
    assert len(ran) == INNER_TESTS
    assert set(ran) <= {r["pid"] for r in in_workers}  # none ran in the controller
    assert largest >= 1 + workers  # the watchdog saw the workers (it really counted the tree)
    grouped = (tmp_path / "grouped.txt").read_text().split()
    assert len(grouped) == INNER_TESTS and len(set(grouped)) == 1, grouped  # xdist_group: one worker


def test_pytest_inside_a_worker_runs_in_one_process(tmp_path: Path) -> None:
    """A pytest started by a test on a worker inherits PYTEST_XDIST_WORKER: `-n auto` gives it no
    workers, so it runs its tests itself and starts no process."""
    configured, ran, largest = run_inner(tmp_path, {workerlabs.WORKER_ENV: "gw0"}, max_processes=1)
    assert [r["worker"] for r in configured] == [None]
    assert set(ran) == {configured[0]["pid"]} and len(ran) == INNER_TESTS
    assert largest == 1


@pytest.mark.parametrize("cpus,expected", [(1, 2), (2, 4), (16, workerlabs.MAX_WORKERS)])
def test_default_workers_follow_cpus(cpus: int, expected: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(workerlabs.WORKER_ENV, raising=False)
    monkeypatch.delenv(workerlabs.WORKERS_ENV, raising=False)
    assert workerlabs.default_workers(cpus) == expected


def test_worker_count_override_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(workerlabs.WORKER_ENV, raising=False)
    monkeypatch.setenv(workerlabs.WORKERS_ENV, "3")
    assert workerlabs.default_workers(2) == 3
    monkeypatch.setenv(workerlabs.WORKER_ENV, "gw1")  # inside a worker: never more processes
    assert workerlabs.default_workers(2) == 0
