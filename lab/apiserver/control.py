"""Test-only control API of the API stand-in (/lab/v1/...): add/remove nodes, set Ready, set annotations,
replace the enforced RBAC objects (the RBAC lab swaps rules on the running server), hold a node's pods
Pending, break watches, stall calico-node on a node; add RBAC objects and tokens (netcheck installed in
another namespace), read RBAC denials.

Authenticated by the config's control_token (checked in app's middleware). Every node change goes through
the store, so it bumps resourceVersion and reaches watchers as ADDED/MODIFIED/DELETED. Tokens stand in
for what a cluster's token issuer does for a ServiceAccount (the user and groups a token authenticates as).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from . import objects, operator, watch
from .config import NodeConfig, TokenInfo
from .rbac import RbacAuthorizer
from .status import bad_request


async def _json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except json.JSONDecodeError as exc:
        raise bad_request(f"invalid JSON: {exc}") from exc


def add_routes(app: web.Application, key: web.AppKey[Any]) -> None:
    def reply(obj: dict[str, Any], status: int = 200) -> web.Response:
        return web.Response(status=status, text=json.dumps(obj), content_type="application/json")

    async def add_node(request: web.Request) -> web.Response:
        state = request.app[key]
        try:
            node = NodeConfig.model_validate(await _json(request))
        except ValidationError as exc:
            raise bad_request(f"invalid node: {exc.errors()[0]['msg']}") from exc
        created = state.store.create(objects.NODES, "", objects.node_object(node, state.config.kubelet_port))
        state.nodes[node.name] = node
        operator.node_added(state, node.name)  # the calico-node DaemonSet schedules a pod on it
        return reply(created, 201)

    async def delete_node(request: web.Request) -> web.Response:
        state = request.app[key]
        name = request.match_info["name"]
        deleted = state.store.delete(objects.NODES, "", name)
        state.nodes.pop(name, None)
        operator.node_removed(state, name)
        return reply(deleted)

    async def set_ready(request: web.Request) -> web.Response:
        state = request.app[key]
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("ready"), bool):
            raise bad_request('body must be {"ready": true|false}')
        node = state.store.get(objects.NODES, "", request.match_info["name"])
        conditions = [c for c in node["status"].get("conditions", []) if c.get("type") != "Ready"]
        node["status"]["conditions"] = [objects.ready_condition(body["ready"]), *conditions]
        return reply(state.store.replace(objects.NODES, "", node))

    async def set_annotations(request: web.Request) -> web.Response:
        state = request.app[key]
        body = await _json(request)
        if not isinstance(body, dict) or not all(v is None or isinstance(v, str) for v in body.values()):
            raise bad_request("body must map annotation keys to strings or null")
        node = state.store.get(objects.NODES, "", request.match_info["name"])
        annotations = node["metadata"].setdefault("annotations", {})
        for name, value in body.items():
            if value is None:
                annotations.pop(name, None)
            else:
                annotations[name] = value
        return reply(state.store.replace(objects.NODES, "", node))

    async def set_calico_node_ready(request: web.Request) -> web.Response:
        """{"ready": false}: calico-node pods started on the node from now on never turn Ready (a
        rollout stalls there); {"ready": true}: they pass their readiness probe again."""
        state = request.app[key]
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("ready"), bool):
            raise bad_request('body must be {"ready": true|false}')
        name = request.match_info["name"]
        state.store.get(objects.NODES, "", name)  # 404 for an unknown node
        operator.set_stalled(state, name, not body["ready"])
        return reply({"node": name, "calicoNodeReady": body["ready"]})
    async def set_rbac(request: web.Request) -> web.Response:
        state = request.app[key]
        body = await _json(request)
        objects = body.get("objects") if isinstance(body, dict) else None
        if not isinstance(objects, list) or not isinstance(state.authorizer, RbacAuthorizer):
            raise bad_request('body must be {"objects": [...]} and the server must enforce RBAC')
        fresh = RbacAuthorizer.from_manifests(objects)
        state.authorizer.roles, state.authorizer.bindings = fresh.roles, fresh.bindings
        return reply({"roles": len(fresh.roles), "bindings": len(fresh.bindings)})

    async def hold_pods(request: web.Request) -> web.Response:
        """{"hold": "ContainerCreating"}: new pods on the node stay Pending with that waiting reason;
        {"hold": null}: they start again."""
        state = request.app[key]
        body = await _json(request)
        hold = body.get("hold", "") if isinstance(body, dict) else ""
        if not (hold is None or (isinstance(hold, str) and hold)):
            raise bad_request('body must be {"hold": "<waiting reason>"|null}')
        name = request.match_info["name"]
        state.store.get(objects.NODES, "", name)  # 404 for an unknown node
        if hold is None:
            state.held_pods.pop(name, None)
        else:
            state.held_pods[name] = hold
        return reply({"node": name, "hold": hold})

    async def break_watches(request: web.Request) -> web.Response:
        """{"resource": "nodes", "fail_next": 2, "status": 500}: cut open watches, fail the next ones."""
        state = request.app[key]
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("resource"), str):
            raise bad_request('body must be {"resource": PLURAL, "fail_next": N, "status": CODE}')
        fail_next, status = body.get("fail_next", 0), body.get("status", 500)
        if not isinstance(fail_next, int) or not isinstance(status, int) or not 500 <= status <= 599:
            raise bad_request("fail_next must be an integer and status a 5xx code")
        broken = watch.break_watches(state, body["resource"], fail_next, status)
        return reply({"resource": body["resource"], "broken": broken, "fail_next": fail_next})

    def rbac(request: web.Request) -> RbacAuthorizer:
        authorizer = request.app[key].authorizer
        if not isinstance(authorizer, RbacAuthorizer):
            raise bad_request("this API stand-in does not enforce RBAC (no rbac_manifests)")
        return authorizer

    async def add_rbac(request: web.Request) -> web.Response:
        body = await _json(request)
        manifests = body.get("objects") if isinstance(body, dict) else None
        if not isinstance(manifests, list) or not all(isinstance(o, dict) for o in manifests):
            raise bad_request('body must be {"objects": [manifests]}')
        try:
            added = rbac(request).add(manifests)
        except KeyError as exc:
            raise bad_request(f"RBAC object without {exc}") from exc
        return reply({"added": added})

    async def denials(request: web.Request) -> web.Response:
        return reply({"denials": [vars(d) for d in rbac(request).denials]})

    async def add_token(request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("token"), str) or not body["token"]:
            raise bad_request('body must be {"token": "...", "user": "...", "groups": [...]}')
        try:
            info = TokenInfo.model_validate({k: v for k, v in body.items() if k != "token"})
        except ValidationError as exc:
            raise bad_request(f"invalid token: {exc.errors()[0]['msg']}") from exc
        request.app[key].config.tokens[body["token"]] = info
        return reply({"user": info.user}, 201)

    app.router.add_post("/lab/v1/rbac", add_rbac)
    app.router.add_get("/lab/v1/rbac/denials", denials)
    app.router.add_post("/lab/v1/tokens", add_token)
    app.router.add_post("/lab/v1/nodes", add_node)
    app.router.add_put("/lab/v1/nodes/{name}/calico-node", set_calico_node_ready)
    app.router.add_put("/lab/v1/rbac", set_rbac)
    app.router.add_put("/lab/v1/nodes/{name}/pods", hold_pods)
    app.router.add_post("/lab/v1/watches/break", break_watches)
    app.router.add_delete("/lab/v1/nodes/{name}", delete_node)
    app.router.add_put("/lab/v1/nodes/{name}/ready", set_ready)
    app.router.add_patch("/lab/v1/nodes/{name}/annotations", set_annotations)
