"""Debug pods pinned to a node, and commands run in them through the pod exec API.

Used by the engine (`Transports.pods`, wired in `bot.wiring`): `get(node)` deletes a leftover
netcheck pod of that node (crashed run), creates a fresh one (nodeName pinned, tolerates every
taint, labelled `app.kubernetes.io/managed-by=netcheck` and `netcheck/node=<node>`), waits for
Running within `start_timeout`, and `release(node)` deletes it. The pod is hardened (docs/debug-pod.md):
image pinned by digest, requests and limits, no ServiceAccount token, no privilege escalation, a
read-only root filesystem and every capability dropped but NET_RAW, which ping needs. Exec goes through
`kubernetes.stream`; the exit status is read from the status channel defensively (client-quirks).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import structlog
import yaml
from kubernetes import client as k8s
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, STDERR_CHANNEL, STDOUT_CHANNEL
from pydantic import BaseModel, ConfigDict, Field

from probes.errors import ClusterError, ClusterNotFound, CommandTimeout, PodUnavailable
from probes.facts import NodeFacts
from probes.model import trim
from probes.transports.base import CommandResult
from probes.transports.cluster import KubeCluster

log = structlog.get_logger("netcheck.pod")

MANAGED_BY = ("app.kubernetes.io/managed-by", "netcheck")
NODE_LABEL = "netcheck/node"
DEFAULT_IMAGE = (
    "docker.io/nicolaka/netshoot:v0.13@sha256:a20c2531bf35436ed3766cd6cfe89d352b050ccc4d7005ce6400adf97503da1b"
)
"""nicolaka/netshoot v0.13 pinned by digest: a moved tag cannot change what runs on every node
(docs/debug-pod.md says where the digest comes from and how to check it)."""
CAPABILITIES = ("NET_RAW",)
"""What the commands run in the pod need beyond an unprivileged process (docs/debug-pod.md):
ping (pod-to-pod, path MTU) opens raw ICMP sockets; curl, ip route/link, cat and dig/nslookup
need nothing."""
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|k|M|G)?$"


class DebugPodSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(
        DEFAULT_IMAGE, min_length=1,
        description="Debug pod image (needs sh, curl, ip, ping, dig or nslookup); default pinned by digest.",
    )
    namespace: str = Field(
        "netcheck",
        description="Namespace of the debug pods (must exist); default: the bot's own (POD_NAMESPACE), "
        "else netcheck.",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
    )
    cpu_request: str = Field("10m", pattern=QUANTITY, description="CPU the debug pod requests.")
    cpu_limit: str = Field("200m", pattern=QUANTITY, description="CPU the debug pod may use at most.")
    memory_request: str = Field("32Mi", pattern=QUANTITY, description="Memory the debug pod requests.")
    memory_limit: str = Field("128Mi", pattern=QUANTITY, description="Memory the debug pod may use at most.")
    start_timeout: float = Field(60.0, gt=0, description="Seconds for the pod to become Running.")
    poll_interval: float = Field(0.5, gt=0, description="Seconds between pod status reads.")
    command_timeout: float = Field(8.0, gt=0, description="Seconds one exec may run by default.")
    output_limit: int = Field(64_000, ge=1000, description="Characters kept per stream (head and tail).")


def pod_manifest(node: str, settings: DebugPodSettings) -> dict[str, Any]:
    name = f"netcheck-{node[:40].rstrip('.-')}-{secrets.token_hex(3)}".replace(".", "-")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": {MANAGED_BY[0]: MANAGED_BY[1], NODE_LABEL: node[:63]},
        },
        "spec": {
            "nodeName": node,
            "hostNetwork": False,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            # it talks to nothing but the network under test: no API token, no service env vars
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "debug",
                    "image": settings.image,
                    "command": ["sleep", "3600"],
                    "resources": {
                        "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
                        "limits": {"cpu": settings.cpu_limit, "memory": settings.memory_limit},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"], "add": list(CAPABILITIES)},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
        },
    }


def exit_status_from(status_text: str) -> int:
    """The exit code from the exec status channel; tolerant of missing fields (client-quirks)."""
    if not status_text:
        return -1
    try:
        status = yaml.safe_load(status_text) or {}
    except yaml.YAMLError:
        return -1
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                break
    return -1


class KubePodExec:
    """A `PodExec` on one running debug pod."""

    def __init__(self, cluster: KubeCluster, name: str, namespace: str, ip: str,
                 settings: DebugPodSettings) -> None:
        self._cluster = cluster
        self.name = name
        self.namespace = namespace
        self.ip = ip
        self._settings = settings

    def _exec_blocking(self, command: str, timeout: float) -> tuple[str, str, str, bool]:
        with self._cluster.exec_client() as api:
            return self._exec_session(k8s.CoreV1Api(api), command, timeout)

    def _exec_session(self, core: Any, command: str, timeout: float) -> tuple[str, str, str, bool]:
        ws = stream(
            core.connect_get_namespaced_pod_exec,
            self.name,
            self.namespace,
            command=["sh", "-c", command],
            stderr=True, stdin=False, stdout=True, tty=False,
            _preload_content=False,
            _request_timeout=self._cluster.request_timeout,
        )
        stdout, stderr, status = [], [], ""
        deadline = time.monotonic() + timeout
        try:
            while ws.is_open():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "".join(stdout), "".join(stderr), status, True
                ws.update(timeout=min(remaining, 1.0))
                stdout.append(ws.read_channel(STDOUT_CHANNEL, timeout=0) or "")
                stderr.append(ws.read_channel(STDERR_CHANNEL, timeout=0) or "")
                status += ws.read_channel(ERROR_CHANNEL, timeout=0) or ""
            stdout.append(ws.read_channel(STDOUT_CHANNEL, timeout=0) or "")
            stderr.append(ws.read_channel(STDERR_CHANNEL, timeout=0) or "")
            status += ws.read_channel(ERROR_CHANNEL, timeout=0) or ""
        finally:
            ws.close()
        return "".join(stdout), "".join(stderr), status, False

    async def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        limit = timeout or self._settings.command_timeout
        what = f"exec in pod {self.namespace}/{self.name}"
        stdout, stderr, status, timed_out = await self._cluster.run_blocking(
            what, self._exec_blocking, command, limit
        )
        if timed_out:
            raise CommandTimeout(f"{self.name}: command timed out after {limit:g} s: {command}")
        cap = self._settings.output_limit
        return CommandResult(
            command=command,
            exit_status=exit_status_from(status),
            stdout=trim(stdout, cap),
            stderr=trim(stderr, cap),
            truncated=len(stdout) > cap or len(stderr) > cap,
        )


class DebugPods:
    """`DebugPods` for the engine: one pod per node at a time, shared by its users (the node's own
    check and other nodes' cross-node checks), deleted when the last user releases it or on aclose."""

    def __init__(self, cluster: KubeCluster, settings: DebugPodSettings) -> None:
        self.cluster = cluster
        self.settings = settings
        self._pods: dict[str, KubePodExec] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    async def get(self, node: NodeFacts) -> KubePodExec:
        async with self._locks.setdefault(node.name, asyncio.Lock()):
            pod = self._pods.get(node.name)
            if pod is None:
                pod = await self._start(node.name)
                self._pods[node.name] = pod
            self._users[node.name] = self._users.get(node.name, 0) + 1
            return pod

    async def _leftovers(self, node: str) -> list[str]:
        selector = f"{MANAGED_BY[0]}={MANAGED_BY[1]},{NODE_LABEL}={node[:63]}"
        pods = await self.cluster.call(
            f"list debug pods of {node}", self.cluster.core.list_namespaced_pod,
            self.settings.namespace, label_selector=selector,
        )
        return [p.metadata.name for p in pods.items]

    async def _delete(self, name: str) -> None:
        try:
            await self.cluster.call(
                f"delete pod {self.settings.namespace}/{name}", self.cluster.core.delete_namespaced_pod,
                name, self.settings.namespace, grace_period_seconds=0,
            )
        except ClusterNotFound:
            pass

    async def _start(self, node: str) -> KubePodExec:
        ns = self.settings.namespace
        bound = log.bind(node=node, namespace=ns)
        try:
            for leftover in await self._leftovers(node):
                bound.info("deleting leftover debug pod", pod=leftover)
                await self._delete(leftover)
            manifest = pod_manifest(node, self.settings)
            name = manifest["metadata"]["name"]
            await self.cluster.call(f"create pod {ns}/{name}", self.cluster.core.create_namespaced_pod,
                                    ns, manifest)
        except ClusterNotFound as exc:
            # the only 404 a pod create gets is a missing namespace; creating it is the operator's job
            raise PodUnavailable(
                f"namespace {ns!r} does not exist (create it: kubectl create namespace {ns})"
            ) from exc
        except ClusterError as exc:
            raise PodUnavailable(f"cannot create the debug pod in {ns}: {exc}") from exc
        bound = bound.bind(pod=name)
        try:
            ip = await self._wait_running(name)
        except BaseException:
            await asyncio.shield(self._delete_quietly(name))
            raise
        bound.info("debug pod running", pod_ip=ip)
        return KubePodExec(self.cluster, name, ns, ip, self.settings)

    async def _delete_quietly(self, name: str) -> None:
        try:
            await self._delete(name)
        except ClusterError:
            log.warning("could not delete debug pod", pod=name)

    async def _wait_running(self, name: str) -> str:
        ns = self.settings.namespace
        last = "not yet scheduled"
        deadline = time.monotonic() + self.settings.start_timeout
        while time.monotonic() < deadline:
            try:
                pod = await self.cluster.call(f"read pod {ns}/{name}", self.cluster.core.read_namespaced_pod,
                                              name, ns)
            except ClusterError as exc:
                raise PodUnavailable(f"debug pod {ns}/{name}: {exc}") from exc
            phase = pod.status.phase if pod.status else None
            if phase == "Running" and pod.status.pod_ip:
                return pod.status.pod_ip
            if phase in ("Failed", "Succeeded"):
                raise PodUnavailable(f"debug pod {ns}/{name} ended ({phase}): {pod.status.message or ''}")
            last = _waiting_reason(pod) or phase or last
            await asyncio.sleep(self.settings.poll_interval)
        raise PodUnavailable(
            f"debug pod {ns}/{name} not Running after {self.settings.start_timeout:g} s ({last})"
        )

    async def release(self, node: str) -> None:
        """One user is done with the node's pod; the last one deletes it."""
        async with self._locks.setdefault(node, asyncio.Lock()):
            users = self._users.get(node, 0) - 1
            if users > 0:
                self._users[node] = users
                return
            self._users.pop(node, None)
            pod = self._pods.pop(node, None)
            if pod is not None:
                await self._delete(pod.name)

    async def aclose(self) -> None:
        for node in list(self._pods):
            self._users.pop(node, None)
            await self.release(node)


def _waiting_reason(pod: Any) -> str | None:
    """e.g. 'ImagePullBackOff: Back-off pulling image ...' so a stuck pod explains itself."""
    for status in (pod.status.container_statuses or []) if pod.status else []:
        waiting = status.state.waiting if status.state else None
        if waiting is not None and waiting.reason:
            return f"{waiting.reason}: {waiting.message or ''}".rstrip(": ")
    return None

