"""Where the machine's CPU went during a measured step: per component, from /proc, by recorded PIDs.

Used by bench/__main__.py around the fleet sweep. A component is a set of root PIDs that the bench
or the lab started and recorded (the lab's <state>/pids/*.pid, the delay program's Popen): its CPU
is every process under those roots, found by parent links in /proc, never by matching names across
the machine. A process's CPU is utime+stime+cutime+cstime from /proc/PID/stat: a child reaped by
its parent lands in the parent's cutime/cstime, so the sum over a tree's living processes counts
everything the tree ever ran, and the difference of two snapshots is the CPU spent between them
(short-lived sessions and commands included). The machine's totals come from /proc/stat; what is not
in any component is "the rest of the machine" (other work, the bench itself, the kernel's interrupt
and softirq time, which Linux does not charge to a process).

The parsers are pure and unit-tested (tests/bench/test_cpu.py); only `snapshot` reads /proc.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MACHINE_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")
"""/proc/stat's cpu columns that are not idle time (iowait counts as idle: the CPU was free)."""
STAT_COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass(frozen=True)
class ProcStat:
    """One process's parent and its CPU so far (own and reaped children's), in clock ticks; `kernel`
    is the part spent in system calls (stime+cstime)."""

    pid: int
    ppid: int
    ticks: int
    kernel: int = 0


def parse_pid_stat(pid: int, text: str) -> ProcStat:
    """/proc/PID/stat: the command name may hold spaces and parentheses, so fields are counted from the
    last ')'. After it: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17)."""
    fields = text.rsplit(")", 1)[1].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ProcStat(pid, ppid, utime + stime + cutime + cstime, stime + cstime)


def parse_machine_stat(text: str) -> dict[str, int]:
    """The aggregate `cpu` line of /proc/stat as ticks per column (guest time is inside user already)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            values = [int(x) for x in line.split()[1:]]
            return dict(zip(STAT_COLUMNS, values + [0] * (len(STAT_COLUMNS) - len(values)), strict=False))
    raise ValueError("no aggregate cpu line in /proc/stat")


def tree_ticks(procs: Mapping[int, ProcStat], roots: Iterable[int], taken: set[int]) -> tuple[int, int]:
    """CPU ticks (all, in the kernel) of every living process under `roots` (roots included) not already
    in `taken`; adds the PIDs it counts to `taken` so that components never share a process."""
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    total, kernel, stack = 0, 0, [r for r in roots if r in procs]
    while stack:
        pid = stack.pop()
        if pid in taken:
            continue
        taken.add(pid)
        total += procs[pid].ticks
        kernel += procs[pid].kernel
        stack.extend(children.get(pid, []))
    return total, kernel


@dataclass
class Snapshot:
    """Every component's CPU ticks and the machine's /proc/stat columns at one moment."""

    components: dict[str, int]
    machine: dict[str, int]
    processes: dict[str, int] = field(default_factory=dict)
    kernel: dict[str, int] = field(default_factory=dict)


def read_processes(proc: Path = PROC) -> dict[int, ProcStat]:
    found = {}
    for stat in proc.glob("[0-9]*/stat"):
        pid = int(stat.parent.name)
        try:
            found[pid] = parse_pid_stat(pid, stat.read_text())
        except (OSError, IndexError, ValueError):
            continue  # ended while the directory was read
    return found


def snapshot(components: Mapping[str, Iterable[int]], proc: Path = PROC) -> Snapshot:
    """CPU ticks of each component (in the given order: an earlier one keeps a shared process)."""
    procs = read_processes(proc)
    machine = parse_machine_stat((proc / "stat").read_text())
    taken: set[int] = set()
    ticks, kernel, counts = {}, {}, {}
    for name, roots in components.items():
        before = len(taken)
        ticks[name], kernel[name] = tree_ticks(procs, roots, taken)
        counts[name] = len(taken) - before
    return Snapshot(ticks, machine, counts, kernel)


def split(before: Snapshot, after: Snapshot, wall_s: float, ncpu: int, *,
          extra_s: Mapping[str, float] | None = None,
          extra_kernel_s: Mapping[str, float] | None = None) -> dict[str, object]:
    """Seconds of CPU per component between two snapshots, the machine's busy and idle time, and its
    capacity over the wall time (ncpu x wall), and each component's time in the kernel (system calls:
    fork, exec, sockets; the kernel's packet path runs in the sending or accepting call). `extra_s` and
    `extra_kernel_s` add components measured another way (the netcheck process tree's CPU from
    /usr/bin/time): they are taken out of the rest of the machine."""
    tick = 1.0 / CLOCK_TICKS
    rows = {name: round((after.components[name] - before.components.get(name, 0)) * tick, 2)
            for name in after.components}
    in_kernel = {name: round((after.kernel.get(name, 0) - before.kernel.get(name, 0)) * tick, 2)
                 for name in after.components}
    for name, seconds in (extra_s or {}).items():
        rows = {name: round(seconds, 2), **rows}
        in_kernel = {name: round((extra_kernel_s or {}).get(name, 0.0), 2), **in_kernel}
    delta = {k: (after.machine.get(k, 0) - before.machine.get(k, 0)) * tick for k in STAT_COLUMNS}
    busy = sum(delta[k] for k in MACHINE_BUSY_FIELDS)
    interrupts = delta["irq"] + delta["softirq"]
    steal = delta["steal"]
    rest = busy - interrupts - steal - sum(rows.values())
    return {"wall_s": round(wall_s, 3), "cpus": ncpu, "capacity_s": round(ncpu * wall_s, 2),
            "components_s": rows, "components_in_kernel_s": in_kernel,
            "kernel_interrupts_s": round(interrupts, 2),
            "stolen_s": round(steal, 2), "rest_of_machine_s": round(rest, 2),
            "machine_busy_s": round(busy, 2), "machine_idle_s": round(delta["idle"] + delta["iowait"], 2),
            "processes_at_end": dict(after.processes)}
