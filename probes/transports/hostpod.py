"""Node shells through a host pod, as `kubectl debug node/NAME` gives one: no SSH, only the Kubernetes API.

Used by probes/transports/access.py (the `node_access` choice). One host pod per node and kind:
pinned to the node (nodeName), tolerating every taint, in the host's network, PID and IPC
namespaces, the node's `/` mounted read-only at `/host`, the debug pod's image, labelled
`app.kubernetes.io/managed-by=netcheck`, `netcheck/host-node=<node>`, `netcheck/host-access=<kind>`.

Two kinds (docs/node-access.md):
- `read-only`, for probes and fix plans: not privileged, capabilities dropped except NET_ADMIN and
  NET_RAW (read iptables/nftables/conntrack, ping, tcpdump), SYS_CHROOT and SYS_PTRACE (enter
  `/host`, read the kubelet's namespace). Commands run as `nsenter --root=/host` (a chroot into
  the read-only host filesystem), already in the host's network and PID namespaces.
- `privileged`, only for an approved fix (created after approval, deleted after verification):
  `nsenter --target 1 --mount --uts --ipc --net --pid`, a root shell in the node's namespaces.

The command inside is exactly the one SSH would run (built by `commands.render`); the wrapper only
shell-quotes it. Lifecycle (leftovers deleted, create, wait Running, release by the last user,
delete on aclose) and exec come from pod.py.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import time
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field

from probes.errors import ClusterError, ClusterForbidden, ClusterNotFound, PodUnavailable
from probes.facts import NodeFacts
from probes.transports.base import CommandResult
from probes.transports.cluster import KubeCluster
from probes.transports.pod import MANAGED_BY, DebugPodSettings, KubePodExec, _waiting_reason

log = structlog.get_logger("netcheck.hostpod")

HOST_ROOT = "/host"
HOST_NODE_LABEL = "netcheck/host-node"
ACCESS_LABEL = "netcheck/host-access"
READ_ONLY, PRIVILEGED = "read-only", "privileged"
READ_ONLY_CAPABILITIES = ("NET_ADMIN", "NET_RAW", "SYS_CHROOT", "SYS_PTRACE")
"""What probes need on the host side and nothing more (docs/node-access.md, "What each pod may do")."""
CONTAINER_NAME = "host"
VOLUME_NAME = "host-root"


class HostPodSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str = Field(
        "netcheck-host",
        description="Namespace of the host pods (must exist; Pod Security level privileged, see "
        "docs/node-access.md).",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
    )
    image: str | None = Field(
        None, description="Host pod image (needs sh and nsenter); None: the debug pod's image."
    )


def host_pod_manifest(node: str, image: str, namespace: str, *, privileged: bool) -> dict[str, Any]:
    kind = PRIVILEGED if privileged else READ_ONLY
    name = f"netcheck-host-{node[:36].rstrip('.-')}-{secrets.token_hex(3)}".replace(".", "-")
    if privileged:
        security: dict[str, Any] = {"privileged": True}
    else:
        security = {"privileged": False, "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"], "add": list(READ_ONLY_CAPABILITIES)}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY[0]: MANAGED_BY[1], HOST_NODE_LABEL: node[:63], ACCESS_LABEL: kind},
        },
        "spec": {
            "nodeName": node,
            "hostNetwork": True,
            "hostPID": True,
            "hostIPC": True,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": CONTAINER_NAME,
                "image": image,
                "command": ["sleep", "3600"],
                "securityContext": security,
                "volumeMounts": [{"name": VOLUME_NAME, "mountPath": HOST_ROOT, "readOnly": True}],
            }],
            "volumes": [{"name": VOLUME_NAME, "hostPath": {"path": "/", "type": "Directory"}}],
        },
    }


def host_command(command: str, *, privileged: bool) -> str:
    """The exec'd `sh -c` text: the node command, quoted, behind the kind's nsenter."""
    if privileged:
        return f"exec nsenter --target 1 --mount --uts --ipc --net --pid -- sh -c {shlex.quote(command)}"
    return f"exec nsenter --root={HOST_ROOT} --wd={HOST_ROOT} -- sh -c {shlex.quote(command)}"


class HostPodShell:
    """A `NodeShell` on one running host pod."""

    def __init__(self, node: str, pod: KubePodExec, *, privileged: bool) -> None:
        self.node = node
        self.pod = pod
        self.privileged = privileged

    async def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        result = await self.pod.run(host_command(command, privileged=self.privileged), timeout=timeout)
        return result.model_copy(update={"command": command})  # evidence shows what ran on the node


class HostPods:
    """Host pods for one kind (read-only or privileged): one per node at a time, shared by its users,
    deleted when the last one releases it or on aclose (the debug pods' clean-up rules)."""

    def __init__(self, cluster: KubeCluster, debug: DebugPodSettings, settings: HostPodSettings,
                 *, privileged: bool) -> None:
        self.cluster = cluster
        self.debug = debug
        self.settings = settings
        self.privileged = privileged
        self.kind = PRIVILEGED if privileged else READ_ONLY
        self._shells: dict[str, HostPodShell] = {}
        self._users: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def image(self) -> str:
        return self.settings.image or self.debug.image

    async def get(self, node: NodeFacts) -> HostPodShell:
        async with self._locks.setdefault(node.name, asyncio.Lock()):
            shell = self._shells.get(node.name)
            if shell is None:
                shell = HostPodShell(node.name, await self._start(node.name), privileged=self.privileged)
                self._shells[node.name] = shell
            self._users[node.name] = self._users.get(node.name, 0) + 1
            return shell

    def _selector(self, node: str) -> str:
        return f"{MANAGED_BY[0]}={MANAGED_BY[1]},{HOST_NODE_LABEL}={node[:63]},{ACCESS_LABEL}={self.kind}"

    async def _delete(self, name: str) -> None:
        ns = self.settings.namespace
        try:
            await self.cluster.call(f"delete pod {ns}/{name}", self.cluster.core.delete_namespaced_pod,
                                    name, ns, grace_period_seconds=0)
        except ClusterNotFound:
            pass

    async def _start(self, node: str) -> KubePodExec:
        ns = self.settings.namespace
        what = f"{self.kind} host pod"
        try:
            leftovers = await self.cluster.call(
                f"list host pods of {node}", self.cluster.core.list_namespaced_pod, ns,
                label_selector=self._selector(node))
            for leftover in leftovers.items:
                log.info("deleting leftover host pod", node=node, pod=leftover.metadata.name)
                await self._delete(leftover.metadata.name)
            manifest = host_pod_manifest(node, self.image, ns, privileged=self.privileged)
            name = manifest["metadata"]["name"]
            await self.cluster.call(f"create pod {ns}/{name}", self.cluster.core.create_namespaced_pod,
                                    ns, manifest)
        except ClusterNotFound as exc:
            raise PodUnavailable(
                f"namespace {ns!r} for host pods does not exist (apply the node-access RBAC/namespace: "
                "docs/node-access.md)") from exc
        except ClusterForbidden as exc:
            raise PodUnavailable(
                f"cannot create the {what} in {ns}: {exc} (the node-access Role grants it there: "
                "docs/node-access.md)") from exc
        except ClusterError as exc:
            raise PodUnavailable(f"cannot create the {what} in {ns}: {exc}") from exc
        try:
            ip = await self._wait_running(name)
        except BaseException:
            await asyncio.shield(self._delete_quietly(name))
            raise
        log.info("host pod running", node=node, pod=name, kind=self.kind)
        return KubePodExec(self.cluster, name, ns, ip, self.debug)

    async def _delete_quietly(self, name: str) -> None:
        try:
            await self._delete(name)
        except ClusterError:
            log.warning("could not delete host pod", pod=name)

    async def _wait_running(self, name: str) -> str:
        ns = self.settings.namespace
        last = "not yet scheduled"
        deadline = time.monotonic() + self.debug.start_timeout
        while time.monotonic() < deadline:
            try:
                pod = await self.cluster.call(f"read pod {ns}/{name}", self.cluster.core.read_namespaced_pod,
                                              name, ns)
            except ClusterError as exc:
                raise PodUnavailable(f"host pod {ns}/{name}: {exc}") from exc
            phase = pod.status.phase if pod.status else None
            if phase == "Running":
                return pod.status.pod_ip or ""
            if phase in ("Failed", "Succeeded"):
                raise PodUnavailable(f"host pod {ns}/{name} ended ({phase}): {pod.status.message or ''}")
            last = _waiting_reason(pod) or phase or last
            await asyncio.sleep(self.debug.poll_interval)
        raise PodUnavailable(
            f"host pod {ns}/{name} not Running after {self.debug.start_timeout:g} s ({last})"
        )

    async def release(self, node: str) -> None:
        """One user is done with the node's host pod; the last one deletes it."""
        async with self._locks.setdefault(node, asyncio.Lock()):
            users = self._users.get(node, 0) - 1
            if users > 0:
                self._users[node] = users
                return
            self._users.pop(node, None)
            shell = self._shells.pop(node, None)
            if shell is not None:
                await self._delete(shell.pod.name)

    async def aclose(self) -> None:
        for node in list(self._shells):
            self._users.pop(node, None)
            await self.release(node)
