"""Objects of the API stand-in, their resourceVersions, selectors, and the watch fan-out with history.

One global resourceVersion counter, like etcd's revision. Watches replay events newer than their
resourceVersion from a bounded history; anything older than the history answers 410 Expired.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .status import already_exists, not_found

WATCH_HISTORY_EVENTS = 1000


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")
    custom: bool = False  # a CRD: no strategic merge patch, like the real server

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "nodes", "Node", False),
    Resource("", "v1", "namespaces", "Namespace", False),
    Resource("", "v1", "pods", "Pod", True),
    Resource("", "v1", "services", "Service", True),
    Resource("", "v1", "endpoints", "Endpoints", True),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True),
    Resource("apps", "v1", "daemonsets", "DaemonSet", True),
    Resource("operator.tigera.io", "v1", "tigerastatuses", "TigeraStatus", False, custom=True),
    Resource("operator.tigera.io", "v1", "installations", "Installation", False, custom=True),
    Resource("crd.projectcalico.org", "v1", "ippools", "IPPool", False, custom=True),
)


def find_resource(group: str, version: str, plural: str) -> Resource | None:
    for resource in RESOURCES:
        if (resource.group, resource.version, resource.plural) == (group, version, plural):
            return resource
    return None


def now_timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _field_value(obj: dict[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def _label_requirement_matches(labels: dict[str, str], requirement: str) -> bool:
    requirement = requirement.strip()
    if " in " in requirement or " notin " in requirement:
        negate = " notin " in requirement
        key, values = requirement.split(" notin " if negate else " in ", 1)
        allowed = {v.strip() for v in values.strip().strip("()").split(",")}
        present = labels.get(key.strip()) in allowed
        return not present if negate else present
    for op in ("!=", "==", "="):
        if op in requirement:
            key, value = (s.strip() for s in requirement.split(op, 1))
            return (labels.get(key) != value) if op == "!=" else (labels.get(key) == value)
    if requirement.startswith("!"):
        return requirement[1:] not in labels
    return requirement in labels


def _split_selector(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def matches(obj: dict[str, Any], label_selector: str, field_selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    if not all(_label_requirement_matches(labels, r) for r in _split_selector(label_selector)):
        return False
    for requirement in _split_selector(field_selector):
        negate = "!=" in requirement
        key, value = (s.strip() for s in requirement.replace("==", "=").replace("!=", "=").split("=", 1))
        if (_field_value(obj, key) == value) == negate:
            return False
    return True


@dataclass(eq=False)
class Watcher:
    resource: Resource
    namespace: str
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)


class Store:
    def __init__(self) -> None:
        self.revision = 0
        self.objects: dict[tuple[Resource, str, str], dict[str, Any]] = {}
        self.history: deque[tuple[int, Resource, str, dict[str, Any]]] = deque(maxlen=WATCH_HISTORY_EVENTS)
        self.history_start = 1
        self.watchers: set[Watcher] = set()

    def compact(self) -> None:
        """Forget all events so far, as etcd compaction does: older watches get 410."""
        self.history.clear()
        self.history_start = self.revision + 1

    def _bump(self, obj: dict[str, Any]) -> None:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)

    def _emit(self, event_type: str, resource: Resource, obj: dict[str, Any]) -> None:
        if len(self.history) == self.history.maxlen:
            self.history_start = self.history[0][0] + 1
        self.history.append((self.revision, resource, event_type, copy.deepcopy(obj)))
        namespace = obj["metadata"].get("namespace", "")
        for watcher in list(self.watchers):
            if watcher.resource == resource and watcher.namespace in ("", namespace):
                watcher.queue.put_nowait({"type": event_type, "object": copy.deepcopy(obj)})

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.get((resource, namespace, name))
        if obj is None:
            raise not_found(resource.plural, resource.group, name)
        return copy.deepcopy(obj)

    def exists(self, resource: Resource, namespace: str, name: str) -> bool:
        return (resource, namespace, name) in self.objects

    def list(
        self, resource: Resource, namespace: str, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(obj)
            for (res, ns, _), obj in sorted(self.objects.items(), key=lambda i: i[0][1:])
            if res == resource and namespace in ("", ns) and matches(obj, label_selector, field_selector)
        ]

    def create(self, resource: Resource, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        name = metadata.get("name", "")
        if not name and metadata.get("generateName"):
            name = metadata["generateName"] + uuid.uuid4().hex[:5]
            metadata["name"] = name
        if (resource, namespace, name) in self.objects:
            raise already_exists(resource.plural, resource.group, name)
        obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
        if resource.namespaced:
            metadata["namespace"] = namespace
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", now_timestamp())
        metadata.pop("resourceVersion", None)
        self._bump(obj)
        self.objects[(resource, namespace, name)] = obj
        self._emit("ADDED", resource, obj)
        return copy.deepcopy(obj)

    def replace(self, resource: Resource, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new version of an existing object (the caller checked preconditions)."""
        obj = copy.deepcopy(obj)
        name = obj["metadata"]["name"]
        current = self.objects.get((resource, namespace, name))
        if current is None:
            raise not_found(resource.plural, resource.group, name)
        obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
        for immutable in ("uid", "creationTimestamp", "namespace"):
            if immutable in current["metadata"]:
                obj["metadata"][immutable] = current["metadata"][immutable]
        self._bump(obj)
        self.objects[(resource, namespace, name)] = obj
        self._emit("MODIFIED", resource, obj)
        return copy.deepcopy(obj)

    def delete(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.pop((resource, namespace, name), None)
        if obj is None:
            raise not_found(resource.plural, resource.group, name)
        self._bump(obj)
        self._emit("DELETED", resource, obj)
        return copy.deepcopy(obj)

    def events_since(self, resource: Resource, namespace: str, revision: int) -> list[dict[str, Any]] | None:
        """Events after `revision`, or None when that revision is older than the history kept."""
        if revision + 1 < self.history_start:
            return None
        return [
            {"type": t, "object": copy.deepcopy(o)}
            for rv, res, t, o in self.history
            if rv > revision and res == resource and namespace in ("", o["metadata"].get("namespace", ""))
        ]
