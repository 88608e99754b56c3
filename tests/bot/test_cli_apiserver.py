"""`netcheck check` as a real process against the API stand-in (lab/apiserver, in-process here),
through a YAML config naming a real kubeconfig: the whole production wiring (bot.wiring).

Covers: an unknown node -> one line naming the closest node names, exit 2; an unreachable API
server -> one short line naming the API URL and the cause, exit 3 "could not check" (nothing on
stdout); a kubeconfig that does not exist -> one line, exit 3.
"""

from __future__ import annotations

import asyncio
import sys

from tests.lab.test_apiserver_support import ADMIN_TOKEN, running_lab
from tests.probes.test_cluster import write_kubeconfig


async def netcheck(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_unknown_node_against_the_api(tmp_path) -> None:
    async with running_lab(tmp_path) as lab:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", lab.url, lab.ca, ADMIN_TOKEN)
        config = tmp_path / "netcheck.yaml"
        config.write_text(f"kubeconfig: {kubeconfig}\nssh: {{known_hosts: {tmp_path / 'known_hosts'}}}\n")
        code, out, err = await netcheck("check", "worker3", "--config", str(config))
    assert code == 2, err
    assert out == ""
    assert err.splitlines() == ["netcheck check: unknown node 'worker3': did you mean worker2?"]


async def test_unreachable_api(tmp_path) -> None:
    async with running_lab(tmp_path) as lab:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:1", lab.ca, ADMIN_TOKEN)
    config = tmp_path / "netcheck.yaml"
    config.write_text(f"kubeconfig: {kubeconfig}\nrequest_timeout: 3\n")
    code, out, err = await netcheck("check", "worker2", "--config", str(config))
    assert code == 3, err
    assert out == ""
    assert err.splitlines() == [
        "netcheck check: cannot reach the Kubernetes API at https://127.0.0.1:1: connection refused"
    ]


async def test_missing_kubeconfig_could_not_check(tmp_path) -> None:
    config = tmp_path / "netcheck.yaml"
    config.write_text(f"kubeconfig: {tmp_path / 'nowhere'}\n")
    code, out, err = await netcheck("check", "worker2", "--config", str(config))
    assert (code, out) == (3, "")
    assert err.splitlines() == [f"netcheck check: kubeconfig {tmp_path / 'nowhere'} does not exist"]
    code, _, err = await netcheck("fix", "worker2", "ip-forward", "--yes", "--config", str(config))
    missing = tmp_path / "nowhere"
    assert code == 3 and err.splitlines() == [f"netcheck fix: kubeconfig {missing} does not exist"]
