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
shell-quotes it. Lifecycle (owned and renewed pods, leftovers of this kind deleted, one start
attempt bounded by `debug_pod.start_timeout`, release by the last user, delete on aclose) and exec
come from pod.py's `DebugPods`.
"""

from __future__ import annotations

import secrets
import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from probes.facts import NodeFacts
from probes.transports.base import CommandResult
from probes.transports.cluster import KubeCluster
from probes.transports.pod import (
    MANAGED_BY,
    OWNER_LABEL,
    DebugPods,
    DebugPodSettings,
    KubePodExec,
    pod_manifest,
)

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


class HostPods(DebugPods):
    """Host pods of one kind (read-only or privileged) with the debug pods' lifecycle (pod.py): one
    per node at a time, shared by its users, owned and renewed, leftovers of this kind deleted,
    started within `debug_pod.start_timeout` as a whole, deleted by the last user or on aclose."""

    what = "host pod"
    deploy_hint = "the node-access namespace and Role: docs/node-access.md"

    def __init__(self, cluster: KubeCluster, debug: DebugPodSettings, settings: HostPodSettings,
                 *, privileged: bool, owner: str | None = None) -> None:
        # the debug pods' timeouts, lease and output limits; this namespace and image
        own = debug.model_copy(
            update={"namespace": settings.namespace, "image": settings.image or debug.image})
        super().__init__(cluster, own, owner=owner)
        self.privileged = privileged
        self.kind = PRIVILEGED if privileged else READ_ONLY
        self.what = f"{self.kind} host pod"

    def _manifest(self, node: str) -> dict[str, Any]:
        manifest = host_pod_manifest(node, self.settings.image, self.settings.namespace,
                                     privileged=self.privileged)
        owned = pod_manifest(node, self.settings, owner=self.owner)["metadata"]
        manifest["metadata"]["labels"][OWNER_LABEL] = owned["labels"][OWNER_LABEL]
        manifest["metadata"]["annotations"] = owned["annotations"]
        return manifest

    def _selector(self, node: str) -> str:
        return f"{MANAGED_BY[0]}={MANAGED_BY[1]},{HOST_NODE_LABEL}={node[:63]},{ACCESS_LABEL}={self.kind}"

    async def get(self, node: NodeFacts) -> HostPodShell:  # type: ignore[override]
        return HostPodShell(node.name, await super().get(node), privileged=self.privileged)
