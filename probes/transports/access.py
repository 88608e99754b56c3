"""`node_access`: per node, SSH or a host pod, behind the one `NodeShell` interface probes and fixes use.

Built by `bot.wiring.build_transports` as the engine's `Transports.shells`. Modes (docs/node-access.md):
`ssh` (the SSH pool), `pod` (host pods through the Kubernetes API: a read-only one for probes and
fix plans, a privileged one only inside an approved fix), `auto` (SSH where a key file and the
node's host key are configured, the host pod elsewhere). A per-node override beats the cluster mode.
"""

from __future__ import annotations

from enum import StrEnum

from probes.facts import NodeFacts
from probes.model import Access, AccessPath
from probes.transports.base import NodeShell
from probes.transports.hostpod import HostPods
from probes.transports.ssh import SSHPool


class NodeAccessMode(StrEnum):
    SSH = "ssh"
    POD = "pod"
    AUTO = "auto"


class NodeAccess:
    """The engine's `HostShells`, choosing the path per node (`choose`) and the pod kind per use."""

    def __init__(self, mode: NodeAccessMode, overrides: dict[str, NodeAccessMode], ssh: SSHPool,
                 read_only: HostPods, privileged: HostPods) -> None:
        self.mode = mode
        self.overrides = overrides
        self.ssh = ssh
        self.read_only = read_only
        self.privileged = privileged
        self._pod_users: dict[tuple[str, bool], int] = {}
        """Users of a host pod per (node, privileged): release() undoes exactly what get() took."""

    def choose(self, node: NodeFacts) -> Access:
        mode = self.overrides.get(node.name, self.mode)
        where = "node_access_overrides" if node.name in self.overrides else "node_access"
        if mode == NodeAccessMode.SSH:
            return Access(path=AccessPath.SSH, reason=f"{where}: ssh")
        if mode == NodeAccessMode.POD:
            return Access(path=AccessPath.HOST_POD, reason=f"{where}: pod")
        missing = self.ssh.settings.unconfigured(node)
        if missing is None:
            return Access(path=AccessPath.SSH, reason=f"{where}: auto, SSH key and host key configured")
        return Access(path=AccessPath.HOST_POD, reason=f"{where}: auto, {missing}")

    async def get(self, node: NodeFacts, *, privileged: bool = False) -> NodeShell:
        """The node's shell on the chosen path; `privileged` only for an approved fix (a privileged host
        pod on the pod path; SSH is the same shell either way)."""
        if self.choose(node).path == AccessPath.SSH:
            return await self.ssh.get(node)
        shell = await (self.privileged if privileged else self.read_only).get(node)
        key = (node.name, privileged)
        self._pod_users[key] = self._pod_users.get(key, 0) + 1
        return shell

    async def release(self, node: str, *, privileged: bool = False) -> None:
        """Done with the node's shell: a host pod goes with its last user; SSH stays pooled."""
        key = (node, privileged)
        if self._pod_users.get(key, 0) <= 0:
            return  # that use went over SSH (or never succeeded)
        self._pod_users[key] -= 1
        await (self.privileged if privileged else self.read_only).release(node)

    async def aclose(self) -> None:
        try:
            await self.privileged.aclose()
            await self.read_only.aclose()
        finally:
            await self.ssh.aclose()
