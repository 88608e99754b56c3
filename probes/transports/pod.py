"""Debug pods pinned to a node, and commands run in them through the pod exec API.

Used by the engine (`Transports.pods`, wired in `bot.wiring`): `get(node)` deletes leftover
netcheck pods of that node, creates a fresh one (nodeName pinned, tolerates every taint, labelled
`app.kubernetes.io/managed-by=netcheck`, `netcheck/node=<node>`, `netcheck/owner=<this process>`,
annotated `netcheck/expires-at`, renewed every third of `lease_duration` while in use), and has it
Running within `start_timeout` (the whole attempt: clean-up, create and wait), else fails at once
with the pod's last state and deletes the pod in the background; `release(node)` by the last user
keeps it warm for `keep_warm` seconds — the node's next check gets it without an image pull and
start (never across images or namespaces, and only if it still runs) — then deletes it; `aclose`
deletes every pod at once. A
NotReady node is not tried: its kubelet does not start new pods (docs/faults.md#pods-on-notready-nodes).
Exec goes over WebSocket through the package's asyncio `WsApiClient` (`kubernetes.aio.stream`), on
the event loop; the exit status is read from the status channel defensively
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
import contextlib
import math
import secrets
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field

from probes.errors import ClusterError, ClusterNotFound, CommandTimeout, PodUnavailable
from probes.facts import NodeFacts
from probes.model import trim
from probes.transports.base import CommandResult
from probes.transports.cluster import AUTH_SETTINGS, KubeCluster, _path
from probes.transports.commands import run_batched
from probes.transports.execstream import ExecStreams
from probes.transports.owner import process_owner
from probes.transports.resident import ResidentShell, ShellGone

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
PRECONNECT_PER_POD = 4
"""Connections to the API server opened while a debug pod starts (`KubeCluster.preconnect`): its
first execs, one per probe waiting for the pod, then skip TCP and TLS (more than this open their own)."""
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
    poll_interval: float = Field(
        0.5, gt=0, description="Seconds between pod status reads while it starts, where its watch is "
        "refused (RBAC without watch on pods) or ends first.")
    command_timeout: float = Field(8.0, gt=0, description="Seconds one exec may run by default.")
    output_limit: int = Field(64_000, ge=1000, description="Characters kept per stream (head and tail).")
    keep_warm: float = Field(
        60.0, ge=0,
        description="Seconds a node's debug pod outlives its last user, for the next check of that node "
        "(the re-check after a fix, a second /netcheck): handed over without an image pull and start; "
        "deleted when the time is up or netcheck stops (0: deleted at once).",
    )
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


def url_path(url: str) -> str:
    """The path and query of a URL (the client's serialized exec URL, without scheme and host)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


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
    """A `PodExec` on one running debug pod: each command runs in an idle resident shell
    (resident.py) on an exec WebSocket of its own, or in a new one."""

    def __init__(self, cluster: KubeCluster, name: str, namespace: str, ip: str,
                 settings: DebugPodSettings, *, keep_shells: bool = True) -> None:
        """`keep_shells=False`: every command is an exec of its own, closed after it, as `kubectl
        exec` does (the bench's sequential baseline)."""
        self._cluster = cluster
        self._keep_shells = keep_shells
        self.name = name
        self.namespace = namespace
        self.ip = ip
        self._settings = settings
        self.image = settings.image
        self.reused = False
        """Handed over already running (warm, or shared with another user) rather than started."""
        self._idle: list[ResidentShell] = []

    async def _connect(self, argv: list[str]) -> Any:
        """An exec WebSocket running `argv` with stdin open (aiohttp's ClientWebSocketResponse)."""
        api = await self._cluster.websocket_api()
        method, url, headers, body, post = await api.param_serialize(
            method="GET",
            resource_path=_path("/api/v1/namespaces/{ns}/pods/{n}/exec", ns=self.namespace, n=self.name),
            query_params=[("command", argv), ("stderr", True), ("stdin", True), ("stdout", True),
                          ("tty", False)],
            header_params={"Accept": "*/*"}, auth_settings=AUTH_SETTINGS,
            collection_formats={"command": "multi"},
        )
        # _preload_content=False: the WebSocket itself (preloading joins stdout and stderr and drops
        # the status channel, docs/client-libraries.md#the-asyncio-client)
        response = await api.call_api(method, url, headers, body, post, _preload_content=False)
        try:
            return await response.response
        except Exception as exc:
            status = getattr(exc, "status", 0)
            if type(exc).__name__ != "WSServerHandshakeError" or not 400 <= status < 500:
                raise
            # aiohttp drops a refused handshake's body, where the API server says who may not do what
            # (RBAC, Pod Security): the same request without the upgrade gets the same answer, read in full
            try:
                await self._cluster.request(f"exec in pod {self.namespace}/{self.name}", "GET", url_path(url))
            except ClusterError as told:
                if told.status == status:
                    raise told from exc
            raise

    async def _start(self, script: str) -> ExecStreams:
        return ExecStreams(await self._connect(["sh", "-c", script]), exit_status_from)

    async def run_batch(self, commands: Sequence[str], *, timeout: float | None = None,
                        ) -> list[CommandResult]:
        """The commands as one script (commands.Batch) in one resident shell: one round trip instead
        of one per command."""
        return await run_batched(self, commands, cap=self._settings.output_limit, timeout=timeout)

    async def run(self, command: str, *, timeout: float | None = None,
                  output_limit: int | None = None) -> CommandResult:
        limit = timeout or self._settings.command_timeout
        what = f"exec in pod {self.namespace}/{self.name}"
        while True:
            resident: ResidentShell | None = None
            try:
                async with asyncio.timeout(limit):
                    resident = await self._resident(command)
                    exit_status, stdout, stderr = await resident.run(command)
                break
            except ShellGone as exc:  # an idle shell that had ended: the command did not run
                assert resident is not None
                await resident.close()
                if resident.new:
                    raise ClusterError(f"{what}: the pod's shell ended: {exc}") from exc
            except BaseException as exc:
                if resident is not None:
                    await resident.close()  # still inside the command, or its WebSocket failed
                if isinstance(exc, TimeoutError):
                    raise CommandTimeout(
                        f"{self.name}: command timed out after {limit:g} s: {command}") from None
                if isinstance(exc, Exception):
                    raise self._cluster.translate(exc, what) from exc
                raise
        if resident.usable and self._keep_shells:
            self._idle.append(resident)
        else:
            await resident.close()
        cap = output_limit or self._settings.output_limit
        return CommandResult(
            command=command,
            exit_status=exit_status,
            stdout=trim(stdout, cap),
            stderr=trim(stderr, cap),
            truncated=len(stdout) > cap or len(stderr) > cap,
        )

    async def _resident(self, command: str) -> ResidentShell:
        """An idle resident shell, else a new one started with `command`."""
        while self._idle:
            idle = self._idle.pop()
            if idle.usable:
                return idle
            await idle.close()
        return await ResidentShell.open(self._start, command)

    async def close(self) -> None:
        """Close the idle resident shells (the pod is being deleted, or netcheck stops)."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(resident.close() for resident in idle), return_exceptions=True)


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
        self._helpers: set[asyncio.Task[None]] = set()
        self._renewing: dict[str, asyncio.Task[None]] = {}
        self._cooling: dict[str, asyncio.Task[None]] = {}
        """Warm pods nobody uses, each with the timer that deletes it (settings.keep_warm)."""
        self._retired: set[str] = set()
        """Names of pods in use when `retire_warm` ran: deleted by their last user, never kept warm."""

    async def get(self, node: NodeFacts) -> KubePodExec:
        if not node.ready:
            # A NotReady node's kubelet is not reporting (or has no pod network): a new pod stays
            # Pending for good, so waiting start_timeout for it would only delay the report.
            raise PodUnavailable(f"node {node.name} is NotReady: its kubelet would not start a {self.what}")
        async with self._locks.setdefault(node.name, asyncio.Lock()):
            pod = self._pods.get(node.name)
            cooling = self._cooling.pop(node.name, None)
            if cooling is not None:
                cooling.cancel()
                if not await self._still_running(pod):
                    stale = self._forget(node.name)
                    if stale is not None:
                        await stale.close()
                    pod = None
            if pod is None:
                pod = await self._start(node.name)
                self._pods[node.name] = pod
                self._renewing[node.name] = asyncio.get_running_loop().create_task(self._renew(pod))
            else:
                pod.reused = True
            self._users[node.name] = self._users.get(node.name, 0) + 1
            return pod

    async def _still_running(self, pod: KubePodExec | None) -> bool:
        """A warm pod may be handed over if it is this kind's (same image and namespace) and still
        Running with the same IP (it may have been deleted or evicted meanwhile)."""
        if pod is None or pod.image != self.settings.image or pod.namespace != self.settings.namespace:
            return False
        try:
            status = (await self.cluster.get_pod(pod.namespace, pod.name)).get("status") or {}
        except ClusterError:
            return False
        return status.get("phase") == "Running" and status.get("podIP") == pod.ip

    def _forget(self, node: str) -> KubePodExec | None:
        pod = self._pods.pop(node, None)
        renewing = self._renewing.pop(node, None)
        if renewing is not None:
            renewing.cancel()
        return pod

    def _manifest(self, node: str) -> dict[str, Any]:
        return pod_manifest(node, self.settings, owner=self.owner)

    def _selector(self, node: str) -> str:
        """The label selector of this kind's pods on `node` (never matching another kind's)."""
        return f"{MANAGED_BY[0]}={MANAGED_BY[1]},{NODE_LABEL}={node[:63]}"

    async def _leftovers(self, node: str) -> list[str]:
        """This node's netcheck pods nobody uses: ours but not in use, or another owner's, expired."""
        selector = self._selector(node)
        pods = await self.cluster.list_pods(namespace=self.settings.namespace, label_selector=selector)
        in_use = {pod.name for pod in self._pods.values()}
        now = datetime.now(UTC)
        leftovers: list[str] = []
        for pod in pods:
            meta = pod.get("metadata") or {}
            if (meta.get("labels") or {}).get(OWNER_LABEL) == self.owner:
                if meta.get("name") not in in_use:
                    leftovers.append(meta["name"])
            elif self._expiry(meta) <= now:
                leftovers.append(meta["name"])
        return leftovers

    def _expiry(self, meta: dict[str, Any]) -> datetime:
        """The pod's expiry; a pod without one (an older netcheck) expires a lease after its creation."""
        text = (meta.get("annotations") or {}).get(EXPIRES_ANNOTATION, "")
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                created = datetime.fromisoformat(str(meta.get("creationTimestamp")).replace("Z", "+00:00"))
            except ValueError:
                created = datetime.now(UTC)
            return created + timedelta(seconds=self.settings.lease_duration)

    async def _renew(self, pod: KubePodExec) -> None:
        """Keep the pod reserved while this process uses it (cancelled when it is released)."""
        every = self.settings.lease_duration / 3
        while True:
            await asyncio.sleep(every)
            expires = expiry_text(datetime.now(UTC) + timedelta(seconds=self.settings.lease_duration))
            try:
                await self.cluster.patch_pod(pod.namespace, pod.name,
                                             {"metadata": {"annotations": {EXPIRES_ANNOTATION: expires}}})
            except ClusterError as exc:  # the next renewal may work; the expiry still has 2/3 left
                log.warning(f"{self.what} renewal failed", pod=pod.name, error=str(exc))

    async def _delete(self, name: str) -> None:
        try:
            await self.cluster.delete_pod(self.settings.namespace, name)
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
        manifest = self._manifest(node)
        name = manifest["metadata"]["name"]
        bound.info(f"creating {self.what}", pod=name)
        # The node's leftovers are listed and deleted while the new pod is created: one round trip
        # less before it starts (the new pod, already ours, is never taken for a leftover).
        cleaned, created = await asyncio.gather(
            self._delete_leftovers(node, keep=name), self.cluster.create_pod(ns, manifest),
            return_exceptions=True)
        if isinstance(created, dict):
            attempt.name, attempt.state = name, "not yet scheduled"  # deleted if it does not start
        for outcome in (created, cleaned):
            if isinstance(outcome, ClusterNotFound):
                # the only 404 a pod create gets is a missing namespace; creating it is the operator's job
                hint = self.deploy_hint or f"create it: kubectl create namespace {ns}"
                raise PodUnavailable(f"namespace {ns!r} does not exist ({hint})") from outcome
            if isinstance(outcome, ClusterError):
                hint = f" ({self.deploy_hint})" if self.deploy_hint else ""
                raise PodUnavailable(f"cannot create the {self.what} in {ns}: {outcome}{hint}") from outcome
            if isinstance(outcome, BaseException):
                raise outcome
        assert isinstance(created, dict)
        self._background(self.cluster.preconnect(PRECONNECT_PER_POD))  # while the pod starts
        ip = await self._wait_running(name, attempt, created)
        attempt.state = "Running"
        bound.info(f"{self.what} running", pod=name, pod_ip=ip)
        return KubePodExec(self.cluster, name, ns, ip, self.settings)

    async def _delete_leftovers(self, node: str, *, keep: str) -> None:
        for leftover in await self._leftovers(node):
            if leftover != keep:
                log.info(f"deleting leftover {self.what}", node=node, pod=leftover)
                await self._delete(leftover)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Work nobody waits for (cancelled by aclose if it still runs)."""
        task = asyncio.get_running_loop().create_task(work)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    def _delete_later(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._delete_quietly(name))
        self._deleting.add(task)
        task.add_done_callback(self._deleting.discard)

    async def _delete_quietly(self, name: str) -> None:
        try:
            await self._delete(name)
        except ClusterError:
            log.warning(f"could not delete {self.what}", pod=name)

    async def _wait_running(self, name: str, attempt: _Attempt, created: dict[str, Any]) -> str:
        """The pod's IP once it is Running: watched from the create's resourceVersion, so the start
        is seen when the kubelet reports it; polled every poll_interval where the watch is refused
        (RBAC without `watch` on pods) or ends first. Bounded by the caller's start_timeout."""
        ip = self._running_ip(name, created, attempt)
        if ip is not None:
            return ip
        version = str((created.get("metadata") or {}).get("resourceVersion") or "")
        if version:
            try:
                ip = await self._watch_running(name, attempt, version)
            except ClusterError as exc:
                log.info(f"{self.what} watch failed, polling instead", pod=name, error=str(exc))
            if ip is not None:
                return ip
        ns = self.settings.namespace
        while True:
            try:
                pod = await self.cluster.get_pod(ns, name)
            except ClusterError as exc:
                raise PodUnavailable(f"{self.what} {ns}/{name}: {exc}") from exc
            ip = self._running_ip(name, pod, attempt)
            if ip is not None:
                return ip
            await asyncio.sleep(self.settings.poll_interval)

    async def _watch_running(self, name: str, attempt: _Attempt, version: str) -> str | None:
        """The IP from the first event showing the pod Running; None when the watch ends before."""
        ns = self.settings.namespace
        server_timeout = max(1, math.ceil(self.settings.start_timeout))
        events = self.cluster.watch_pod(ns, name, version, timeout_s=server_timeout)
        async with contextlib.aclosing(events):
            async for event in events:
                if event.get("type") == "DELETED":
                    raise PodUnavailable(f"{self.what} {ns}/{name} was deleted before it ran")
                ip = self._running_ip(name, event.get("object") or {}, attempt)
                if ip is not None:
                    return ip
        return None

    def _running_ip(self, name: str, pod: dict[str, Any], attempt: _Attempt) -> str | None:
        """The pod IP if it runs; raises if it ended; else notes why it waits (for the timeout's message)."""
        status = pod.get("status") or {}
        phase = status.get("phase")
        if phase == "Running" and status.get("podIP"):
            return str(status["podIP"])
        if phase in ("Failed", "Succeeded"):
            why = status.get("message") or ""
            raise PodUnavailable(f"{self.what} {self.settings.namespace}/{name} ended ({phase}): {why}")
        attempt.state = _waiting_reason(pod) or phase or attempt.state
        return None

    async def release(self, node: str, *, keep_warm: bool = True) -> None:
        """One user is done with the node's pod; after the last one it stays warm for
        `settings.keep_warm` seconds (then it is deleted), or is deleted at once."""
        async with self._locks.setdefault(node, asyncio.Lock()):
            users = self._users.get(node, 0) - 1
            if users > 0:
                self._users[node] = users
                return
            self._users.pop(node, None)
            retired = node in self._pods and self._pods[node].name in self._retired
            if keep_warm and not retired and self.settings.keep_warm > 0 and node in self._pods:
                self._cooling[node] = asyncio.get_running_loop().create_task(self._cool(node))
                return
            pod = self._forget(node)
            if pod is not None:
                self._retired.discard(pod.name)
                await pod.close()
                await self._delete(pod.name)

    async def retire_warm(self) -> None:
        """No pod started so far is handed over again: warm ones are deleted now, those in use when
        their last user is done. For a change only pods started after it see (a pod's interface MTU is
        set when it starts: the calico-mtu fix's verification needs a new pod)."""
        for node, timer in list(self._cooling.items()):
            timer.cancel()
            async with self._locks.setdefault(node, asyncio.Lock()):
                if self._cooling.get(node) is not timer:
                    continue  # handed over meanwhile: it is in use now
                self._cooling.pop(node, None)
                pod = self._forget(node)
            if pod is not None:
                await pod.close()
                await self._delete(pod.name)
        self._retired.update(pod.name for pod in self._pods.values())

    async def _cool(self, node: str) -> None:
        await asyncio.sleep(self.settings.keep_warm)
        async with self._locks.setdefault(node, asyncio.Lock()):
            if self._cooling.get(node) is not asyncio.current_task() or self._users.get(node):
                return  # handed over meanwhile
            self._cooling.pop(node, None)
            pod = self._forget(node)
        if pod is not None:
            await pod.close()
            try:
                await self._delete(pod.name)
            except ClusterError as exc:  # it expires and becomes any netcheck's leftover
                log.warning(f"could not delete the warm {self.what}", pod=pod.name, error=str(exc))

    async def aclose(self) -> None:
        """Delete every pod, warm ones included (netcheck stops)."""
        for helper in self._helpers:
            helper.cancel()
        for timer in self._cooling.values():
            timer.cancel()
        self._cooling.clear()
        for node in list(self._pods):
            self._users.pop(node, None)
            await self.release(node, keep_warm=False)
        if self._deleting:  # pods that did not start, still being deleted
            await asyncio.gather(*self._deleting, return_exceptions=True)


def _waiting_reason(pod: dict[str, Any]) -> str | None:
    """e.g. 'ImagePullBackOff: Back-off pulling image ...' so a stuck pod explains itself."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return f"{waiting['reason']}: {waiting.get('message') or ''}".rstrip(": ")
    return None

