"""`netcheck demo --node-access pod`: the whole Slack flow with sshd stopped and no SSH configured.

Covers: the demo (own lab prefix, derived from this run's) exits 0, says sshd was stopped and the
config has no SSH, the check's note says "via host pod", the masquerade fix is applied by the approver
and the re-check is green; afterwards nothing of that lab is left. Without a lab: an unknown mode is
refused before anything is built (one line, exit 2).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.commands import demo
from lab import netns, spec
from lab.demo.options import DemoOptions

REPO = Path(__file__).resolve().parents[2]
DEMO_DEADLINE_S = 180.0


@pytest.mark.lab
def test_demo_with_host_pods_and_no_ssh() -> None:
    prefix = spec.prefix().rstrip("-") + "d-"
    state = Path(f"{spec.state_dir()}-demo")
    env = dict(os.environ, NETCHECK_LAB_PREFIX=prefix, NETCHECK_LAB_STATE=str(state), NO_COLOR="1")
    done = subprocess.run([sys.executable, "-m", "bot.cli", "demo", "--node-access", "pod"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=DEMO_DEADLINE_S)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-2000:]
    assert "sshd stopped on every node, and netcheck's config has no SSH key or known_hosts" in out
    assert "· via host pod" in out
    assert f"fix `masquerade` on {DemoOptions().target}: applied (approved by @approver)" in out
    assert "re-check green" in out.splitlines()[-1]
    assert netns.list_prefixed(prefix) == [] and not state.exists()


def test_unknown_node_access_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(keep=False, fault=None, node=None, layout="default", workers=2,
                              node_access="telnet")
    assert demo.run(args, euid=0) == demo.EXIT_USAGE
    expected = "netcheck demo: unknown node access 'telnet' (known: ssh, pod, auto)"
    assert capsys.readouterr().err.strip() == expected
