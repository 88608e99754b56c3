"""`netcheck lab` (bot/commands/lab.py -> lab.cli): non-root gets one line and exit 2; status, a fault
switched on and off, bad fault/node names (one line, exit 2, nothing changed), and `run` in the ops netns.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.cluster import Lab

ROOT = Path(__file__).resolve().parents[2]


def netcheck_lab(*argv: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from bot.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "lab", *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_not_root_is_one_line_exit_2(capsys) -> None:
    """In-process with a non-root euid (the seam `euid`), so it works wherever the checkout lives
    (a user without root may not even be able to enter a `mktemp -d` clone)."""
    from bot.cli import build_parser
    from lab import cli as lab_cli

    for action in (["status"], ["up"], ["fault", "mtu", "--on"], ["run", "--", "true"]):
        assert lab_cli.run(build_parser().parse_args(["lab", *action]), euid=65534) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("netcheck lab needs root: ") and captured.err.count("\n") == 1


@pytest.mark.lab
def test_status_fault_and_run(lab: Lab) -> None:
    status = json.loads(netcheck_lab("status").stdout)
    assert status["faults"] == {"no-masquerade": ["worker2"]}
    assert all(p["alive"] for p in status["processes"].values())
    try:
        assert netcheck_lab("fault", "kubelet-blocked", "--node", "worker1", "--on").returncode == 0
        assert lab.active_faults()["kubelet-blocked"] == {"worker1"}
    finally:
        assert netcheck_lab("fault", "kubelet-blocked", "--node", "worker1", "--off").returncode == 0
    assert "kubelet-blocked" not in lab.active_faults()
    bad = netcheck_lab("fault", "nope", "--node", "worker1", "--on")
    assert bad.returncode == 2 and bad.stderr.startswith("netcheck lab: unknown fault 'nope'")
    bad_node = netcheck_lab("fault", "mtu", "--node", "worker1;rm", "--on")
    assert bad_node.returncode == 2 and "no node" in bad_node.stderr
    assert "mtu" not in lab.active_faults()
    ran = netcheck_lab("run", "--", "sh", "-c", "ip -4 -o addr show eth0; echo $KUBECONFIG")
    assert "192.168.1.200/24" in ran.stdout and str(lab.kubeconfig) in ran.stdout
