"""Scripted fakes of the transport interfaces (probes/transports/base.py) for unit tests.

`FakeShell` answers commands by the first matching regex, and records every command it ran,
so a test can assert both what a probe concluded and what it executed. `HostPodRouter` is node
access that always takes host pods and records which ones were asked for and released.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from probes.errors import ClusterError, CommandTimeout
from probes.facts import NodeFacts
from probes.model import Access, AccessPath
from probes.transports.base import CommandResult

Answer = CommandResult | Callable[[str], CommandResult] | Exception


def out(stdout: str = "", exit_status: int = 0, stderr: str = "") -> Callable[[str], CommandResult]:
    """An answer: this stdout/stderr/exit status for whatever command matched."""
    return lambda command: CommandResult(
        command=command, exit_status=exit_status, stdout=stdout, stderr=stderr
    )


@dataclass
class FakeShell:
    node: str = "worker2"
    script: list[tuple[re.Pattern[str], Answer]] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    default_exit: int = 127

    def on(self, pattern: str, answer: Answer) -> FakeShell:
        self.script.append((re.compile(pattern), answer))
        return self

    async def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        self.ran.append(command)
        for pattern, answer in self.script:
            if pattern.search(command):
                if isinstance(answer, Exception):
                    raise answer
                if isinstance(answer, CommandResult):
                    return answer
                return answer(command)
        return CommandResult(
            command=command, exit_status=self.default_exit, stderr=f"fake: no answer for {command!r}"
        )


@dataclass
class FakePod(FakeShell):
    name: str = "netcheck-debug-worker2"
    namespace: str = "netcheck"
    ip: str = "192.168.88.69"


def timeout_answer(command: str) -> CommandResult:
    raise CommandTimeout(f"command timed out: {command}")


@dataclass
class FakeCluster:
    installation: dict[str, Any] | None = None
    ippools: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, str | Exception] = field(default_factory=dict)
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    async def pod_logs(self, namespace: str, name: str, *, timeout: float) -> str:
        self.calls.append(("pod_logs", (namespace, name)))
        answer = self.logs.get(name, "")
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def get_installation(self) -> dict[str, Any] | None:
        self.calls.append(("get_installation", ()))
        return self.installation

    async def list_ippools(self) -> list[dict[str, Any]]:
        self.calls.append(("list_ippools", ()))
        return self.ippools


__all__ = ["ClusterError", "FakeCluster", "FakePod", "FakeShell", "out", "timeout_answer"]


class HostPodRouter:
    """A `NodeAccessShells` fake: host pods always (a `FakeShell` named NODE/privileged or
    NODE/read-only, or `error` raised); records gets and releases by kind."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.got: list[tuple[str, bool]] = []
        self.released: list[tuple[str, bool]] = []

    def choose(self, node: NodeFacts) -> Access:
        return Access(path=AccessPath.HOST_POD, reason="node_access: pod")

    async def get(self, node: NodeFacts, *, privileged: bool = False) -> FakeShell:
        self.got.append((node.name, privileged))
        if self.error is not None:
            raise self.error
        return FakeShell(node=f"{node.name}/{'privileged' if privileged else 'read-only'}")

    async def release(self, node: str, *, privileged: bool = False) -> None:
        self.released.append((node, privileged))

    async def aclose(self) -> None:
        pass
