"""CLI cold start: from process start to the first network request, and which imports it is made of.

Run inside the lab's ops namespace by bench/run (`python -m bench.startup NODE --python PY`): PY is
the interpreter of a virtualenv with netcheck's dependencies only (no test extras: what `pip install`
gives a new user; bench/run makes it), the code is this checkout (PYTHONPATH). Each run starts
`PY -c HOOK check NODE --json`: the audit hook (sys.addaudithook, the interpreter's own event for
every socket connect) notes the first connect to a non-loopback address — the API server — with the
wall time since this process spawned it and the child's CPU time, then ends the child. One more run
with `python -X importtime` attributes the import time before that connect to top-level packages,
and the third-party modules imported before it are imported again in a process of their own, with
no netcheck code: the libraries' floor under the cold start.
The checkout's modules are byte-compiled first (`compileall`), as pip does when it installs a package:
without it every run would compile netcheck's modules from source again wherever
PYTHONDONTWRITEBYTECODE is set, which no installed netcheck does. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 60.0
HOOK = """
import os, resource, sys, time
spawned = float(os.environ["NETCHECK_BENCH_SPAWNED"])
def first_connect(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple) and not str(args[1][0]).startswith("127."):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        sys.stderr.write("NETCHECK_BENCH_FIRST_CONNECT %.4f %.4f\\n" % (
            time.time() - spawned, usage.ru_utime + usage.ru_stime))
        sys.stderr.flush()
        os._exit(0)
sys.addaudithook(first_connect)
import runpy
sys.argv = ["netcheck", *sys.argv[1:]]
runpy.run_module("bot.cli", run_name="__main__", alter_sys=True)
"""
_MARK = re.compile(r"NETCHECK_BENCH_FIRST_CONNECT ([0-9.]+) ([0-9.]+)")
_IMPORT = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
OURS = ("bot", "probes", "fixes", "lab", "bench")
COMPILED = ("bot", "probes", "fixes")
"""The checkout's packages `netcheck check` imports: compiled to bytecode before the runs."""


def one_run(python: str, node: str, *, importtime: bool = False) -> tuple[float, float, str]:
    """(wall s, cpu s) to the first network request, and stderr."""
    argv = [python, *(["-X", "importtime"] if importtime else []), "-c", HOOK, "check", node, "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "NETCHECK_BENCH_SPAWNED": repr(time.time())}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    found = _MARK.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no network request seen (exit {done.returncode}): {done.stderr[-600:]}")
    return float(found.group(1)), float(found.group(2)), done.stderr


def imports_by_package(importtime_stderr: str) -> list[dict[str, Any]]:
    """Self time of every module imported, summed per top-level package, largest first."""
    totals: dict[str, int] = defaultdict(int)
    for line in importtime_stderr.splitlines():
        m = _IMPORT.match(line)
        if m:
            top = m.group(4).split(".")[0]
            totals["netcheck (" + top + ")" if top in OURS else top] += int(m.group(1))
    ordered = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)
    return [{"package": name, "ms": round(us / 1000, 1)} for name, us in ordered]


def library_modules(importtime_stderr: str) -> list[str]:
    """The third-party modules the CLI imported (or tried: optional ones a library looks for) before
    its first request, in import order: every module of the `-X importtime` run (it ends at that
    request) that is neither netcheck's nor the standard library's. The Kubernetes client's are left
    to `probes.transports.kubeaio`, which loads the asyncio client the way netcheck does (without the
    package's synchronous side); asyncssh's import has begun in a thread of its own by then, for the
    SSH connection, and is not counted."""
    names: list[str] = []
    for line in importtime_stderr.splitlines():
        m = _IMPORT.match(line)
        if m:
            name = m.group(4)
            top = name.split(".")[0]
            if top not in {*OURS, *sys.stdlib_module_names, "kubernetes", "asyncssh"} and name not in names:
                names.append(name)
    return [*names, "probes.transports.kubeaio"]


def library_floor(python: str, modules: list[str], runs: int) -> float:
    """Median wall seconds of a process that imports only `modules` (no netcheck code runs, beyond
    kubeaio's loader) and exits: what the cold start cannot go below with these libraries."""
    program = ("import importlib, os\n"
               f"for name in {modules!r}:\n"
               "    try:\n        importlib.import_module(name)\n"
               "    except ImportError:\n        pass  # an optional module its library looked for\n"
               "os._exit(0)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    walls = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([python, "-c", program], env=env, check=True, timeout=RUN_TIMEOUT_S)
        walls.append(time.monotonic() - started)
    return statistics.median(walls)


def measure(python: str, node: str, runs: int) -> dict[str, Any]:
    subprocess.run([python, "-m", "compileall", "-q", *(str(REPO / p) for p in COMPILED)], check=True,
                   timeout=RUN_TIMEOUT_S)
    samples = [one_run(python, node)[:2] for _ in range(runs)]
    walls, cpus = [s[0] for s in samples], [s[1] for s in samples]
    _, _, stderr = one_run(python, node, importtime=True)
    packages = imports_by_package(stderr)
    libraries = library_modules(stderr)
    return {"runs": runs, "python": python, "bytecode_compiled": True,
            "wall_s_runs": [round(w, 3) for w in walls],
            "first_request_wall_s": round(statistics.median(walls), 3),
            "first_request_cpu_s": round(statistics.median(cpus), 3),
            "imports_ms_total": round(sum(p["ms"] for p in packages), 1),
            "imports_by_package": packages[:14],
            "libraries_only_wall_s": round(library_floor(python, libraries, runs), 3),
            "libraries_only_modules": len(libraries)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("node")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.python, args.node, args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
