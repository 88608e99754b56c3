"""Each lab node's own PID 1: a small init in a PID (and UTS and mount) namespace of the node's own.

Why: a host pod reaches its node the way `kubectl debug node/` does, with `nsenter -t 1 ...`. Lab
nodes are network namespaces on one machine; without a PID namespace per node, "PID 1" seen from a
node would be this machine's PID 1. So every node gets an init started with
`ip netns exec NODE unshare --pid --fork --kill-child --mount-proc --uts`: inside, PID 1 is this
module's `main` (it reaps orphans, as an init must), /proc shows only the node's processes, the
hostname is the node's name and the mount namespace holds the node's /etc (from /etc/netns/NODE),
the lab's systemctl stand-in over /usr/local/sbin and this machine's root dotfiles hidden.

The node's sshd and kubelet are started inside those namespaces (`node_argv`), so SSH sessions and
host pods (lab/apiserver/hostpods.py) see the same node. Called by lab.cluster (up) and lab.nodes.

Teardown: the `unshare` leader (pids/init-NODE.pid) and PID 1 itself (pids/nodeinit-NODE.pid) are
recorded like every lab process and killed by PID; PID 1's death kills every process of the node's
PID namespace, and `--kill-child` kills PID 1 when only the leader is killed (a half-failed `up`).

    python -m lab.nodeinit --node NAME --state DIR      (PID 1 inside the node; started by start_init)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from lab import netns, nodes
from lab.spec import NodeSpec

INIT_START_WAIT_S = 15.0
INIT_POLL_S = 0.02
REAP_WAKEUP_S = 60.0
"""PID 1 wakes on SIGCHLD; this only bounds a wait in case a signal was missed."""
PID1_FILE = "init.pid"


class NodeInitError(netns.LabCommandError):
    """The node's init is missing, or a PID is not the init of that node's own PID namespace."""


def pid1_file(state: Path, node: str) -> Path:
    """Where the node's PID 1 is recorded, as this machine's PID namespace numbers it."""
    return nodes.node_dir(state, node) / PID1_FILE


def setup_script(state: Path, node: NodeSpec) -> str:
    """What runs as PID 1 before it becomes the init: the node's hostname, the lab's systemctl
    stand-in over /usr/local/sbin, and no root dotfiles of this machine (root's .bashrc here runs
    `pyenv init`, whose rehash lock, left behind by a killed session, stalls every later one)."""
    hide = "".join(f"if [ -e {rc} ]; then mount --bind /dev/null {rc}; fi && " for rc in nodes.ROOT_DOTFILES)
    return f"hostname {node.name} && mount --bind {state / 'bin'} /usr/local/sbin && {hide}true"


def start_init(state: Path, ns: str, node: NodeSpec) -> int:
    """Start the node's init inside namespace `ns`; returns PID 1's PID in this machine's numbering."""
    env = nodes.python_env()
    env.update(LAB_NODE=node.name, LAB_STATE=str(state))  # read by the systemctl stand-in
    script = (f"{setup_script(state, node)} && exec {sys.executable} -m lab.nodeinit "
              f"--node {node.name} --state {state}")
    argv = netns.exec_argv(ns, ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--uts",
                                "--", "sh", "-c", script])
    leader = nodes.start(state, f"init-{node.name}", argv, env=env)
    pid1 = _wait_for_pid1(leader, node.name)
    (state / "pids" / f"nodeinit-{node.name}.pid").write_text(f"{pid1}\n")
    pid1_file(state, node.name).write_text(f"{pid1}\n")
    verified_pid1(state, node.name, ns)
    return pid1


def children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (this kernel has no /proc/PID/task/PID/children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def _wait_for_pid1(leader: int, node: str) -> int:
    """The leader's child once it runs this module (its setup done), or NodeInitError."""
    deadline = time.monotonic() + INIT_START_WAIT_S
    while time.monotonic() < deadline:
        for child in children(leader):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"lab.nodeinit" in cmdline:
                return child
        if not nodes.alive(leader):
            break
        time.sleep(INIT_POLL_S)
    raise NodeInitError(f"the init of node {node} did not start (see logs/init-{node}.log)")


def namespace_inode(path: str | Path) -> int:
    return os.stat(path).st_ino


def verified_pid1(state: Path, node: str, ns: str) -> int:
    """The node's PID 1, checked to still be the init of a PID namespace other than this machine's
    and to live in the node's network namespace `ns` (a recycled PID would fail both)."""
    return checked_pid1(pid1_file(state, node), node, ns)


def checked_pid1(record: Path, node: str, ns: str) -> int:
    """`verified_pid1` from the PID file itself (the API stand-in knows files, not the state dir)."""
    try:
        pid = int(record.read_text().strip())
        status = Path(f"/proc/{pid}/status").read_text()
        pid_ns = namespace_inode(f"/proc/{pid}/ns/pid")
        net_ns = namespace_inode(f"/proc/{pid}/ns/net")
    except (OSError, ValueError) as exc:
        raise NodeInitError(f"node {node} has no running init: {exc}") from exc
    ns_pids = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
    if (len(ns_pids) < 2 or ns_pids[-1] != "1" or pid_ns == namespace_inode("/proc/self/ns/pid")
            or net_ns != namespace_inode(netns.NETNS_RUN_DIR / ns)):
        raise NodeInitError(f"PID {pid} is not PID 1 of node {node}'s own PID namespace (NSpid {ns_pids})")
    return pid


def node_argv(state: Path, node: str, ns: str, argv: list[str]) -> list[str]:
    """`argv` run inside the node (its mount, UTS, IPC, network and PID namespaces). nsenter forks to
    enter the PID namespace; `setpriv --pdeathsig KILL` ends the program when that nsenter is killed,
    so stopping the recorded PID stops the program too."""
    pid = verified_pid1(state, node, ns)
    return ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--",
            "setpriv", "--pdeathsig", "KILL", "--", *argv]


def main() -> None:
    """PID 1 of a node: reap every child (orphans of the node are re-parented here) until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", required=True)
    parser.add_argument("--state", required=True, help="the lab's state dir (shown in ps, for teardown)")
    parser.parse_args()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        signal.sigtimedwait({signal.SIGCHLD}, REAP_WAKEUP_S)


if __name__ == "__main__":
    main()
