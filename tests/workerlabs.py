"""Parallel test runs (pytest-xdist): how many workers, and labs of each worker's own.

Registered from tests/conftest.py via pytest_plugins.
- Workers: pyproject's addopts say `-n auto --dist loadgroup`; `auto` asks
  `pytest_xdist_auto_num_workers` below (see `default_workers` for the number and why).
  pytest-xdist itself clears `-n` inside a worker (remote.setup_config), so a worker never starts
  workers, and a pytest started from inside a worker (PYTEST_XDIST_WORKER inherited) gets 0 workers
  here, so even a test that runs pytest cannot multiply processes (tests/test_workers.py proves
  both). `-n0` (or `--pdb`, which makes `auto` 0) runs everything in this one process for
  debugging; `-n N` chooses N.
- Grouping: a test module whose module-scoped setup is expensive marks itself
  `pytestmark = [..., pytest.mark.xdist_group("<module>")]` so that one worker runs all of it (and
  the setup once); every other test goes to whichever worker is free.
- Labs: every worker brings up its own session labs. Before anything reads them (pytest_configure,
  before collection), a worker rewrites NETCHECK_LAB_PREFIX / NETCHECK_LAB_STATE in os.environ to
  `<prefix without its dash><worker id>-` (ncl- -> nclgw0-) and `<state dir>-<worker id>`. So every
  lab a test derives from lab.spec.prefix()/state_dir() (the edge lab, the demo's, teardown tests'
  own) and every subprocess a test starts (they inherit os.environ: `python -m bot.cli ...`,
  `netcheck lab ...`, the demo, `netcheck serve`) use the worker's. No worker prefix starts with
  another's (the id is followed by `-` or a test's letter tag, never a digit), nor with the
  run's own prefix (`ncl-` vs `nclgw0-`).
- Clean-up: the controller tears down whatever labs a worker left (a crashed worker runs no
  finalizer): when that worker goes down, and every worker's before the run (a killed earlier run)
  and after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from lab import netns, nodes, spec
from lab.cluster import STATE_FILE, Lab

WORKER_ENV = "PYTEST_XDIST_WORKER"
"""Set by pytest-xdist in each worker process (gw0, gw1, ...) and inherited by its subprocesses."""
WORKERS_ENV = "PYTEST_XDIST_AUTO_NUM_WORKERS"
"""pytest-xdist's own override of the `auto` worker count."""
WORKERS_PER_CPU = 2
MAX_WORKERS = 4
"""Lab tests mostly wait (pings, timeouts, sshd and subprocess start-up), so two workers per CPU
keep a 2-core machine busy; past four, workers only queue for the CPUs while each still pays for its
own labs (two session labs: sshd per node, an API stand-in, namespaces; ~0.3 GB a worker)."""
STATE_ROOT = Path("/run/netcheck-lab")
"""Where lab state dirs live unless NETCHECK_LAB_STATE says otherwise (the demo tests' labs too)."""


def default_workers(cpus: int | None = None) -> int:
    """Workers for `-n auto` (pyproject's default): two per CPU, at most MAX_WORKERS; none in a
    pytest started from inside a worker (it runs in its own process, never multiplies)."""
    if os.environ.get(WORKER_ENV):
        return 0
    if os.environ.get(WORKERS_ENV, "").isdigit():
        return int(os.environ[WORKERS_ENV])
    cpus = len(os.sched_getaffinity(0)) if cpus is None else cpus
    return max(1, min(MAX_WORKERS, WORKERS_PER_CPU * cpus))


def worker_location(worker: str, base_prefix: str, base_state: Path) -> tuple[str, Path]:
    """The lab prefix and state dir of `worker` in a run whose own are base_prefix / base_state."""
    return f"{base_prefix.rstrip('-')}{worker}-", Path(f"{base_state}-{worker}")


# ---- choosing the workers ------------------------------------------------------------------------

@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before pytest-xdist's own (CPU count)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    return default_workers()


# ---- each worker's labs ----------------------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.hasplugin("xdist"):  # pytest-xdist registers it itself
        config.addinivalue_line("markers", "xdist_group(name): tests of one group run on one xdist worker")
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker:  # (a pytest merely started from inside a worker inherits WORKER_ENV but is no worker)
        prefix, state = worker_location(worker, spec.prefix(), spec.state_dir())
        os.environ[spec.PREFIX_ENV], os.environ[spec.STATE_ENV] = prefix, str(state)
    elif _is_controller(config):
        sweep_worker_labs(spec.prefix(), spec.state_dir())


def _is_controller(config: pytest.Config) -> bool:
    """This process hands tests to xdist workers (and runs none itself)."""
    return (not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist")
            and config.getoption("dist", "no") != "no"
            and bool(config.getoption("tx", None)) and not config.getoption("collectonly"))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """A worker went down (finished, or crashed without running its finalizers): remove its labs."""
    worker = getattr(node, "workerinput", {}).get("workerid")
    if worker:
        sweep_worker_labs(spec.prefix(), spec.state_dir(), worker)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _is_controller(config):
        sweep_worker_labs(spec.prefix(), spec.state_dir())


def sweep_worker_labs(base_prefix: str, base_state: Path, worker: str | None = None) -> list[str]:
    """Tear down every lab of the workers of a run with base_prefix / base_state (or of one worker):
    their state dirs (with the processes in their pid files) and their namespaces (with the processes
    in them and their /etc/netns entries). Returns what it removed."""
    root = base_prefix.rstrip("-")
    worker_id = re.compile(rf"(?:{re.escape(root)}|{re.escape(base_state.name)}-)(gw\d+)(?!\d)")

    def ours(name: str) -> bool:
        found = worker_id.match(name)
        return found is not None and worker in (None, found.group(1))

    removed = []
    for parent in sorted({base_state.parent, STATE_ROOT}):
        for state in sorted(parent.iterdir()) if parent.is_dir() else []:
            lab_prefix = _lab_prefix(state)
            if lab_prefix is not None and ours(lab_prefix):
                Lab.teardown(lab_prefix, state)
            elif state.is_dir() and ours(state.name):  # a lab.json not written yet, or only pids
                for pid_file in (state / "pids").glob("*.pid"):
                    with contextlib.suppress(ValueError, OSError):
                        nodes.kill_pid(int(pid_file.read_text().strip() or 0))
                shutil.rmtree(state, ignore_errors=True)
            else:
                continue
            removed.append(str(state))
    for ns in netns.list_prefixed(root):
        if ours(ns):
            for pid in netns.pids_in(ns):
                nodes.kill_pid(pid)
            netns.delete(ns)
            shutil.rmtree(netns.NETNS_ETC_DIR / ns, ignore_errors=True)
            removed.append(f"netns {ns}")
    return removed


def _lab_prefix(state: Path) -> str | None:
    """The prefix in a lab state dir's lab.json (None: none readable)."""
    try:
        found = json.loads((state / STATE_FILE).read_text())["prefix"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if isinstance(found, str) and found else None
