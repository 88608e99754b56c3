"""The transport interfaces probes and fixes are written against.

Probes never import asyncssh or kubernetes: they get these through `ProbeContext`. Real
implementations live beside this module (ssh.py, pod.py, cluster.py); tests use the scripted
fakes in tests/fakes/.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict


class CommandResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    command: str
    exit_status: int
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def output(self) -> str:
        """stdout and stderr together, for evidence."""
        return "\n".join(part for part in (self.stdout.rstrip("\n"), self.stderr.rstrip("\n")) if part)


class CommandRunner(Protocol):
    """Anything that runs a rendered command: a node's shell or the debug pod."""

    async def run(self, command: str, *, timeout: float | None = None) -> CommandResult: ...


class NodeShell(CommandRunner, Protocol):
    """A shell on the node's host network namespace (over SSH in production)."""

    node: str

    async def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run a command built by `commands.render` (via `sudo -n` when configured).

        A non-zero exit is a normal result; `CommandTimeout` past the timeout.
        """
        ...


class PodExec(CommandRunner, Protocol):
    """Commands inside the debug pod pinned to the node (pod exec API)."""

    name: str
    namespace: str
    ip: str

    async def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run `sh -c command` in the pod; exit status from the exec status channel."""
        ...


class Cluster(Protocol):
    """The Kubernetes API, as much of it as probes read. Errors are `ClusterError`s."""

    async def pod_logs(self, namespace: str, name: str, *, timeout: float) -> str: ...

    async def get_installation(self) -> dict[str, Any] | None:
        """operator.tigera.io/v1 Installation `default`, or None when Calico's operator is absent."""
        ...

    async def list_ippools(self) -> list[dict[str, Any]]: ...


class ClusterAPI(Cluster, Protocol):
    """The Kubernetes API as the engine, the bot and the fixes use it: the probes' `Cluster`, plus
    the node list and what calico-mtu reads and patches (implemented by cluster.KubeCluster)."""

    async def list_nodes(self) -> list[dict[str, Any]]: ...

    async def patch_installation(self, patch: dict[str, Any], *, json_patch: bool = False) -> dict[str, Any]:
        ...

    async def get_daemonset(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def list_pods(self, *, namespace: str | None = None, label_selector: str = "",
                        field_selector: str = "") -> list[dict[str, Any]]: ...

    async def get_tigerastatus(self, name: str) -> dict[str, Any] | None: ...
