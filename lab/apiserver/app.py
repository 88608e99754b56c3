"""HTTP routes of the Kubernetes API stand-in: auth, discovery, CRUD/watch for every resource, exec, logs.

Built by `make_app(config)`; served by `serve(config)` (in-process, for tests) or `python -m lab.apiserver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import control, discovery, logs, objects
from . import exec as pod_exec
from .auth import Authorizer, Request, User, authenticate, readonly_authorizer
from .config import ApiServerConfig, NodeConfig
from .patch import apply_patch
from .status import ApiError, bad_request, conflict, forbidden, not_found, unauthorized
from .store import Resource, Store, Watcher, find_resource

POD_START_SECONDS = 0.3
WATCH_DEFAULT_SECONDS = 1800.0
MTU_HOOK_SECONDS = 60.0
OPEN_PATHS = ("/version", "/version/", "/healthz", "/readyz", "/livez")


@dataclass
class State:
    config: ApiServerConfig
    store: Store
    nodes: dict[str, NodeConfig]
    authorizer: Authorizer
    tasks: set[asyncio.Task[Any]]


STATE = web.AppKey("state", State)
USER = web.RequestKey("user", User)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


@web.middleware
async def errors_and_auth(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        if request.path.startswith("/lab/"):
            if request.headers.get("Authorization") != f"Bearer {state.config.control_token}":
                raise unauthorized()
        elif request.path not in OPEN_PATHS:
            user = authenticate(state.config.tokens, request.headers.get("Authorization"))
            if user is None:
                raise unauthorized()
            request[USER] = user
        return await handler(request)
    except ApiError as error:
        return error.response()


def _spawn(state: State, coro: Any) -> None:
    task = asyncio.create_task(coro)
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


async def _start_pod(state: State, namespace: str, name: str, uid: str) -> None:
    """A pod pinned to a node with a debug-pod namespace turns Running, like a kubelet would report."""
    await asyncio.sleep(POD_START_SECONDS)
    pods = objects.PODS
    if not state.store.exists(pods, namespace, name):
        return
    pod = state.store.get(pods, namespace, name)
    node = state.nodes.get(pod.get("spec", {}).get("nodeName", ""))
    if pod["metadata"].get("uid") != uid or node is None or not node.pod_netns:
        return
    pod["status"] = objects.running_pod_status(pod, node)
    state.store.replace(pods, namespace, pod)


async def _run_mtu_hook(state: State, mtu: int) -> None:
    hook = state.config.mtu_hook
    if not hook:
        return
    process = await asyncio.create_subprocess_exec(
        *hook, str(mtu), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), MTU_HOOK_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        print(f"apiserver: mtu hook timed out after {MTU_HOOK_SECONDS}s", file=sys.stderr)
        return
    if process.returncode:
        print(
            f"apiserver: mtu hook exited {process.returncode}: {output.decode(errors='replace')}",
            file=sys.stderr,
        )


def _mtu(installation: dict[str, Any]) -> Any:
    return ((installation.get("spec") or {}).get("calicoNetwork") or {}).get("mtu")


@dataclass(frozen=True)
class Target:
    resource: Resource
    namespace: str
    name: str
    subresource: str


def _parse(group: str, version: str, tail: str) -> Target:
    parts = [p for p in tail.split("/") if p]
    namespace = ""
    if len(parts) >= 3 and parts[0] == "namespaces":
        namespace, parts = parts[1], parts[2:]
    resource = find_resource(group, version, parts[0]) if parts else None
    if resource is None or len(parts) > 3 or (namespace and not resource.namespaced):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return Target(resource, namespace, parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else "")


def _verb(request: web.Request, target: Target) -> str:
    if target.subresource == "exec":
        return "create"
    if request.method == "GET":
        if request.query.get("watch", "").lower() in ("true", "1"):
            return "watch"
        return "get" if target.name else "list"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    return verbs.get(request.method, "")


def _authorize(request: web.Request, target: Target, verb: str) -> None:
    user: User = request[USER]
    ask = Request(
        verb, target.resource.group, target.resource.plural, target.subresource, target.namespace, target.name
    )
    if not request.app[STATE].authorizer(user, ask):
        raise forbidden(user.name, verb, ask.group, ask.resource, ask.subresource, ask.namespace, ask.name)


async def _body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except json.JSONDecodeError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


async def core_api(request: web.Request) -> web.StreamResponse:
    return await _resource_request(request, "", "v1", request.match_info["tail"])


async def group_api(request: web.Request) -> web.StreamResponse:
    info = request.match_info
    return await _resource_request(request, info["group"], info["version"], info["tail"])


async def _resource_request(request: web.Request, group: str, version: str, tail: str) -> web.StreamResponse:
    target = _parse(group, version, tail)
    verb = _verb(request, target)
    if target.subresource and (target.resource.plural, target.subresource) not in (
        ("pods", "exec"),
        ("pods", "log"),
        ("nodes", "status"),
        ("pods", "status"),
    ):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    _authorize(request, target, verb)
    state = request.app[STATE]
    if target.subresource == "exec":
        return await _exec(request, state, target)
    if target.subresource == "log":
        return await _logs(request, state, target)
    if verb == "watch":
        return await _watch(request, state, target)
    handlers = {
        "get": _get,
        "list": _list,
        "create": _create,
        "update": _update,
        "patch": _patch,
        "delete": _delete,
    }
    if verb not in handlers:
        raise ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )
    return await handlers[verb](request, state, target)


def _namespace_must_exist(state: State, target: Target) -> None:
    if target.namespace and not state.store.exists(objects.NAMESPACES, "", target.namespace):
        raise not_found("namespaces", "", target.namespace)


async def _get(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    return json_response(state.store.get(target.resource, target.namespace, target.name))


async def _list(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    items = state.store.list(
        target.resource,
        target.namespace,
        request.query.get("labelSelector", ""),
        request.query.get("fieldSelector", ""),
    )
    for item in items:
        item.pop("kind", None)
        item.pop("apiVersion", None)
    return json_response(
        {
            "kind": f"{target.resource.kind}List",
            "apiVersion": target.resource.api_version,
            "metadata": {"resourceVersion": str(state.store.revision)},
            "items": items,
        }
    )


async def _create(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    body = await _body(request)
    if not isinstance(body, dict):
        raise bad_request("the body of the request is not an object")
    _namespace_must_exist(state, target)
    if target.resource is objects.PODS:
        body.setdefault("spec", {})
        body["status"] = objects.pending_pod_status()
    created = state.store.create(target.resource, target.namespace, body)
    if target.resource is objects.PODS:
        _spawn(
            state,
            _start_pod(state, target.namespace, created["metadata"]["name"], created["metadata"]["uid"]),
        )
    return json_response(created, 201)


async def _store_update(
    state: State, target: Target, current: dict[str, Any], new: dict[str, Any]
) -> dict[str, Any]:
    wanted_version = (new.get("metadata") or {}).get("resourceVersion")
    if wanted_version and wanted_version != current["metadata"]["resourceVersion"]:
        raise conflict(target.resource.plural, target.resource.group, target.name)
    if (new.get("metadata") or {}).get("name") != target.name:
        raise bad_request(
            f"the name of the object ({(new.get('metadata') or {}).get('name')}) does not match "
            f"the name on the URL ({target.name})"
        )
    updated = state.store.replace(target.resource, target.namespace, new)
    if target.resource is objects.INSTALLATIONS and _mtu(updated) != _mtu(current) and _mtu(updated):
        updated.setdefault("status", {})["mtu"] = _mtu(updated)
        updated["metadata"].pop("resourceVersion", None)
        updated = state.store.replace(target.resource, target.namespace, updated)
        await _run_mtu_hook(state, int(_mtu(updated)))
    return updated


async def _update(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    body = await _body(request)
    if not isinstance(body, dict):
        raise bad_request("the body of the request is not an object")
    current = state.store.get(target.resource, target.namespace, target.name)
    return json_response(await _store_update(state, target, current, body))


async def _patch(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    body = await _body(request)
    current = state.store.get(target.resource, target.namespace, target.name)
    patched = apply_patch(request.content_type, current, body)
    if not isinstance(patched, dict):
        raise bad_request("the patched object is not an object")
    if (patched.get("metadata") or {}).get("resourceVersion") == current["metadata"]["resourceVersion"]:
        patched["metadata"].pop("resourceVersion")
    return json_response(await _store_update(state, target, current, patched))


async def _delete(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    deleted = state.store.delete(target.resource, target.namespace, target.name)
    if target.resource is objects.PODS:
        return json_response(deleted)
    details: dict[str, Any] = {"name": target.name}
    if target.resource.group:
        details["group"] = target.resource.group
    details |= {"kind": target.resource.plural, "uid": deleted["metadata"].get("uid", "")}
    return json_response(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
    )


async def _watch(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    label_selector = request.query.get("labelSelector", "")
    field_selector = request.query.get("fieldSelector", "")
    if target.name:
        field_selector = ",".join(filter(None, [field_selector, f"metadata.name={target.name}"]))
    timeout = float(request.query.get("timeoutSeconds") or WATCH_DEFAULT_SECONDS)
    since = request.query.get("resourceVersion", "")
    watcher = Watcher(target.resource, target.namespace)
    # Register before reading the backlog: nothing awaits in between, so no event is lost or doubled.
    state.store.watchers.add(watcher)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        if since in ("", "0"):
            backlog = [
                {"type": "ADDED", "object": o} for o in state.store.list(target.resource, target.namespace)
            ]
        else:
            if not since.isdigit():
                raise bad_request(f'invalid resource version "{since}"')
            backlog = state.store.events_since(target.resource, target.namespace, int(since))
        await response.prepare(request)
        if backlog is None:
            expired = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {since} ({state.store.history_start - 1})",
                "reason": "Expired",
                "code": 410,
            }
            await response.write(json.dumps({"type": "ERROR", "object": expired}).encode() + b"\n")
            return response
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                for event in backlog:
                    await _write_event(response, event, label_selector, field_selector)
                while True:
                    event = await watcher.queue.get()
                    await _write_event(response, event, label_selector, field_selector)
        return response
    finally:
        state.store.watchers.discard(watcher)


async def _write_event(
    response: web.StreamResponse, event: dict[str, Any], label_selector: str, field_selector: str
) -> None:
    from .store import matches

    if matches(event["object"], label_selector, field_selector):
        await response.write(json.dumps(event).encode() + b"\n")


def _pod_node(state: State, target: Target) -> tuple[dict[str, Any], NodeConfig | None]:
    pod = state.store.get(objects.PODS, target.namespace, target.name)
    return pod, state.nodes.get(pod.get("spec", {}).get("nodeName", ""))


def _container(pod: dict[str, Any], requested: str) -> str:
    names = [c.get("name", "") for c in pod.get("spec", {}).get("containers") or []]
    if requested:
        if requested not in names:
            raise bad_request(f"container {requested} is not valid for pod {pod['metadata']['name']}")
        return requested
    if len(names) != 1:
        raise bad_request(
            f"a container name must be specified for pod {pod['metadata']['name']}, choose one of: {names}"
        )
    return names[0]


async def _exec(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    pod, node = _pod_node(state, target)
    command = request.query.getall("command", [])
    if not command:
        raise bad_request("you must specify at least 1 command")
    container = _container(pod, request.query.get("container", ""))
    if not pod.get("spec", {}).get("nodeName"):
        raise bad_request(f"pod {target.name} does not have a host assigned")
    if pod.get("status", {}).get("phase") != "Running" or node is None or not node.pod_netns:
        raise bad_request(f'unable to upgrade connection: container not found ("{container}")')
    argv = [*state.config.exec_prefix, node.pod_netns, *command]
    return await pod_exec.run_exec(request, argv, command)


async def _logs(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    pod, _ = _pod_node(state, target)
    container = _container(pod, request.query.get("container", ""))
    node_name = pod.get("spec", {}).get("nodeName", "")
    node = state.store.get(objects.NODES, "", node_name) if node_name else None
    addresses = (node or {}).get("status", {}).get("addresses", [])
    host_ip = next((a["address"] for a in addresses if a["type"] == "InternalIP"), "")
    if not host_ip:
        raise bad_request(
            f'container "{container}" in pod "{target.name}" is waiting to start: ContainerCreating'
        )
    status, text = await logs.fetch_logs(
        host_ip, state.config.kubelet_port, target.namespace, target.name, container, dict(request.query)
    )
    return web.Response(status=status, text=text, content_type="text/plain")


async def version(request: web.Request) -> web.Response:
    return json_response(discovery.VERSION_INFO)


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def api_root(request: web.Request) -> web.Response:
    config = request.app[STATE].config
    return json_response(discovery.api_versions(f"{config.listen_host}:{config.listen_port}"))


async def apis_root(request: web.Request) -> web.Response:
    return json_response(discovery.api_group_list())


async def core_resources(request: web.Request) -> web.Response:
    return json_response(discovery.resource_list("", "v1"))


async def group_resources(request: web.Request) -> web.Response:
    body = discovery.resource_list(request.match_info["group"], request.match_info["version"])
    if body is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return json_response(body)


def make_app(config: ApiServerConfig, authorizer: Authorizer = readonly_authorizer) -> web.Application:
    app = web.Application(middlewares=[errors_and_auth])
    state = State(config, Store(), {n.name: n for n in config.nodes}, authorizer, set())
    objects.seed(state.store, config)
    app[STATE] = state
    # The client asks for /version/, /api/ and /apis/ with a trailing slash: serve both spellings.
    for path, handler in (
        ("/version", version),
        ("/api", api_root),
        ("/apis", apis_root),
        ("/api/v1", core_resources),
        ("/apis/{group}/{version}", group_resources),
    ):
        app.router.add_get(path, handler)
        app.router.add_get(path + "/", handler)
    for path in ("/healthz", "/readyz", "/livez"):
        app.router.add_get(path, health)
    app.router.add_route("*", "/api/v1/{tail:.+}", core_api)
    app.router.add_route("*", "/apis/{group}/{version}/{tail:.+}", group_api)
    control.add_routes(app, STATE)

    async def cancel_tasks(_: web.Application) -> None:
        for task in list(state.tasks):
            task.cancel()

    app.on_shutdown.append(cancel_tasks)
    return app


@contextlib.asynccontextmanager
async def serve(
    config: ApiServerConfig, authorizer: Authorizer = readonly_authorizer
) -> AsyncIterator[web.AppRunner]:
    """Run the stand-in in this event loop over TLS until the context exits (for tests and __main__)."""
    import ssl

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(config.tls_cert, config.tls_key)
    runner = web.AppRunner(make_app(config, authorizer), shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, config.listen_host, config.listen_port, ssl_context=tls)
    await site.start()
    try:
        yield runner
    finally:
        await runner.cleanup()
