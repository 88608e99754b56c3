""".ci/setup and .ci/run decide how to get root the way the README's quick start says: as root they
never call sudo (a container or fresh VM may have none); as another user they re-run themselves
through sudo when it exists, else one line and exit 2.

The scripts run for real with bash; only the commands they look up on PATH are stand-ins: `id`
answers a non-root uid and `sudo` records how it was called (nothing is installed).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT_TIMEOUT_S = 30


def tool(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def run(script: str, tmp_path: Path, *, with_sudo: bool, args: tuple[str, ...] = ()) -> tuple[int, str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool(bin_dir, "id", 'if [ "$1" = "-u" ]; then echo 1000; else /usr/bin/id "$@"; fi')
    record = tmp_path / "sudo-args"
    if with_sudo:
        tool(bin_dir, "sudo", f'printf "%s\\n" "$@" > {record}')
    shell_dir = str(Path("/bin/bash").resolve().parent)
    env = {"PATH": f"{bin_dir}:{shell_dir}", "HOME": str(tmp_path)}
    done = subprocess.run(["/bin/bash", str(ROOT / script), *args], capture_output=True, text=True, env=env,
                          timeout=SCRIPT_TIMEOUT_S, cwd=tmp_path)
    return done.returncode, done.stderr, record.read_text() if record.exists() else ""


@pytest.mark.parametrize("script", [".ci/setup", ".ci/run"])
def test_a_user_with_sudo_reruns_through_sudo(script: str, tmp_path: Path) -> None:
    args = ("--demo",) if "setup" in script else ()
    code, _err, sudo_args = run(script, tmp_path, with_sudo=True, args=args)
    assert code == 0
    assert sudo_args.splitlines() == ["--", "bash", str(ROOT / script), *args]


def test_setup_without_root_or_sudo_is_one_line_exit_2(tmp_path: Path) -> None:
    code, err, sudo_args = run(".ci/setup", tmp_path, with_sudo=False)
    assert (code, sudo_args) == (2, "")
    assert err.splitlines() == [
        "netcheck setup needs root: it installs Debian packages and the lab uses network namespaces"
    ]


def test_root_path_never_calls_sudo() -> None:
    for script in (".ci/setup", ".ci/run"):
        lines = (ROOT / script).read_text().splitlines()
        calls = [line for line in lines if "sudo" in line and not line.lstrip().startswith("#")]
        # the only sudo use is the non-root re-run, inside the `id -u -ne 0` branch
        assert all("exec sudo -- bash" in line or "command -v sudo" in line for line in calls), calls
