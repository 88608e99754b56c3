"""Shared per-server state of the API stand-in, the parsed request target, and small response helpers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .auth import Authorizer, User
from .config import ApiServerConfig, NodeConfig
from .store import Resource, Store


@dataclass
class CalicoState:
    """Per-node Calico state the API objects do not carry (operator.py keeps it)."""

    cni_mtu: dict[str, int] = field(default_factory=dict)
    """MTU the node's CNI config gives pods created now (written by calico-node's install-cni)."""
    veth_mtu: dict[str, int] = field(default_factory=dict)
    """MTU last set on the node's lab pod veth pair (so an unchanged start runs no command)."""
    stalled: set[str] = field(default_factory=set)
    """Nodes whose newly started calico-node pods never pass their readiness probe."""
    readying: set[str] = field(default_factory=set)
    auto_mtu: int = 1450
    rollout: asyncio.Task[None] | None = None


@dataclass
class State:
    """Everything a handler needs; `nodes` holds the node configs (pod netns, pod IP) by name."""

    config: ApiServerConfig
    store: Store
    nodes: dict[str, NodeConfig]
    authorizer: Authorizer
    tasks: set[asyncio.Task[Any]]
    calico: CalicoState = field(default_factory=CalicoState)
    """The operator model's per-node state (operator.py)."""
    held_pods: dict[str, str] = field(default_factory=dict)
    """node name -> waiting reason: pods created on that node stay Pending (a kubelet that never
    starts them), set through the control API."""
    failing_watches: dict[str, tuple[int, int]] = field(default_factory=dict)
    """resource plural -> (watch requests still to fail, HTTP status), set through the control API."""
    containers: dict[tuple[str, str], Any] = field(default_factory=dict)
    """Running host pod containers (lab/apiserver/hostpods.py) by (namespace, pod name)."""


STATE = web.AppKey("state", State)
USER = web.RequestKey("user", User)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


@dataclass(frozen=True)
class Target:
    """What a URL names: resource, namespace ("" = cluster scope/all), name ("" = collection), subresource."""

    resource: Resource
    namespace: str
    name: str
    subresource: str


def spawn(state: State, coro: Coroutine[Any, Any, Any]) -> None:
    task = asyncio.create_task(coro)
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
