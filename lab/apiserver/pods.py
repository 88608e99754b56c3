"""Pod behaviour beyond storage: turning Running on a node with a debug-pod netns (or, for a host pod,
in the node's own namespaces: hostpods.py), exec and logs routing.

Exec in a debug pod runs the command with the container's capabilities only (capabilities.py), as a
runtime would."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from . import capabilities, hostpods, logs, objects, operator
from . import exec as pod_exec
from .config import NodeConfig
from .state import State, Target
from .status import bad_request

POD_START_SECONDS = 0.3


async def start_pod(state: State, namespace: str, name: str, uid: str) -> None:
    """A pod pinned to a node with a debug-pod namespace turns Running, like a kubelet would report;
    on a node whose pods are held (control API) it stays Pending, its containers waiting with the reason."""
    await asyncio.sleep(POD_START_SECONDS)
    pods = objects.PODS
    if not state.store.exists(pods, namespace, name):
        return
    pod = state.store.get(pods, namespace, name)
    node_name = pod.get("spec", {}).get("nodeName", "")
    node = state.nodes.get(node_name)
    if pod["metadata"].get("uid") != uid or node is None:
        return
    if hostpods.is_host_pod(pod) and node_name not in state.held_pods:
        await _start_host_pod(state, pod, node)
        return
    if not node.pod_netns and not hostpods.is_host_pod(pod):
        return
    held = state.held_pods.get(node_name)
    if not held:
        await operator.pod_network_started(state, node)  # the CNI sets the veth MTU before Running
    pod["status"] = objects.waiting_pod_status(pod, held) if held else objects.running_pod_status(pod, node)
    state.store.replace(pods, namespace, pod)


async def _start_host_pod(state: State, pod: dict[str, Any], node: NodeConfig) -> None:
    """Running once its container runs in the node; else Pending with the container's waiting reason."""
    namespace, name, uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]
    try:
        container = await hostpods.start(pod, node, state.config.containers_dir)
    except hostpods.HostPodRefused as exc:
        if state.store.exists(objects.PODS, namespace, name):
            pod = state.store.get(objects.PODS, namespace, name)
            pod["status"] = objects.waiting_pod_status(pod, "RunContainerError", str(exc))
            state.store.replace(objects.PODS, namespace, pod)
        return
    current = state.store.get(objects.PODS, namespace, name) if state.store.exists(
        objects.PODS, namespace, name) else None
    if current is None or current["metadata"].get("uid") != uid:  # deleted while starting
        await hostpods.stop(container)
        return
    state.containers[(namespace, name)] = container
    status = objects.running_pod_status(current, node)
    status["podIP"], status["podIPs"] = node.internal_ip, [{"ip": node.internal_ip}]  # host network
    current["status"] = status
    state.store.replace(objects.PODS, namespace, current)


async def pod_deleted(state: State, namespace: str, name: str) -> None:
    """Deleting a pod ends its container (host pods; debug pods have no process of their own)."""
    container = state.containers.pop((namespace, name), None)
    if container is not None:
        await hostpods.stop(container)


async def stop_containers(state: State) -> None:
    for key in list(state.containers):
        await pod_deleted(state, *key)


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


async def exec_in_pod(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    pod, node = _pod_node(state, target)
    command = request.query.getall("command", [])
    if not command:
        raise bad_request("you must specify at least 1 command")
    container = _container(pod, request.query.get("container", ""))
    if not pod.get("spec", {}).get("nodeName"):
        raise bad_request(f"pod {target.name} does not have a host assigned")
    running = pod.get("status", {}).get("phase") == "Running" and node is not None
    host_container = state.containers.get((target.namespace, target.name))
    if hostpods.is_host_pod(pod):
        if not running or host_container is None:
            raise bad_request(f'unable to upgrade connection: container not found ("{container}")')
        try:
            argv = hostpods.exec_argv(host_container, command)
        except hostpods.HostPodRefused as exc:
            raise bad_request(f"unable to upgrade connection: {exc}") from exc
        return await pod_exec.run_exec(request, argv, command)
    if not running or node is None or not node.pod_netns:
        raise bad_request(f'unable to upgrade connection: container not found ("{container}")')
    spec = next(c for c in pod["spec"]["containers"] if c.get("name", "") == container)
    argv = [*state.config.exec_prefix, node.pod_netns, *capabilities.exec_prefix(spec), *command]
    return await pod_exec.run_exec(request, argv, command)


async def pod_logs(request: web.Request, state: State, target: Target) -> web.StreamResponse:
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
