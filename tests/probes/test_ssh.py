"""SSH transport against a REAL sshd started on 127.0.0.1 (ephemeral port, own host key, temp dir).

Covers: commands run with stdout/stderr/exit status; a batch of commands in one session, each with
its own output and exit status; commands one after another in one resident shell, each as if
alone (exit, cd, variables, stdin, non-UTF-8 bytes, a killed shell replaced), a timed-out command's
shell closed; 25 concurrent commands on one connection
(beyond sshd MaxSessions, which the shell learns from the first refusals); the connection is pooled
and reconnected when closed; per-command timeout -> CommandTimeout; output capped keeping head and
tail; a changed host
key and an unknown host -> HostKeyRejected with the exact reason (never accepted); a missing
known_hosts file; a closed port -> HostUnreachable; ssh.hosts override; `sudo -n` wrapping; the
engine turns a rejected host key into skips plus a visible `ssh` error finding.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from probes.engine import Engine, Transports
from probes.errors import CommandTimeout, HostKeyRejected, HostUnreachable
from probes.facts import ClusterFacts, NodeFacts
from probes.model import Layer, Status, ok
from probes.registry import Registry, probe
from probes.settings import ProbeSettings
from probes.transports.base import run_all
from probes.transports.ssh import SSHHost, SSHPool, SSHSettings
from tests.fakes import FakeCluster

pytestmark = pytest.mark.lab

NODE = NodeFacts(name="worker2", internal_ip="127.0.0.1")


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    d = tmp_path_factory.mktemp("sshd")
    host_pub = _keygen(d / "host_key")
    other_pub = _keygen(d / "other_host_key")
    client_pub = _keygen(d / "client_key")
    (d / "authorized_keys").write_text(client_pub + "\n")
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    config = d / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile none\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nMaxSessions 3\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {proc.stderr.read().decode()}") from None
            time.sleep(0.05)
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    changed = d / "known_hosts_changed"
    changed.write_text(f"[127.0.0.1]:{port} {other_pub}\n")
    unknown = d / "known_hosts_unknown"
    unknown.write_text(f"[127.0.0.9]:{port} {host_pub}\n")
    yield {"port": port, "dir": d, "known": known, "changed": changed, "unknown": unknown}
    proc.terminate()  # our own sshd, by its PID
    proc.wait(timeout=10)


def settings(sshd, **over) -> SSHSettings:
    values = {
        "user": "root",
        "port": sshd["port"],
        "private_key": sshd["dir"] / "client_key",
        "known_hosts": sshd["known"],
        "connect_timeout": 5,
        "command_timeout": 5,
    }
    values.update(over)
    return SSHSettings(**values)


async def test_runs_commands_and_pools_the_connection(sshd) -> None:
    pool = SSHPool(settings(sshd))
    try:
        shell = await pool.get(NODE)
        result = await shell.run("echo hi; echo err >&2; exit 3")
        assert (result.exit_status, result.stdout, result.stderr) == (3, "hi\n", "err\n")
        assert await pool.get(NODE) is shell
        shell.close()
        again = await pool.get(NODE)
        assert again is not shell and (await again.run("true")).ok
    finally:
        await pool.aclose()


async def test_many_concurrent_commands_share_one_connection(sshd) -> None:
    pool = SSHPool(settings(sshd))
    try:
        shell = await pool.get(NODE)
        # more than this sshd's MaxSessions (3): refusals teach the shell the node's limit, then it
        # queues the rest instead of being refused
        assert shell.sessions.allowed == 10  # ssh.max_sessions' default: OpenSSH's MaxSessions
        results = await asyncio.gather(*(shell.run(f"sleep 0.2; echo {i}") for i in range(25)))
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(25)]
        assert shell.sessions.allowed <= 3
    finally:
        await pool.aclose()


async def test_a_batch_is_one_session_with_each_commands_own_result(sshd) -> None:
    pool = SSHPool(settings(sshd))
    try:
        shell = await pool.get(NODE)
        commands = ["echo hi; echo err >&2; exit 3", "printf 'no newline'", "cat", "ls /nonexistent-s13",
                    "printf 'a\\n\\n'"]
        results = await shell.run_batch(commands)
        assert [(r.command, r.exit_status, r.stdout) for r in results] == [
            (commands[0], 3, "hi\n"), (commands[1], 0, "no newline"), (commands[2], 0, ""),
            (commands[3], 2, ""), (commands[4], 0, "a\n\n")]
        assert results[0].stderr == "err\n" and "nonexistent-s13" in results[3].stderr
        assert shell.sessions.peak == 1  # one channel for all five
        assert await run_all(shell, ["echo x"]) == [await shell.run("echo x")]
        with pytest.raises(CommandTimeout):
            await shell.run_batch(["true", "sleep 5"], timeout=0.3)
    finally:
        await pool.aclose()



async def test_commands_take_turns_in_one_resident_shell(sshd) -> None:
    """Commands one after another run in one session's shell, yet each as if alone: its `exit`, `cd`
    and variables stay its own, it cannot read the next command from stdin, its bytes need not be
    UTF-8, and a shell killed under a command is replaced for the next."""
    pool = SSHPool(settings(sshd))
    try:
        shell = await pool.get(NODE)
        first = await shell.run("cd /; LEFT=over; echo in; exit 4")
        second = await shell.run('pwd; echo "${LEFT:-unset}"')
        assert (first.exit_status, first.stdout) == (4, "in\n")
        cwd, left = second.stdout.splitlines()
        assert (cwd != "/", left) == (True, "unset")
        assert (await shell.run("cat; echo after-cat")).stdout == "after-cat\n"
        assert (await shell.run("printf 'a\\377b'")).stdout == "a\ufffdb"
        assert shell.sessions.peak == 1 and shell.sessions.established == 1
        killed = await shell.run("echo before; kill -9 $$")
        assert (killed.exit_status, killed.stdout) == (128 + 9, "before\n")
        assert (await shell.run("echo new-shell")).stdout == "new-shell\n"
        assert shell.sessions.established == 1
    finally:
        await pool.aclose()



async def test_an_idle_shell_that_ended_is_replaced_and_the_command_runs_once(sshd, tmp_path) -> None:
    """An idle shell that ended before the next command reached it (killed here, by the PID it
    reported: a process of this test's sshd) did not run that command: it runs in a new shell, once."""
    pool = SSHPool(settings(sshd))
    ran = tmp_path / "ran"
    try:
        shell = await pool.get(NODE)
        os.kill(int((await shell.run("echo $$")).stdout), signal.SIGKILL)
        result = await shell.run(f"echo once >> {ran}; echo done")  # no await in between: still idle
        assert (result.exit_status, result.stdout, ran.read_text()) == (0, "done\n", "once\n")
    finally:
        await pool.aclose()

async def test_a_timed_out_command_leaves_nothing_behind(sshd) -> None:
    pool = SSHPool(settings(sshd))
    try:
        shell = await pool.get(NODE)
        with pytest.raises(CommandTimeout):
            await shell.run("sleep 2; echo late", timeout=0.3)
        assert shell.sessions.established == 0  # that shell was closed, not handed out again
        assert (await shell.run("echo next")).stdout == "next\n"
        await asyncio.sleep(2.2)
        assert (await shell.run("echo again")).stdout == "again\n"
    finally:
        await pool.aclose()

async def test_command_timeout(sshd) -> None:
    pool = SSHPool(settings(sshd))
    try:
        shell = await pool.get(NODE)
        with pytest.raises(CommandTimeout, match="timed out after 0.3 s: sleep 5"):
            await shell.run("sleep 5", timeout=0.3)
    finally:
        await pool.aclose()


async def test_output_capped_keeping_head_and_tail(sshd) -> None:
    pool = SSHPool(settings(sshd, output_limit=1000))
    try:
        shell = await pool.get(NODE)
        result = await shell.run("echo HEAD; head -c 50000 /dev/zero | tr '\\0' a; echo; echo TAIL")
        assert result.truncated
        assert len(result.stdout) <= 1000
        assert result.stdout.startswith("HEAD") and result.stdout.rstrip().endswith("TAIL")
        assert "characters trimmed" in result.stdout
    finally:
        await pool.aclose()


async def test_changed_host_key_is_rejected_with_reason(sshd) -> None:
    pool = SSHPool(settings(sshd, known_hosts=sshd["changed"]))
    with pytest.raises(HostKeyRejected) as err:
        await pool.get(NODE)
    message = str(err.value)
    assert f"host key for [127.0.0.1]:{sshd['port']} does not match known_hosts {sshd['changed']}" in message
    assert "ssh-ed25519 SHA256:" in message


async def test_unknown_host_is_rejected_with_reason(sshd) -> None:
    pool = SSHPool(settings(sshd, known_hosts=sshd["unknown"]))
    with pytest.raises(HostKeyRejected, match=r"is unknown: no entry in known_hosts"):
        await pool.get(NODE)


async def test_missing_known_hosts_file(sshd) -> None:
    pool = SSHPool(settings(sshd, known_hosts=sshd["dir"] / "nope"))
    with pytest.raises(HostKeyRejected, match="does not exist"):
        await pool.get(NODE)


async def test_closed_port_is_unreachable(sshd) -> None:
    pool = SSHPool(settings(sshd, port=_free_port()))
    with pytest.raises(HostUnreachable, match="SSH to 127.0.0.1:"):
        await pool.get(NODE)


async def test_hosts_override_wins_over_internal_ip(sshd) -> None:
    pool = SSHPool(settings(sshd, hosts={"worker2": SSHHost(host="127.0.0.1", port=sshd["port"])}))
    try:
        shell = await pool.get(NodeFacts(name="worker2", internal_ip="192.0.2.1"))
        assert (await shell.run("echo ok")).stdout == "ok\n"
    finally:
        await pool.aclose()


def test_sudo_wraps_only_non_root() -> None:
    assert SSHSettings(user="ops", sudo=True).wrap("ip -o route get '10.0.0.1'") == (
        "sudo -n sh -c 'ip -o route get '\"'\"'10.0.0.1'\"'\"''"
    )
    assert SSHSettings(user="root", sudo=True).wrap("true") == "true"
    assert SSHSettings(user="ops", sudo=False).wrap("true") == "true"


def test_hosts_keys_must_be_node_names() -> None:
    with pytest.raises(ValueError, match="invalid node name 'Worker 2'"):
        SSHSettings(hosts={"Worker 2": SSHHost(host="x")})


async def test_engine_reports_rejected_host_key(sshd) -> None:
    reg = Registry()

    @probe(id="on-host", layer=Layer.HOST_ROUTE, needs={"host"}, registry=reg)
    async def on_host(ctx):
        return ok((await ctx.host.run("echo x")).stdout)

    async def discover() -> ClusterFacts:
        return ClusterFacts(api_service_ip="10.96.0.1", nodes=[NODE])

    pool = SSHPool(settings(sshd, known_hosts=sshd["changed"]))
    engine = Engine(transports=Transports(cluster=FakeCluster(), discover=discover, shells=pool),
                    settings=ProbeSettings(), registry=reg)
    report = await engine.check("worker2")
    await engine.aclose()
    assert report.finding("on-host").status is Status.SKIP
    assert "no SSH to worker2: host key for [127.0.0.1]" in report.finding("on-host").summary
    assert report.finding("ssh").status is Status.ERROR
