"""The Kubernetes API through the asyncio client the kubernetes package ships (`kubernetes.aio`).

Built by `bot.wiring.build_transports`; used by discovery (probes/transports/discovery.py), the debug
and host pods (pod.py, hostpod.py), the fix and leader Leases (leases.py), the node watch
(bot/slack/nodesource.py), probes (the `Cluster` protocol) and fixes (`patch_installation`). The
client's names come from kubeaio.py (the asyncio client without the package's synchronous side),
imported only when the first request is made, so `netcheck --help`, a configuration error or
`netcheck lab` never import the client.

Everything runs on the event loop (aiohttp underneath): no thread pool, no watch pump. The requests
are made by the package's `ApiClient` (kubeconfig and in-cluster loading, TLS, tokens, its aiohttp
session) on the REST paths directly, with JSON in and out: the generated per-group API classes pull
hundreds of pydantic models in at import (docs/client-libraries.md#the-asyncio-client). Every error
leaves here translated once (`api_error`, `unreachable`): an HTTP status as a `ClusterError`
subclass, no answer at all as `ClusterUnreachable` (`raise ... from exc`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

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

if TYPE_CHECKING:
    from kubernetes.aio.client import ApiClient, Configuration

CALICO_OPERATOR = ("operator.tigera.io", "v1", "installations")
CALICO_IPPOOLS = ("crd.projectcalico.org", "v1", "ippools")
TIGERA_STATUS = ("operator.tigera.io", "v1", "tigerastatuses")
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
AUTH_SETTINGS = ["BearerToken"]
"""What the package's generated API methods pass: the kubeconfig's token (or the in-cluster one)."""
CONNECTIONS_MAX = 200
"""Connections open at once to the API server: requests and pod execs share one session (an exec's
upgrade takes a pooled connection), so twice the package's default per session (100), what they had
when each had a session of its own (a fleet check's execs alone can reach 100)."""
_HANDSHAKE = re.compile(r"Handshake status (\d{3})")


class ClusterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kubeconfig: Path | None = Field(None, description="kubeconfig file; None: in-cluster, then default.")
    context: str | None = Field(None, description="kubeconfig context; None: the current context.")
    request_timeout: float = Field(10.0, gt=0, description="Seconds one API request may take.")


def check_kubeconfig(settings: ClusterSettings) -> None:
    """Raise `ConfigMissing` for a kubeconfig that is not there at all: nothing to check with, rather
    than a bad value. A stat, no client import: callers check it before they start anything."""
    missing = _missing_kubeconfig(settings)
    if missing is not None:
        raise missing


def _missing_kubeconfig(settings: ClusterSettings) -> ConfigMissing | None:
    if settings.kubeconfig is not None:
        path = settings.kubeconfig.expanduser()
        return None if path.exists() else ConfigMissing(f"kubeconfig {path} does not exist")
    if settings.context is not None or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    # where the client looks by default (kubernetes.config.KUBE_CONFIG_DEFAULT_LOCATION), read now
    default = os.environ.get("KUBECONFIG") or "~/.kube/config"
    if any(Path(p).expanduser().exists() for p in default.split(os.pathsep) if p):
        return None
    return ConfigMissing(
        f"no kubeconfig: {Path(default).expanduser()} does not exist and this is not a pod "
        "(set KUBECONFIG or `kubeconfig:` in the configuration)"
    )


def _object(value: object, what: str) -> dict[str, Any]:
    """A JSON object the API answered; anything else is not what the API promises."""
    if not isinstance(value, dict):
        raise ClusterError(f"{what}: the API answered {type(value).__name__}, not an object")
    return value


async def load_configuration(settings: ClusterSettings) -> Configuration:
    """kubeconfig/context from the config, else in-cluster, else the default kubeconfig."""
    from probes.transports.kubeaio import (
        ConfigException,
        Configuration,
        load_incluster_config,
        load_kube_config,
    )

    check_kubeconfig(settings)
    configuration = Configuration()
    try:
        if settings.kubeconfig is not None or settings.context is not None:
            path = str(settings.kubeconfig.expanduser()) if settings.kubeconfig else None
            await load_kube_config(config_file=path, context=settings.context,
                                   client_configuration=configuration, persist_config=False)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            load_incluster_config(client_configuration=configuration)
        else:
            await load_kube_config(client_configuration=configuration, persist_config=False)
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
        where = settings.kubeconfig or "the default kubeconfig"
        raise ConfigError(f"kubeconfig: cannot load {where}: {exc}") from exc
    # The package's session trusts the environment: every request would look up ~/.netrc and the
    # proxy variables in a worker thread. The kubeconfig's proxy-url still applies (as with the
    # synchronous client); docs/client-libraries.md#the-asyncio-client.
    configuration.client_session_kwargs = {"trust_env": False}
    configuration.connection_pool_maxsize = CONNECTIONS_MAX
    return configuration


def api_error(status: int, reason: str, body: bytes | str | None, what: str) -> ClusterError:
    """Translate an HTTP error answer: the Status body's message when there is one."""
    message = reason
    try:
        parsed = json.loads(body) if body else {}
        if isinstance(parsed, dict):
            message = parsed.get("message") or message
    except (ValueError, TypeError):
        pass
    text = f"{what}: {message} (HTTP {status})" if status else f"{what}: {message}"
    kind = {401: ClusterForbidden, 403: ClusterForbidden, 404: ClusterNotFound,
            409: ClusterConflict}.get(status, ClusterError)
    return kind(text, status=status or None)


def from_api_exception(exc: Any, what: str) -> ClusterError:
    """The package's ApiException (e.g. a watch's ERROR event: status and "Reason: message")."""
    status = int(getattr(exc, "status", 0) or 0)
    reason = str(getattr(exc, "reason", "") or "").strip()
    match = _HANDSHAKE.search(reason)
    if not status and match:
        status = int(match.group(1))
    return api_error(status, reason, getattr(exc, "body", None), what)


def _causes(exc: BaseException) -> list[BaseException]:
    """exc and what it wraps, outermost first: aiohttp's `os_error`/`certificate_error` (a connector
    error keeps the socket's error there), else `__cause__`/`__context__`."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        wrapped = getattr(current, "certificate_error", None) or getattr(current, "os_error", None)
        if not isinstance(wrapped, BaseException):
            wrapped = current.__cause__ or current.__context__
        current = wrapped
    return chain


def _unreachable_reason(exc: BaseException) -> str:
    """The root cause under aiohttp's wrapping ("Cannot connect to host … [Connect call failed …]"),
    in a few words."""
    for cause in reversed(_causes(exc)):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "cannot resolve the host name"
        if isinstance(cause, TimeoutError):
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


def _path(template: str, **parts: str) -> str:
    return template.format(**{k: quote(v, safe="") for k, v in parts.items()})


def _client(kind: type[ApiClient], configuration: Configuration) -> ApiClient:
    """The package's client; its TLS context is made here (the synchronous client made it at the first
    connection), so an unusable CA or client certificate file is a configuration error, in one line."""
    try:
        return kind(configuration)
    except (ssl.SSLError, OSError) as exc:
        files = ", ".join(str(f) for f in (configuration.ssl_ca_cert, configuration.cert_file) if f)
        raise ConfigError(f"kubeconfig: cannot use the TLS files {files}: {exc}") from exc


def _session(api: ApiClient) -> Any:
    """The aiohttp session under the package's client (made now if no request made it yet)."""
    rest = api.rest_client
    if rest.pool_manager is None:
        rest.pool_manager = rest._create_pool_manager()  # the package's documented override point
    return rest.pool_manager


def _client_timeout(seconds: float) -> Any:
    from aiohttp import ClientTimeout

    return ClientTimeout(total=seconds)


class KubeCluster:
    """The `Cluster` protocol (and more) over the package's asyncio `ApiClient`, made at first use."""

    def __init__(self, settings: ClusterSettings, *, configuration: Configuration | None = None,
                 on_client: Callable[[], None] | None = None) -> None:
        """`on_client`: called once, when the client exists and its first request is about to go out
        (the engine starts the SSH client's import there: any earlier, that import's CPU delays the
        first request; later, the first SSH connection waits for it)."""
        self.settings = settings
        self.request_timeout = settings.request_timeout
        self._configuration = configuration
        self._on_client = on_client
        self._api: ApiClient | None = None
        self._ws: ApiClient | None = None
        self._lock: asyncio.Lock | None = None

    @classmethod
    def for_token(cls, url: str, ca_file: str | Path, token: str | None, *,
                  request_timeout: float = 10.0) -> KubeCluster:
        """A client of the API at `url` with a bearer token, without a kubeconfig (embedders, tests)."""
        from probes.transports.kubeaio import Configuration

        configuration = Configuration(host=url)
        configuration.ssl_ca_cert = str(ca_file)
        if token is not None:
            configuration.api_key = {"BearerToken": token}
            configuration.api_key_prefix = {"BearerToken": "Bearer"}
        configuration.client_session_kwargs = {"trust_env": False}
        configuration.connection_pool_maxsize = CONNECTIONS_MAX
        return cls(ClusterSettings(request_timeout=request_timeout), configuration=configuration)

    async def configuration(self) -> Configuration:
        if self._configuration is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._configuration is None:
                    self._configuration = await load_configuration(self.settings)
        return self._configuration

    async def api(self) -> ApiClient:
        if self._api is None:
            from probes.transports.kubeaio import ApiClient

            configuration = await self.configuration()
            if self._api is None:
                self._api = _client(ApiClient, configuration)
                if self._on_client is not None:
                    self._on_client()
        return self._api

    async def websocket_api(self) -> ApiClient:
        """The package's WebSocket client (exec), one for every concurrent exec, on the request
        client's aiohttp session: an exec's upgrade takes a connection already open (TCP and TLS
        done: two round trips less) from that session's pool, where discovery's reads and
        `preconnect` left them; an upgraded connection is closed with its WebSocket, never pooled."""
        if self._ws is None:
            from probes.transports.kubeaio import WsApiClient

            api = await self.api()
            if self._ws is None:
                ws = _client(WsApiClient, api.configuration)
                ws.rest_client.pool_manager = _session(api)
                self._ws = ws
        return self._ws

    async def preconnect(self, count: int) -> None:
        """Open up to `count` connections to the API server now (`GET /version`, readable by every
        client) and leave them in the pool, e.g. while a debug pod starts, so that its first execs
        find their TCP and TLS handshakes done. Best effort: a failure here is the exec's to report."""
        api = await self.api()
        session, url = _session(api), f"{api.configuration.host}/version"

        async def one() -> None:
            async with session.get(url, timeout=_client_timeout(self.request_timeout)) as response:
                await response.read()

        await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)

    @property
    def host(self) -> str:
        return self._configuration.host if self._configuration is not None else "(not loaded)"

    async def request(self, what: str, method: str, path: str, *, query: Sequence[tuple[str, Any]] = (),
                      body: Any = None, content_type: str | None = None,
                      timeout: float | None = None) -> dict[str, Any]:
        """One API request; the JSON object it answered (every Kubernetes API answer is one: an
        object, a list, a Status), or a ClusterError. Bounded by `timeout` (request_timeout)."""
        api = await self.api()
        limit = timeout or self.request_timeout
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            async with asyncio.timeout(limit):
                method, url, headers, data, post = await api.param_serialize(
                    method=method, resource_path=path, query_params=list(query) or None,
                    header_params=headers, body=body, auth_settings=AUTH_SETTINGS)
                response = await api.call_api(method, url, headers, data, post, _request_timeout=limit)
                raw = await response.read()
        except ClusterError:
            raise
        except Exception as exc:
            raise self.translate(exc, what) from exc
        if not 200 <= response.status <= 299:
            raise api_error(response.status, response.reason or "", raw, what)
        return _object(json.loads(raw), what) if raw else {}

    def translate(self, exc: BaseException, what: str) -> ClusterError:
        """Any exception of a request into the ClusterError family (the one place that knows how)."""
        from aiohttp import ClientError, WSServerHandshakeError

        from probes.transports.kubeaio import ApiException

        if isinstance(exc, ClusterError):
            return exc
        if isinstance(exc, WSServerHandshakeError):
            return api_error(exc.status, exc.message or "", None, what)
        if isinstance(exc, ApiException):
            return from_api_exception(exc, what)
        if isinstance(exc, ClientError | OSError | TimeoutError):
            return unreachable(exc, self.host)
        raise exc

    # -- reads --------------------------------------------------------------------------------

    async def list_nodes(self) -> list[dict[str, Any]]:
        return (await self.list_nodes_versioned())[0]

    async def get_node(self, name: str) -> dict[str, Any]:
        return await self.request(f"get node {name}", "GET", _path("/api/v1/nodes/{n}", n=name))

    async def list_nodes_versioned(self) -> tuple[list[dict[str, Any]], str]:
        """Nodes plus the list's resourceVersion, where a watch starts (the Slack node watch)."""
        listed = await self.request("list nodes", "GET", "/api/v1/nodes")
        version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        return list(listed.get("items") or []), version

    async def watch_nodes(self, resource_version: str, *, timeout_s: int) -> AsyncIterator[dict[str, Any]]:
        """Node events {type, object} from `resource_version` until the server ends the watch after
        `timeout_s`, through the package's asyncio Watch on the event loop. 410 Gone (an ERROR event)
        raises ClusterError(status=410): re-list, then watch again."""
        from probes.transports.kubeaio import Watch

        api = await self.api()

        async def list_nodes(**kwargs: Any) -> Any:  # the Watch calls it with watch=True
            query = [("watch", True), ("resourceVersion", kwargs.get("resource_version") or resource_version),
                     ("timeoutSeconds", timeout_s), ("allowWatchBookmarks", False)]
            method, url, headers, data, post = await api.param_serialize(
                method="GET", resource_path="/api/v1/nodes", query_params=query,
                header_params={"Accept": "application/json"}, auth_settings=AUTH_SETTINGS)
            response = await api.call_api(method, url, headers, data, post, _request_timeout=timeout_s + 5)
            if not 200 <= response.status <= 299:
                raw = await response.read()
                raise api_error(response.status, response.reason or "", raw, "watch nodes")
            return response.response  # the aiohttp response: the Watch reads it line by line

        watch = Watch()
        try:
            async for event in watch.stream(list_nodes, resource_version=resource_version,
                                            timeout_seconds=timeout_s):
                obj = event.get("raw_object", event["object"])
                yield {"type": event["type"], "object": obj}
        except ClusterError:
            raise
        except Exception as exc:
            raise self.translate(exc, "watch nodes") from exc
        finally:
            await watch.close()

    async def watch_pod(self, namespace: str, name: str, resource_version: str, *,
                        timeout_s: int) -> AsyncGenerator[dict[str, Any], None]:
        """Events {type, object} of one pod (fieldSelector metadata.name) after `resource_version`,
        until the server ends the watch after `timeout_s`: a debug pod's start is seen the moment the
        kubelet reports it, not at the next poll. An ERROR event (410 Gone, ...) raises ClusterError
        with its status; so does a refused watch (403: RBAC without `watch` on pods)."""
        api = await self.api()
        what = f"watch pod {namespace}/{name}"
        query = [("watch", True), ("fieldSelector", f"metadata.name={name}"),
                 ("resourceVersion", resource_version), ("timeoutSeconds", timeout_s),
                 ("allowWatchBookmarks", False)]
        try:
            method, url, headers, data, post = await api.param_serialize(
                method="GET", resource_path=_path("/api/v1/namespaces/{ns}/pods", ns=namespace),
                query_params=query, header_params={"Accept": "application/json"},
                auth_settings=AUTH_SETTINGS)
            # the client's total timeout covers the streamed body: the server's end plus a request's time
            response = await api.call_api(method, url, headers, data, post,
                                          _request_timeout=timeout_s + self.request_timeout)
        except Exception as exc:
            raise self.translate(exc, what) from exc
        stream = response.response
        try:
            if not 200 <= response.status <= 299:
                raise api_error(response.status, response.reason or "", await response.read(), what)
            async for line in stream.content:
                if not line.strip():
                    continue
                event = _object(json.loads(line), what)
                if event.get("type") == "ERROR":
                    status = _object(event.get("object") or {}, what)
                    raise api_error(int(status.get("code") or 0), str(status.get("reason") or ""),
                                    json.dumps(status), what)
                yield event
        except ClusterError:
            raise
        except ValueError as exc:
            raise ClusterError(f"{what}: not a watch event: {exc}") from exc
        except Exception as exc:
            raise self.translate(exc, what) from exc
        finally:
            stream.close()  # a watch left early: its connection is not reusable

    async def get_service(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.request(f"get service {namespace}/{name}", "GET",
                                  _path("/api/v1/namespaces/{ns}/services/{n}", ns=namespace, n=name))

    async def get_endpoints(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.request(f"get endpoints {namespace}/{name}", "GET",
                                  _path("/api/v1/namespaces/{ns}/endpoints/{n}", ns=namespace, n=name))

    async def pod_logs(self, namespace: str, name: str, *, timeout: float) -> str:
        api = await self.api()
        what = f"logs of pod {namespace}/{name}"
        try:
            async with asyncio.timeout(timeout):
                method, url, headers, data, post = await api.param_serialize(
                    method="GET", resource_path=_path("/api/v1/namespaces/{ns}/pods/{n}/log",
                                                      ns=namespace, n=name),
                    header_params={"Accept": "*/*"}, auth_settings=AUTH_SETTINGS)
                response = await api.call_api(method, url, headers, data, post, _request_timeout=timeout)
                raw: bytes = await response.read()
        except Exception as exc:
            raise self.translate(exc, what) from exc
        if not 200 <= response.status <= 299:
            raise api_error(response.status, response.reason or "", raw, what)
        return raw.decode(errors="replace")

    def _custom(self, group: str, version: str, plural: str, name: str | None = None) -> str:
        path = _path("/apis/{g}/{v}/{p}", g=group, v=version, p=plural)
        return path if name is None else f"{path}/{quote(name, safe='')}"

    async def get_installation(self) -> dict[str, Any] | None:
        try:
            return await self.request("get Installation default", "GET",
                                      self._custom(*CALICO_OPERATOR, "default"))
        except ClusterNotFound:
            return None  # no operator CRD or no Installation: Calico via the operator is absent

    async def list_ippools(self) -> list[dict[str, Any]]:
        try:
            pools = await self.request("list IPPools", "GET", self._custom(*CALICO_IPPOOLS))
        except ClusterNotFound:
            return []
        return list(pools.get("items", []))

    async def get_daemonset(self, namespace: str, name: str) -> dict[str, Any]:
        """A DaemonSet (the calico-node rollout the calico-mtu fix follows)."""
        return await self.request(f"get daemonset {namespace}/{name}", "GET",
                                  _path("/apis/apps/v1/namespaces/{ns}/daemonsets/{n}",
                                        ns=namespace, n=name))

    async def list_pods(self, *, namespace: str | None = None, label_selector: str = "",
                        field_selector: str = "") -> list[dict[str, Any]]:
        """Pods of one namespace, or of all (e.g. `spec.nodeName=NODE`: the pods on a node)."""
        where = f"in {namespace}" if namespace else "in all namespaces"
        selectors = (("labelSelector", label_selector), ("fieldSelector", field_selector))
        query = [(k, v) for k, v in selectors if v]
        path = _path("/api/v1/namespaces/{ns}/pods", ns=namespace) if namespace else "/api/v1/pods"
        return list((await self.request(f"list pods {where}", "GET", path, query=query)).get("items") or [])

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.request(f"read pod {namespace}/{name}", "GET", self._pod(namespace, name))

    async def create_pod(self, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        return await self.request(f"create pod {namespace}/{name}", "POST",
                                  _path("/api/v1/namespaces/{ns}/pods", ns=namespace), body=dict(manifest),
                                  content_type="application/json")

    async def patch_pod(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request(f"patch pod {namespace}/{name}", "PATCH", self._pod(namespace, name),
                                  body=dict(patch), content_type=MERGE_PATCH)

    async def delete_pod(self, namespace: str, name: str) -> None:
        await self.request(f"delete pod {namespace}/{name}", "DELETE", self._pod(namespace, name),
                           query=[("gracePeriodSeconds", 0)], content_type="application/json")

    def _pod(self, namespace: str, name: str) -> str:
        return _path("/api/v1/namespaces/{ns}/pods/{n}", ns=namespace, n=name)

    async def create_namespace(self, name: str) -> dict[str, Any]:
        return await self.request(f"create namespace {name}", "POST", "/api/v1/namespaces",
                                  body={"metadata": {"name": name}}, content_type="application/json")

    async def get_tigerastatus(self, name: str) -> dict[str, Any] | None:
        """operator.tigera.io/v1 TigeraStatus `name`, or None when the operator publishes none."""
        try:
            return await self.request(f"get TigeraStatus {name}", "GET", self._custom(*TIGERA_STATUS, name))
        except ClusterNotFound:
            return None

    # -- writes (fixes) -------------------------------------------------------------------------

    async def patch_installation(self, patch: Any, *, json_patch: bool = False) -> dict[str, Any]:
        """Merge patch (a dict) or JSON patch (a list of operations, json_patch=True)."""
        return await self.request("patch Installation default", "PATCH",
                                  self._custom(*CALICO_OPERATOR, "default"), body=patch,
                                  content_type=JSON_PATCH if json_patch else MERGE_PATCH)

    async def aclose(self) -> None:
        """Close the aiohttp sessions (the client's and the WebSocket one)."""
        if self._ws is not None:
            self._ws.rest_client.pool_manager = None  # the request client's session, closed with it
        for client in (self._api, self._ws):
            if client is not None:
                await client.close()
        self._api = self._ws = None
