"""The Kubernetes API through the official client, kept off the event loop.

Built by `bot.wiring.build_engine`; used by discovery (probes/transports/discovery.py), the debug
pods (pod.py), probes (the `Cluster` protocol) and fixes (`patch_installation`). With pod.py, the
only module importing kubernetes. Every blocking call runs on a bounded thread pool the caller
owns; every `ApiException` leaves as a `ClusterError` subclass (`raise ... from exc`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from pydantic import BaseModel, ConfigDict, Field

from probes.errors import (
    ClusterConflict,
    ClusterError,
    ClusterForbidden,
    ClusterNotFound,
    ClusterUnreachable,
    ConfigError,
    ConfigMissing,
)

T = TypeVar("T")

CALICO_OPERATOR = ("operator.tigera.io", "v1", "installations")
CALICO_IPPOOLS = ("crd.projectcalico.org", "v1", "ippools")
TIGERA_STATUS = ("operator.tigera.io", "v1", "tigerastatuses")
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
_HANDSHAKE = re.compile(r"Handshake status (\d{3})")


class ClusterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kubeconfig: Path | None = Field(None, description="kubeconfig file; None: in-cluster, then default.")
    context: str | None = Field(None, description="kubeconfig context; None: the current context.")
    request_timeout: float = Field(10.0, gt=0, description="Seconds one API request may take.")
    max_workers: int = Field(8, ge=1, le=64, description="Threads running blocking client calls.")


def _missing_kubeconfig(settings: ClusterSettings) -> ConfigMissing | None:
    """A kubeconfig that is not there at all: nothing to check with, rather than a bad value."""
    if settings.kubeconfig is not None:
        path = settings.kubeconfig.expanduser()
        return None if path.exists() else ConfigMissing(f"kubeconfig {path} does not exist")
    if settings.context is not None or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    default = Path(k8s_config.KUBE_CONFIG_DEFAULT_LOCATION).expanduser()
    if any(Path(p).expanduser().exists() for p in str(default).split(os.pathsep) if p):
        return None
    return ConfigMissing(
        f"no kubeconfig: {default} does not exist and this is not a pod "
        "(set KUBECONFIG or `kubeconfig:` in the configuration)"
    )


def _object(value: object, what: str) -> dict[str, Any]:
    """A JSON object the API answered; anything else is not what the API promises."""
    if not isinstance(value, dict):
        raise ClusterError(f"{what}: the API answered {type(value).__name__}, not an object")
    return value


def load_api_client(settings: ClusterSettings) -> k8s.ApiClient:
    """kubeconfig/context from the config, else in-cluster, else the default kubeconfig."""
    missing = _missing_kubeconfig(settings)
    if missing is not None:
        raise missing
    try:
        if settings.kubeconfig is not None or settings.context is not None:
            path = str(settings.kubeconfig.expanduser()) if settings.kubeconfig else None
            configured: k8s.ApiClient = k8s_config.new_client_from_config(config_file=path,
                                                                           context=settings.context)
            return configured
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = k8s.Configuration()
            k8s_config.load_incluster_config(client_configuration=configuration)
            return k8s.ApiClient(configuration)
        default: k8s.ApiClient = k8s_config.new_client_from_config()
        return default
    except (ConfigException, OSError, ValueError) as exc:
        where = settings.kubeconfig or "the default kubeconfig"
        raise ConfigError(f"kubeconfig: cannot load {where}: {exc}") from exc


def api_error(exc: ApiException, what: str) -> ClusterError:
    """Translate an ApiException (exec handshake failures carry the status only in `reason`)."""
    status = exc.status or 0
    reason = str(exc.reason or "").strip()
    body_text = exc.body
    if status == 0:
        match = _HANDSHAKE.search(reason)
        status = int(match.group(1)) if match else 0
        # websocket-client's reason: "Handshake status 403 Forbidden -+-+- {headers} -+-+- {body}"
        parts = reason.split(" -+-+- ")
        if match and len(parts) == 3:
            body_text, reason = parts[2], parts[0]
    message = reason
    try:
        body = json.loads(body_text) if body_text else {}
        message = body.get("message") or message
    except (ValueError, TypeError, AttributeError):
        pass
    text = f"{what}: {message} (HTTP {status})" if status else f"{what}: {message}"
    kind = {403: ClusterForbidden, 404: ClusterNotFound, 409: ClusterConflict}.get(status, ClusterError)
    if status == 401:
        kind = ClusterForbidden
    return kind(text, status=status or None)


def _causes(exc: BaseException) -> list[BaseException]:
    """exc and what it wraps: urllib3's `reason`, else `__cause__`/`__context__`, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        reason = getattr(current, "reason", None)
        current = reason if isinstance(reason, BaseException) else (current.__cause__ or current.__context__)
    return chain


def _unreachable_reason(exc: BaseException) -> str:
    """The root cause under urllib3's wrapping ("Max retries exceeded … (Caused by …)"), in a few words."""
    for cause in reversed(_causes(exc)):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "cannot resolve the host name"
        if isinstance(cause, TimeoutError | urllib3.exceptions.TimeoutError):
            return "timed out"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[0].lower() + cause.strerror[1:]
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def unreachable(exc: BaseException, host: str) -> ClusterUnreachable:
    """One short line for a request that never got an HTTP answer (refused, timed out, TLS, DNS)."""
    return ClusterUnreachable(f"cannot reach the Kubernetes API at {host}: {_unreachable_reason(exc)}")


class KubeCluster:
    """The `Cluster` protocol (and more) over one ApiClient and a caller-owned executor."""

    def __init__(self, api: k8s.ApiClient, executor: ThreadPoolExecutor, *, request_timeout: float) -> None:
        self.api = api
        self.core = k8s.CoreV1Api(api)
        self.apps = k8s.AppsV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)
        self.executor = executor
        self.request_timeout = request_timeout

    async def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking client call on the executor; errors become ClusterErrors."""
        kwargs.setdefault("_request_timeout", self.request_timeout)
        return await self.run_blocking(what, fn, *args, **kwargs)

    async def run_blocking(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Any blocking function using this client (e.g. an exec session) on the executor."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))
        except ApiException as exc:
            raise api_error(exc, what) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise unreachable(exc, self.api.configuration.host) from exc

    def exec_client(self) -> k8s.ApiClient:
        """A fresh ApiClient for ONE exec session: `kubernetes.stream.stream` swaps the client's
        `request` for a WebSocket one while it runs, so sharing a client across threads sends other
        calls (e.g. a pod delete) over WebSocket and can leave the swap in place for good."""
        return k8s.ApiClient(self.api.configuration)

    def to_dict(self, obj: Any) -> dict[str, Any]:
        return _object(self.api.sanitize_for_serialization(obj), "an API object")

    # -- reads --------------------------------------------------------------------------------

    async def list_nodes(self) -> list[dict[str, Any]]:
        nodes = await self.call("list nodes", self.core.list_node)
        return [self.to_dict(n) for n in nodes.items]

    async def list_nodes_versioned(self) -> tuple[list[dict[str, Any]], str]:
        """Nodes plus the list's resourceVersion, where a watch starts (added for the Slack node watch)."""
        nodes = await self.call("list nodes", self.core.list_node)
        version = nodes.metadata.resource_version if nodes.metadata else None
        return [self.to_dict(n) for n in nodes.items], str(version or "")

    async def watch_nodes(self, resource_version: str, *, timeout_s: int) -> AsyncIterator[dict[str, Any]]:
        """Node events {type, object} from `resource_version` until the server ends the watch after
        `timeout_s`. 410 Gone raises ClusterError(status=410): re-list, then watch again. The blocking
        stream runs on the executor and hands events over through a queue."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        finished = object()
        stream = k8s_watch.Watch()

        def pump() -> None:
            try:
                for event in stream.stream(self.core.list_node, resource_version=resource_version,
                                           timeout_seconds=timeout_s, _request_timeout=timeout_s + 5):
                    loop.call_soon_threadsafe(queue.put_nowait, event)
                loop.call_soon_threadsafe(queue.put_nowait, finished)
            except Exception as exc:  # handed to the async side, translated there
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        pumping = loop.run_in_executor(self.executor, pump)
        try:
            while (item := await queue.get()) is not finished:
                if isinstance(item, ApiException):
                    raise api_error(item, "watch nodes") from item
                if isinstance(item, Exception):
                    raise ClusterUnreachable(f"watch nodes: {item}") from item
                obj = item["object"]
                yield {"type": item["type"], "object": obj if isinstance(obj, dict) else self.to_dict(obj)}
        finally:
            stream.stop()  # the pump ends at the next event or at the server's timeout
            if pumping.done():
                pumping.exception()

    async def get_service(self, namespace: str, name: str) -> dict[str, Any]:
        svc = await self.call(f"get service {namespace}/{name}", self.core.read_namespaced_service,
                              name, namespace)
        return self.to_dict(svc)

    async def get_endpoints(self, namespace: str, name: str) -> dict[str, Any]:
        ep = await self.call(f"get endpoints {namespace}/{name}", self.core.read_namespaced_endpoints,
                             name, namespace)
        return self.to_dict(ep)

    async def pod_logs(self, namespace: str, name: str, *, timeout: float) -> str:
        return await self.call(f"logs of pod {namespace}/{name}", self.core.read_namespaced_pod_log,
                               name, namespace, _request_timeout=timeout)

    async def get_installation(self) -> dict[str, Any] | None:
        try:
            found = await self.call("get Installation default", self.custom.get_cluster_custom_object,
                                    *CALICO_OPERATOR, "default")
        except ClusterNotFound:
            return None  # no operator CRD or no Installation: Calico via the operator is absent
        return _object(found, "Installation default")

    async def list_ippools(self) -> list[dict[str, Any]]:
        try:
            pools = await self.call("list IPPools", self.custom.list_cluster_custom_object, *CALICO_IPPOOLS)
        except ClusterNotFound:
            return []
        return list(_object(pools, "IPPool list").get("items", []))

    async def get_daemonset(self, namespace: str, name: str) -> dict[str, Any]:
        """A DaemonSet (the calico-node rollout the calico-mtu fix follows)."""
        ds = await self.call(f"get daemonset {namespace}/{name}", self.apps.read_namespaced_daemon_set,
                             name, namespace)
        return self.to_dict(ds)

    async def list_pods(self, *, namespace: str | None = None, label_selector: str = "",
                        field_selector: str = "") -> list[dict[str, Any]]:
        """Pods of one namespace, or of all (e.g. `spec.nodeName=NODE`: the pods on a node)."""
        where = f"in {namespace}" if namespace else "in all namespaces"
        selectors = {"label_selector": label_selector, "field_selector": field_selector}
        if namespace:
            pods = await self.call(f"list pods {where}", self.core.list_namespaced_pod, namespace,
                                   **selectors)
        else:
            pods = await self.call(f"list pods {where}", self.core.list_pod_for_all_namespaces,
                                   **selectors)
        return [self.to_dict(p) for p in pods.items]

    async def get_tigerastatus(self, name: str) -> dict[str, Any] | None:
        """operator.tigera.io/v1 TigeraStatus `name`, or None when the operator publishes none."""
        try:
            found = await self.call(f"get TigeraStatus {name}", self.custom.get_cluster_custom_object,
                                    *TIGERA_STATUS, name)
        except ClusterNotFound:
            return None
        return _object(found, f"TigeraStatus {name}")

    # -- writes (fixes) -------------------------------------------------------------------------

    async def patch_installation(self, patch: Any, *, json_patch: bool = False) -> dict[str, Any]:
        """Merge patch (a dict) or JSON patch (a list of operations, json_patch=True)."""
        patched = await self.call(
            "patch Installation default",
            self.custom.patch_cluster_custom_object,
            *CALICO_OPERATOR,
            "default",
            patch,
            _content_type=JSON_PATCH if json_patch else MERGE_PATCH,
        )
        return _object(patched, "Installation default")

    def close(self) -> None:
        self.api.close()
