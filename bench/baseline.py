"""The sequential baseline: the same node and pod commands `netcheck check` runs, one after another.

Run inside the lab's ops namespace by bench/run (`python -m bench.baseline NODE`, KUBECONFIG and
NETCHECK_CONFIG set by Lab.run_ops). First it runs the real engine once with transports that record
every command (which transport, which node, the exact command); then it replays that list as a person
following docs/troubleshooting.md by hand would: a fresh `ssh` per node command, `kubectl run` a debug pod
(the engine's own DebugPods) and one pod-exec API call (a new websocket, like `kubectl exec`) per pod
command. Prints one JSON object: engine wall time, baseline wall time and the command counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bot import config as config_module
from bot import wiring
from probes.engine import Engine
from probes.facts import NodeFacts


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


class _RecordingPool:
    """Wraps SSHPool/DebugPods so the shells and pods they hand out record their commands."""

    def __init__(self, inner: Any, kind: str, record: Recorded) -> None:
        self._inner, self._kind, self._record = inner, kind, record

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get(self, node: NodeFacts) -> Any:
        return _RecordingRun(await self._inner.get(node), self._kind, node.name, self._record)


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


def ssh_argv(config: config_module.Config, address: str, command: str) -> list[str]:
    ssh = config.ssh
    return ["ssh", "-i", str(ssh.private_key), "-o", f"UserKnownHostsFile={ssh.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(ssh.port),
            f"{ssh.user}@{address}", command]


async def replay(config: config_module.Config, record: Recorded) -> dict[str, Any]:
    """Run the recorded commands strictly one after another; returns timings."""
    transports = wiring.build_transports(config)
    engine = Engine(transports=transports, settings=config.probes)
    facts = await engine.facts()
    by_name = {n.name: n for n in facts.nodes}
    pods: dict[str, Any] = {}
    timeout = config.probes.command_timeout
    t0 = time.monotonic()
    pod_start_s = 0.0
    try:
        for kind, node, command in record.commands:
            if kind == "ssh":
                await asyncio.to_thread(subprocess.run, ssh_argv(config, by_name[node].internal_ip, command),
                                        capture_output=True, timeout=timeout * 2)
                continue
            if node not in pods:  # `kubectl run` the debug pod the first time a pod command needs it
                p0 = time.monotonic()
                pods[node] = await transports.pods.get(by_name[node])  # type: ignore[union-attr]
                pod_start_s += time.monotonic() - p0
            await pods[node].run(command, timeout=timeout)
        wall = time.monotonic() - t0
    finally:
        for node in pods:
            await transports.pods.release(node)  # type: ignore[union-attr]
        await engine.aclose()
    return {"baseline_s": wall, "baseline_pod_start_s": pod_start_s}


async def main_async(node: str) -> dict[str, Any]:
    config = config_module.load(None)
    engine_s, record = await record_check(config, node)
    result = await replay(config, record)
    kinds = [k for k, _, _ in record.commands]
    return {"node": node, "engine_check_s": engine_s, "ssh_commands": kinds.count("ssh"),
            "pod_commands": kinds.count("pod"), **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("node")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(main_async(args.node))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
