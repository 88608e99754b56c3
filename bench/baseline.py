"""The sequential baseline: the commands `netcheck check NODE` runs, typed one after another.

Run inside the lab's ops namespace by bench/run (`python -m bench.baseline NODE`, KUBECONFIG and
NETCHECK_CONFIG set by Lab.run_ops). First it runs the real engine once with transports that record
every command (which transport, which node, the exact command); then it replays that list the way a
person following docs/troubleshooting.md does it:

- node commands: one `ssh` session per node (the system OpenSSH client, `ssh -T node sh`), each
  command typed after the previous one's output came back;
- pod commands: the debug pod started once per node (`kubectl run`, here the engine's own DebugPods,
  timed separately), then one exec API call per command, each a new connection and WebSocket like
  `kubectl exec` (but without the `kubectl` process a person starts for each: its start and
  kubeconfig load are not counted).

Follow-up commands on other nodes (the reference node, the blamed peer) are replayed too: a person
checks them as well before calling a failure node-local. Prints one JSON object: engine wall time,
baseline wall time, the pod start within it, and the command counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bot import config as config_module
from bot import wiring
from probes.engine import Engine
from probes.facts import NodeFacts
from probes.transports.cluster import KubeCluster
from probes.transports.pod import KubePodExec

SESSION_START_TIMEOUT_S = 30.0


@dataclass
class Recorded:
    """Commands in the order the engine issued them: (transport, node, command)."""

    commands: list[tuple[str, str, str]] = field(default_factory=list)


class _RecordingRun:
    """Wraps a NodeShell/PodExec: every run() is recorded, then delegated unchanged."""

    def __init__(self, inner: Any, kind: str, node: str, record: Recorded) -> None:
        self._inner, self._kind, self._node, self._record = inner, kind, node, record

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def run(self, command: str, *, timeout: float | None = None) -> Any:
        self._record.commands.append((self._kind, self._node, command))
        return await self._inner.run(command, timeout=timeout)

    async def run_batch(self, commands: Any, *, timeout: float | None = None) -> Any:
        self._record.commands.extend((self._kind, self._node, c) for c in commands)
        return await self._inner.run_batch(commands, timeout=timeout)


class _RecordingPool:
    """Wraps SSHPool/DebugPods so the shells and pods they hand out record their commands."""

    def __init__(self, inner: Any, kind: str, record: Recorded) -> None:
        self._inner, self._kind, self._record = inner, kind, record

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get(self, node: NodeFacts, **kwargs: Any) -> Any:
        return _RecordingRun(await self._inner.get(node, **kwargs), self._kind, node.name, self._record)


async def record_check(config: config_module.Config, node: str) -> tuple[float, Recorded]:
    record = Recorded()
    transports = wiring.build_transports(config)
    transports.shells = _RecordingPool(transports.shells, "ssh", record)  # type: ignore[assignment]
    transports.pods = _RecordingPool(transports.pods, "pod", record)  # type: ignore[assignment]
    engine = wiring.build_engine(config, transports=transports)
    t0 = time.monotonic()
    try:
        await engine.check(node)
    finally:
        await engine.aclose()
    return time.monotonic() - t0, record


def ssh_argv(config: config_module.Config, address: str) -> list[str]:
    ssh = config.ssh
    return ["ssh", "-T", "-i", str(ssh.private_key), "-o", f"UserKnownHostsFile={ssh.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(ssh.port),
            f"{ssh.user}@{address}", "sh"]


class Session:
    """One interactive `ssh node sh`: a command is written, its output read up to an end marker
    (carrying the exit status), then the next one is written, as at a prompt."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.marker = f"__netcheck_baseline_{secrets.token_hex(8)}__"

    @classmethod
    async def open(cls, argv: list[str]) -> Session:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        session = cls(process)
        await asyncio.wait_for(session.run("true", timeout=SESSION_START_TIMEOUT_S), SESSION_START_TIMEOUT_S)
        return session

    async def run(self, command: str, *, timeout: float) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        # the command runs in a subshell with stdin closed, so it cannot eat the next command; the
        # newline before ")" keeps a trailing comment from swallowing it, the one before the marker
        # puts it on a line of its own after output without a final newline
        self.process.stdin.write(
            f"( {command}\n) </dev/null; printf '\\n%s %s\\n' {self.marker} \"$?\"\n".encode())
        await self.process.stdin.drain()
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise RuntimeError("the ssh session ended")
                text = line.decode(errors="replace")
                if text.startswith(self.marker):
                    return int(text.split()[1])

    async def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), SESSION_START_TIMEOUT_S)
        except TimeoutError:
            self.process.kill()  # by PID: the ssh this object started
            await self.process.wait()


async def replay(config: config_module.Config, record: Recorded) -> dict[str, Any]:
    """Run the recorded commands strictly one after another; returns timings."""
    transports = wiring.build_transports(config)
    engine = Engine(transports=transports, settings=config.probes)
    facts = await engine.facts()
    by_name = {n.name: n for n in facts.nodes}
    # the pod commands' own client, used for nothing else: no connection is ever idle in its pool, so
    # every exec connects anew (TCP, TLS, upgrade), as every `kubectl exec` does
    exec_cluster = KubeCluster(config.cluster_settings())
    sessions: dict[str, Session] = {}
    pods: dict[str, Any] = {}
    timeout = config.probes.command_timeout * 2
    t0 = time.monotonic()
    pod_start_s = ssh_start_s = 0.0
    try:
        for kind, node, command in record.commands:
            if kind == "ssh":
                if node not in sessions:  # `ssh NODE` the first time a node command needs it
                    s0 = time.monotonic()
                    sessions[node] = await Session.open(ssh_argv(config, str(by_name[node].internal_ip)))
                    ssh_start_s += time.monotonic() - s0
                await sessions[node].run(config.ssh.wrap(command), timeout=timeout)
                continue
            if node not in pods:  # `kubectl run` the debug pod the first time a pod command needs it
                p0 = time.monotonic()
                started = await transports.pods.get(by_name[node])  # type: ignore[union-attr]
                pods[node] = KubePodExec(exec_cluster, started.name, started.namespace, started.ip,
                                         config.debug_pod, keep_shells=False)
                pod_start_s += time.monotonic() - p0
            await pods[node].run(command, timeout=timeout)  # one exec, a new WebSocket: `kubectl exec`
        wall = time.monotonic() - t0
    finally:
        for session in sessions.values():
            await session.close()
        for node in pods:
            await transports.pods.release(node)  # type: ignore[union-attr]
        await exec_cluster.aclose()
        await engine.aclose()
    return {"baseline_s": round(wall, 3), "baseline_pod_start_s": round(pod_start_s, 3),
            "baseline_ssh_start_s": round(ssh_start_s, 3), "ssh_sessions": len(sessions),
            "pods": len(pods)}


async def main_async(node: str) -> dict[str, Any]:
    config = config_module.load(None)
    engine_s, record = await record_check(config, node)
    result = await replay(config, record)
    kinds = [k for k, _, _ in record.commands]
    return {"node": node, "engine_check_s": round(engine_s, 3), "ssh_commands": kinds.count("ssh"),
            "pod_commands": kinds.count("pod"), "nodes_touched": len({n for _, n, _ in record.commands}),
            **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("node")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(main_async(args.node))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
