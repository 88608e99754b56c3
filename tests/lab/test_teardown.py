"""Lab hygiene: up/down twice leaves nothing (namespaces, processes, /run/netns mounts, /etc/netns
entries, state files); `up` killed midway (SIGKILL) then `Lab.teardown()` leaves nothing; a second
`up` over a running lab is refused. Uses its own prefix so the session lab is untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import netns, nodes
from lab.cluster import Lab

pytestmark = pytest.mark.lab
KILL_AFTER_S = 1.0


def lab_pids(state: Path) -> set[int]:
    return {int(p.read_text()) for p in (state / "pids").glob("*.pid")}


def leftovers(prefix: str, state: Path, pids: set[int]) -> list[str]:
    found = [f"netns {n}" for n in netns.list_prefixed(prefix)]
    found += [f"/etc/netns/{e.name}" for e in netns.NETNS_ETC_DIR.glob(f"{prefix}*")]
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    found += [f"mount {m}" for m in mounts if f"/run/netns/{prefix}" in m]
    found += [f"pid {p}" for p in pids if nodes.alive(p)]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(state) + "/" in cmdline and int(proc.name) != os.getpid():
                found.append(f"process {proc.name}: {cmdline[:120]}")
    if state.exists():
        found.append(f"state dir {state}")
    return found


def test_up_down_twice_leaves_nothing(own_prefix: tuple[str, Path]) -> None:
    prefix, state = own_prefix
    for _ in range(2):
        lab = Lab.up(workers=1)
        pids = lab_pids(state)
        assert len(pids) >= 5  # sshd+kubelet on 2 nodes, dns, apiserver
        assert netns.list_prefixed(prefix)
        with pytest.raises(RuntimeError, match="already exists"):
            Lab.up(workers=1)
        lab.down()
        assert leftovers(prefix, state, pids) == []
        Lab.teardown()  # idempotent


def test_killed_up_then_teardown_leaves_nothing(own_prefix: tuple[str, Path]) -> None:
    prefix, state = own_prefix
    proc = subprocess.Popen([sys.executable, "-c", "from lab.cluster import Lab; Lab.up(workers=6)"],
                            env=dict(os.environ), cwd=str(Path(__file__).resolve().parents[2]))
    time.sleep(KILL_AFTER_S)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    pids = lab_pids(state) if (state / "pids").is_dir() else set()
    assert netns.list_prefixed(prefix), "up was killed before it made anything; raise KILL_AFTER_S"
    Lab.teardown()
    assert leftovers(prefix, state, pids) == []
