"""HTTP routes of the Kubernetes API stand-in: auth, discovery, CRUD/watch for every resource, exec, logs.

Built by `make_app(config)`; served by `serve(config)` (in-process, for tests) or `python -m lab.apiserver`.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from . import control, discovery, mtu, objects, operator, pods, podsecurity, watch
from . import exec as pod_exec
from .auth import Authorizer, Request, authenticate, readonly_authorizer
from .config import ApiServerConfig
from .patch import apply_patch
from .rbac import RbacAuthorizer
from .state import STATE, USER, State, Target, json_response, spawn
from .status import ApiError, bad_request, conflict, forbidden, not_found, unauthorized
from .store import Store, find_resource

OPEN_PATHS = ("/version", "/version/", "/healthz", "/readyz", "/livez")


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
    user = request[USER]
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
        return await pods.exec_in_pod(request, state, target)
    if target.subresource == "log":
        return await pods.pod_logs(request, state, target)
    if verb == "watch":
        return await watch.watch(request, state, target)
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
        podsecurity.admit(state.store.get(objects.NAMESPACES, "", target.namespace), body)
        body.setdefault("spec", {})
        body["status"] = objects.pending_pod_status()
    created = state.store.create(target.resource, target.namespace, body)
    if target.resource is objects.PODS:
        spawn(
            state,
            pods.start_pod(state, target.namespace, created["metadata"]["name"], created["metadata"]["uid"]),
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
    mtu_changed = target.resource is objects.INSTALLATIONS and mtu.calico_mtu(new) != mtu.calico_mtu(current)
    if mtu_changed:
        new_mtu = mtu.calico_mtu(new)
        if new_mtu is not None:
            mtu.validate(new_mtu, target.name)
        # The operator reports the value it renders at once (auto-detected when unset); the
        # calico-node pods pick it up only as the DaemonSet rolls out (operator.py).
        new.setdefault("status", {})["mtu"] = new_mtu if new_mtu is not None else state.calico.auto_mtu
    updated = state.store.replace(target.resource, target.namespace, new)
    if mtu_changed:
        operator.installation_changed(state, updated)
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
    patched = apply_patch(request.content_type, current, body, custom=target.resource.custom)
    if not isinstance(patched, dict):
        raise bad_request("the patched object is not an object")
    if (patched.get("metadata") or {}).get("resourceVersion") == current["metadata"]["resourceVersion"]:
        patched["metadata"].pop("resourceVersion")
    return json_response(await _store_update(state, target, current, patched))


async def _delete(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    deleted = state.store.delete(target.resource, target.namespace, target.name)
    if target.resource is objects.PODS:
        await pods.pod_deleted(state, target.namespace, target.name)
        return json_response(deleted)
    details: dict[str, Any] = {"name": target.name}
    if target.resource.group:
        details["group"] = target.resource.group
    details |= {"kind": target.resource.plural, "uid": deleted["metadata"].get("uid", "")}
    return json_response(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
    )


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


def make_app(config: ApiServerConfig, authorizer: Authorizer | None = None) -> web.Application:
    """`authorizer` None: RBAC from `config.rbac_manifests` when given, else the read-only default."""
    if authorizer is None:
        authorizer = RbacAuthorizer.from_files(config.rbac_manifests) if config.rbac_manifests \
            else readonly_authorizer
    app = web.Application(middlewares=[errors_and_auth])
    state = State(config, Store(), {n.name: n for n in config.nodes}, authorizer, set())
    objects.seed(state.store, config)
    operator.seed(state)
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

    async def cancel_tasks(app: web.Application) -> None:
        for task in list(state.tasks):
            task.cancel()
        await pods.stop_containers(state)
        await pod_exec.stop_running(app)

    app.on_shutdown.append(cancel_tasks)
    app[pod_exec.RUNNING] = set()
    return app


@contextlib.asynccontextmanager
async def serve(
    config: ApiServerConfig, authorizer: Authorizer | None = None
) -> AsyncIterator[web.AppRunner]:
    """Run the stand-in in this event loop over TLS until the context exits (for tests and __main__)."""
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
