"""`netcheck lab` (bot/commands/lab.py -> lab.cli): non-root gets one line and exit 2; on both layouts:
status (layout, nodes by role, the layout's default faults), a fault switched on (default node: the
WiFi node) and off (--node), bad fault/node names (one line, exit 2,
nothing changed), and `run` in the ops netns; `up --layout nope`: one line listing the layouts,
exit 2, nothing built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab import netns, spec
from lab.cluster import Lab

ROOT = Path(__file__).resolve().parents[2]


def netcheck_lab(*argv: str, lab: Lab | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`netcheck lab ARGV` in a subprocess, against `lab` (its prefix and state dir) if given."""
    code = "import sys; from bot.cli import main; sys.exit(main(sys.argv[1:]))"
    environ = dict(os.environ, **(env or {}))
    if lab is not None:
        environ.update({spec.PREFIX_ENV: lab.prefix, spec.STATE_ENV: str(lab.state)})
    return subprocess.run([sys.executable, "-c", code, "lab", *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=environ)


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
def test_status_fault_and_run(any_lab: Lab) -> None:
    lab, layout = any_lab, any_lab.layout
    wifi, wired = lab.wifi_node.name, lab.wired_worker.name
    status = json.loads(netcheck_lab("status", lab=lab).stdout)
    assert status["layout"] == layout.name
    assert [(n["name"], n["role"], n["wifi"]) for n in status["nodes"]] == \
        [(n.name, n.role, n.wifi) for n in lab.nodes]
    assert status["faults"] == {name: [node] for name, node in layout.default_faults}
    assert all(p["alive"] for p in status["processes"].values())
    try:
        default_node = netcheck_lab("fault", "kubelet-blocked", "--on", lab=lab)
        assert default_node.stdout == f"fault kubelet-blocked on on {wifi}\n"  # the WiFi node by default
        assert lab.active_faults()["kubelet-blocked"] == {wifi}
    finally:
        assert netcheck_lab("fault", "kubelet-blocked", "--node", wifi, "--off", lab=lab).returncode == 0
    assert "kubelet-blocked" not in lab.active_faults()
    bad = netcheck_lab("fault", "nope", "--node", wired, "--on", lab=lab)
    assert bad.returncode == 2 and bad.stderr.startswith("netcheck lab: unknown fault 'nope'")
    bad_node = netcheck_lab("fault", "mtu", "--node", f"{wired};rm", "--on", lab=lab)
    assert bad_node.returncode == 2 and "no node" in bad_node.stderr
    assert "mtu" not in lab.active_faults()
    ran = netcheck_lab("run", "--", "sh", "-c", "ip -4 -o addr show eth0; echo $KUBECONFIG", lab=lab)
    assert f"{layout.ops_ip}/{layout.lan_prefixlen}" in ran.stdout and str(lab.kubeconfig) in ran.stdout


@pytest.mark.lab
def test_unknown_layout_is_one_line_exit_2_and_builds_nothing() -> None:
    prefix = spec.prefix().rstrip("-") + "u-"
    state = f"{spec.state_dir()}-unknown-layout"
    proc = netcheck_lab("up", "--layout", "nope", env={spec.PREFIX_ENV: prefix, spec.STATE_ENV: state})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == "netcheck lab: unknown layout 'nope' (layouts: default, edge)\n"
    assert netns.list_prefixed(prefix) == [] and not Path(state).exists()
