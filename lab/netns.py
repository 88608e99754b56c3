"""Thin wrappers over `ip netns` and friends: run a command on the host or inside a lab namespace.

Used by lab.topology, lab.nodes, lab.faults and lab.cluster. Nothing here creates anything in the
host network namespace: every link/address/route command is given a namespace.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

NETNS_RUN_DIR = Path("/run/netns")
NETNS_ETC_DIR = Path("/etc/netns")
COMMAND_TIMEOUT_S = 60.0


class LabCommandError(RuntimeError):
    """A lab setup command failed; the message carries the command and its stderr."""


def run(argv: Sequence[str], *, check: bool = True, input: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), input=input, capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise LabCommandError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()[:500]}")
    return proc


def exec_argv(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def ns_run(ns: str, argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return run(exec_argv(ns, argv), **kw)  # type: ignore[arg-type]


def ip_batch(ns: str, lines: Sequence[str], *, force: bool = False) -> None:
    """Run many `ip` commands in one process inside `ns` (fast `up` for many nodes); with `force`,
    every line runs even after one fails (and the error still raises at the end)."""
    if lines:
        run(["ip", *(["-force"] if force else []), "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n")


def exists(ns: str) -> bool:
    return (NETNS_RUN_DIR / ns).exists()


def add(ns: str) -> None:
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


def list_prefixed(prefix: str) -> list[str]:
    if not NETNS_RUN_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_RUN_DIR.iterdir() if p.name.startswith(prefix))


def pids_in(ns: str) -> list[int]:
    """PIDs of processes whose network namespace is `ns` (all of them were started by the lab)."""
    proc = run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in proc.stdout.split() if x.isdigit() and int(x) != os.getpid()]


def delete(ns: str) -> None:
    run(["ip", "netns", "delete", ns], check=False)
