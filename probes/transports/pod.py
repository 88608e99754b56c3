"""Debug pods pinned to a node, and commands run in them through the pod exec API.

Used by the engine (`Transports.pods`, wired in `bot.wiring`): `get(node)` deletes leftover
netcheck pods of that node, creates a fresh one (nodeName pinned, tolerates every taint, labelled
`app.kubernetes.io/managed-by=netcheck`, `netcheck/node=<node>`, `netcheck/owner=<this process>`,
annotated `netcheck/expires-at`, renewed every third of `lease_duration` while in use), and has it
Running within `start_timeout` (the whole attempt: clean-up, create and wait), else fails at once
with the pod's last state and deletes the pod in the background; `release(node)` deletes it. A
NotReady node is not tried: its kubelet does not start new pods (docs/faults.md#pods-on-notready-nodes).
Exec goes through `kubernetes.stream`; the exit status is read from the status channel defensively
(docs/client-libraries.md#exec-exit-status). The pod is hardened (docs/debug-pod.md): image pinned by
digest, requests and limits, no ServiceAccount token, no privilege escalation, a read-only root
filesystem and every capability of the runtime's default set dropped but NET_RAW, which ping needs.

Owned pods: several netcheck processes may probe one node at once (the CLI and the bot, two bot
replicas during a handover), each with its own pod. A leftover is a pod this process made and no
longer uses, or another owner's pod whose expiry passed (that owner stopped renewing: it is gone);
a live process's pod is never deleted. Expiry is wall-clock time (UTC), so the processes' clocks must
agree to well within `lease_duration` (docs/faults.md#owned-debug-pods).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from probes.transports.cluster import MERGE_PATCH, KubeCluster
from probes.transports.owner import process_owner

log = structlog.get_logger("netcheck.pod")

MANAGED_BY = ("app.kubernetes.io/managed-by", "netcheck")
NODE_LABEL = "netcheck/node"
DEFAULT_IMAGE = (
    "docker.io/nicolaka/netshoot:v0.13@sha256:a20c2531bf35436ed3766cd6cfe89d352b050ccc4d7005ce6400adf97503da1b"
)
"""nicolaka/netshoot v0.13 pinned by digest: a moved tag cannot change what runs on every node
(docs/debug-pod.md says where the digest comes from and how to check it)."""
KEPT_CAPABILITIES = ("NET_RAW",)
"""What the commands run in the pod need beyond an unprivileged process (docs/debug-pod.md): ping
(pod-to-pod, path MTU) opens a raw ICMP socket; curl, ip route/link, cat and dig/nslookup need nothing."""
DROPPED_CAPABILITIES = ("AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                        "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT")
"""The container runtime's default set (containerd) minus KEPT_CAPABILITIES, dropped by name: Pod
Security "baseline" forbids *adding* NET_RAW, so "drop ALL, add NET_RAW" is refused in the namespace
the bot ships with; keeping it from the default set is allowed (docs/debug-pod.md, "What runs in it,
and the one capability that needs")."""
PING_GROUP_RANGE = {"name": "net.ipv4.ping_group_range", "value": "0 2147483647"}
"""A "safe" sysctl: lets ping use an unprivileged ICMP socket where the runtime's default set lacks
NET_RAW (CRI-O's does), so the one command that needs it works there too (docs/debug-pod.md)."""
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|k|M|G)?$"
OWNER_LABEL = "netcheck/owner"
EXPIRES_ANNOTATION = "netcheck/expires-at"


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
    start_timeout: float = Field(
        60.0, gt=0, description="Seconds for the debug pod to be created and become Running (the whole "
        "attempt; a pod that did not start is not tried again in the same run).",
    )
    poll_interval: float = Field(0.5, gt=0, description="Seconds between pod status reads.")
    command_timeout: float = Field(8.0, gt=0, description="Seconds one exec may run by default.")
    output_limit: int = Field(64_000, ge=1000, description="Characters kept per stream (head and tail).")
    lease_duration: float = Field(
        120.0, gt=0,
        description="Seconds a debug pod stays reserved for its process without renewal (annotation "
        "netcheck/expires-at, renewed every third of it while in use); another netcheck process deletes "
        "the pod as a leftover only after that.",
    )


def expiry_text(moment: datetime) -> str:
    """RFC 3339 UTC, as Kubernetes writes timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_manifest(
    node: str, settings: DebugPodSettings, *, owner: str | None = None, expires_at: datetime | None = None
) -> dict[str, Any]:
    """The debug pod; `owner` defaults to this process, `expires_at` to its start time plus one lease."""
    name = f"netcheck-{node[:40].rstrip('.-')}-{secrets.token_hex(3)}".replace(".", "-")
    expires_at = expires_at or datetime.now(UTC) + timedelta(
        seconds=settings.start_timeout + settings.lease_duration)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": {MANAGED_BY[0]: MANAGED_BY[1], NODE_LABEL: node[:63],
                       OWNER_LABEL: owner or process_owner()},
            "annotations": {EXPIRES_ANNOTATION: expiry_text(expires_at)},
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
            "securityContext": {
                "seccompProfile": {"type": "RuntimeDefault"}, "sysctls": [dict(PING_GROUP_RANGE)],
            },
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
                        "capabilities": {"drop": list(DROPPED_CAPABILITIES)},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
        },
    }


def exit_status_from(status_text: str) -> int:
    """The exit code from the exec status channel; tolerant of missing fields.

    Why: docs/client-libraries.md#exec-exit-status.
    """
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
        stdout: list[str] = []
        stderr: list[str] = []
        status = ""
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


@dataclass
class _Attempt:
    """How far one pod start got, for the message when its time runs out."""

    name: str | None = None
    state: str = "not created yet"


class DebugPods:
    """`DebugPods` for the engine: one pod per node at a time, shared by its users (the node's own
    check and other nodes' cross-node checks), deleted when the last user releases it or on aclose.

    Host pods (hostpod.py) reuse this lifecycle through `what`, `deploy_hint`, `_manifest` and
    `_selector`."""

    what = "debug pod"
    """How messages name the pod."""
    deploy_hint = ""
    """Appended to a failed create: where the namespace and permissions come from."""

    def __init__(self, cluster: KubeCluster, settings: DebugPodSettings, *, owner: str | None = None) -> None:
        self.cluster = cluster
        self.settings = settings
        self.owner = owner or process_owner()
        self._pods: dict[str, KubePodExec] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self._deleting: set[asyncio.Task[None]] = set()
        self._renewing: dict[str, asyncio.Task[None]] = {}

    async def get(self, node: NodeFacts) -> KubePodExec:
        if not node.ready:
            # A NotReady node's kubelet is not reporting (or has no pod network): a new pod stays
            # Pending for good, so waiting start_timeout for it would only delay the report.
            raise PodUnavailable(f"node {node.name} is NotReady: its kubelet would not start a {self.what}")
        async with self._locks.setdefault(node.name, asyncio.Lock()):
            pod = self._pods.get(node.name)
            if pod is None:
                pod = await self._start(node.name)
                self._pods[node.name] = pod
                self._renewing[node.name] = asyncio.get_running_loop().create_task(self._renew(pod))
            self._users[node.name] = self._users.get(node.name, 0) + 1
            return pod

    def _manifest(self, node: str) -> dict[str, Any]:
        return pod_manifest(node, self.settings, owner=self.owner)

    def _selector(self, node: str) -> str:
        """The label selector of this kind's pods on `node` (never matching another kind's)."""
        return f"{MANAGED_BY[0]}={MANAGED_BY[1]},{NODE_LABEL}={node[:63]}"

    async def _leftovers(self, node: str) -> list[str]:
        """This node's netcheck pods nobody uses: ours but not in use, or another owner's, expired."""
        selector = self._selector(node)
        pods = await self.cluster.call(
            f"list {self.what}s of {node}", self.cluster.core.list_namespaced_pod,
            self.settings.namespace, label_selector=selector,
        )
        in_use = {pod.name for pod in self._pods.values()}
        now = datetime.now(UTC)
        leftovers: list[str] = []
        for pod in pods.items:
            meta = pod.metadata
            if meta is None or meta.name is None:
                continue
            if (meta.labels or {}).get(OWNER_LABEL) == self.owner:
                if meta.name not in in_use:
                    leftovers.append(meta.name)
            elif self._expiry(meta) <= now:
                leftovers.append(meta.name)
        return leftovers

    def _expiry(self, meta: Any) -> datetime:
        """The pod's expiry; a pod without one (an older netcheck) expires a lease after its creation."""
        text = (meta.annotations or {}).get(EXPIRES_ANNOTATION, "")
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            created = meta.creation_timestamp or datetime.now(UTC)
            return created + timedelta(seconds=self.settings.lease_duration)

    async def _renew(self, pod: KubePodExec) -> None:
        """Keep the pod reserved while this process uses it (cancelled when it is released)."""
        every = self.settings.lease_duration / 3
        while True:
            await asyncio.sleep(every)
            expires = expiry_text(datetime.now(UTC) + timedelta(seconds=self.settings.lease_duration))
            try:
                await self.cluster.call(
                    f"renew pod {pod.namespace}/{pod.name}", self.cluster.core.patch_namespaced_pod,
                    pod.name, pod.namespace, {"metadata": {"annotations": {EXPIRES_ANNOTATION: expires}}},
                    _content_type=MERGE_PATCH,
                )
            except ClusterError as exc:  # the next renewal may work; the expiry still has 2/3 left
                log.warning(f"{self.what} renewal failed", pod=pod.name, error=str(exc))

    async def _delete(self, name: str) -> None:
        try:
            await self.cluster.call(
                f"delete pod {self.settings.namespace}/{name}", self.cluster.core.delete_namespaced_pod,
                name, self.settings.namespace, grace_period_seconds=0,
            )
        except ClusterNotFound:
            pass

    async def _start(self, node: str) -> KubePodExec:
        """One attempt, bounded as a whole by start_timeout; a pod that did not start is deleted in
        the background, so the failure is reported the moment it is known."""
        ns = self.settings.namespace
        attempt = _Attempt()
        try:
            try:
                async with asyncio.timeout(self.settings.start_timeout):
                    return await self._create_running(node, attempt)
            except TimeoutError:
                raise PodUnavailable(
                    f"{self.what} {ns}/{attempt.name or '(not created)'} not Running after "
                    f"{self.settings.start_timeout:g} s ({attempt.state})"
                ) from None
        except BaseException:  # timed out, failed or cancelled: nobody will use this pod
            if attempt.name is not None and attempt.state != "Running":
                self._delete_later(attempt.name)
            raise

    async def _create_running(self, node: str, attempt: _Attempt) -> KubePodExec:
        ns = self.settings.namespace
        bound = log.bind(node=node, namespace=ns)
        try:
            for leftover in await self._leftovers(node):
                bound.info(f"deleting leftover {self.what}", pod=leftover)
                await self._delete(leftover)
            manifest = self._manifest(node)
            name = manifest["metadata"]["name"]
            bound.info(f"creating {self.what}", pod=name)
            await self.cluster.call(f"create pod {ns}/{name}", self.cluster.core.create_namespaced_pod,
                                    ns, manifest)
        except ClusterNotFound as exc:
            # the only 404 a pod create gets is a missing namespace; creating it is the operator's job
            hint = self.deploy_hint or f"create it: kubectl create namespace {ns}"
            raise PodUnavailable(f"namespace {ns!r} does not exist ({hint})") from exc
        except ClusterError as exc:
            hint = f" ({self.deploy_hint})" if self.deploy_hint else ""
            raise PodUnavailable(f"cannot create the {self.what} in {ns}: {exc}{hint}") from exc
        attempt.name, attempt.state = name, "not yet scheduled"
        ip = await self._wait_running(name, attempt)
        attempt.state = "Running"
        bound.info(f"{self.what} running", pod=name, pod_ip=ip)
        return KubePodExec(self.cluster, name, ns, ip, self.settings)

    def _delete_later(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._delete_quietly(name))
        self._deleting.add(task)
        task.add_done_callback(self._deleting.discard)

    async def _delete_quietly(self, name: str) -> None:
        try:
            await self._delete(name)
        except ClusterError:
            log.warning(f"could not delete {self.what}", pod=name)

    async def _wait_running(self, name: str, attempt: _Attempt) -> str:
        ns = self.settings.namespace
        while True:  # bounded by the caller's start_timeout
            try:
                pod = await self.cluster.call(f"read pod {ns}/{name}", self.cluster.core.read_namespaced_pod,
                                              name, ns)
            except ClusterError as exc:
                raise PodUnavailable(f"{self.what} {ns}/{name}: {exc}") from exc
            status = pod.status
            phase = status.phase if status else None
            if status is not None and phase == "Running" and status.pod_ip:
                return str(status.pod_ip)
            if status is not None and phase in ("Failed", "Succeeded"):
                raise PodUnavailable(f"{self.what} {ns}/{name} ended ({phase}): {status.message or ''}")
            attempt.state = _waiting_reason(pod) or phase or attempt.state
            await asyncio.sleep(self.settings.poll_interval)

    async def release(self, node: str) -> None:
        """One user is done with the node's pod; the last one deletes it."""
        async with self._locks.setdefault(node, asyncio.Lock()):
            users = self._users.get(node, 0) - 1
            if users > 0:
                self._users[node] = users
                return
            self._users.pop(node, None)
            pod = self._pods.pop(node, None)
            renewing = self._renewing.pop(node, None)
            if renewing is not None:
                renewing.cancel()
            if pod is not None:
                await self._delete(pod.name)

    async def aclose(self) -> None:
        for node in list(self._pods):
            self._users.pop(node, None)
            await self.release(node)
        if self._deleting:  # pods that did not start, still being deleted
            await asyncio.gather(*self._deleting, return_exceptions=True)


def _waiting_reason(pod: Any) -> str | None:
    """e.g. 'ImagePullBackOff: Back-off pulling image ...' so a stuck pod explains itself."""
    for status in (pod.status.container_statuses or []) if pod.status else []:
        waiting = status.state.waiting if status.state else None
        if waiting is not None and waiting.reason:
            return f"{waiting.reason}: {waiting.message or ''}".rstrip(": ")
    return None

