"""Kubernetes RBAC evaluation for the lab's API stand-in: an `Authorizer` built from the shipped
manifests (deploy/kubernetes/rbac.yaml), so the lab and the tests run the bot with exactly the
permissions a cluster would give it.

Used by `lab.apiserver.app.make_app` when `ApiServerConfig.rbac_manifests` is set (the lab's
RBAC-enforcing mode), by tests/deploy/test_rbac_enforced.py and by end-to-end tests that want the
bot's token restricted: `serve(config, authorizer=RbacAuthorizer.from_manifests(objects))`, with the
token's user `system:serviceaccount:netcheck:netcheck`. Matching follows the API server's RBAC authorizer
(k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac, `RuleAllows`): verbs, apiGroups, resources with
"resource/subresource" and "*"/"*/sub" forms, resourceNames (never matching a request without a name,
such as create or list), ClusterRoleBindings everywhere, RoleBindings only in their namespace and only
for namespaced requests, subjects by ServiceAccount, User and Group. system:masters may do anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .auth import Request, User

SUPERUSER_GROUP = "system:masters"


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")


def _has(values: Iterable[str], wanted: str) -> bool:
    values = list(values)
    return "*" in values or wanted in values


def _resource_matches(rule: dict[str, Any], request: Request) -> bool:
    combined = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    for resource in rule.get("resources", []):
        if resource in ("*", combined):
            return True
        if request.subresource and resource == f"*/{request.subresource}":
            return True
    return False


def rule_allows(rule: dict[str, Any], request: Request) -> bool:
    if not _has(rule.get("verbs", []), request.verb):
        return False
    if not _has(rule.get("apiGroups", []), request.group):
        return False
    if not _resource_matches(rule, request):
        return False
    names = rule.get("resourceNames") or []
    return not names or request.name in names


def _subject_matches(subject: dict[str, Any], user: User, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == service_account_user(namespace, subject["name"])
    if kind == "User":
        return user.name == subject["name"]
    if kind == "Group":
        return subject["name"] in user.groups
    return False


@dataclass
class RbacAuthorizer:
    """Roles and bindings as Kubernetes JSON dicts; call it like the stand-in's `Authorizer`."""

    roles: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    bindings: list[dict[str, Any]] = field(default_factory=list)
    denials: list[Request] = field(default_factory=list)

    @classmethod
    def from_manifests(cls, objects: Iterable[dict[str, Any]]) -> RbacAuthorizer:
        authorizer = cls()
        authorizer.add(objects)
        return authorizer

    def add(self, objects: Iterable[dict[str, Any]]) -> int:
        """Apply more RBAC objects (as `kubectl apply` would: same kind/namespace/name replaces);
        other kinds are ignored. Returns how many were RBAC objects."""
        count = 0
        for obj in objects:
            kind, meta = obj.get("kind"), obj.get("metadata", {})
            if kind in ("Role", "ClusterRole"):
                namespace = meta.get("namespace", "") if kind == "Role" else ""
                self.roles[(kind, namespace, meta["name"])] = list(obj.get("rules") or [])
            elif kind in ("RoleBinding", "ClusterRoleBinding"):
                key = (kind, meta.get("namespace", ""), meta["name"])
                self.bindings = [b for b in self.bindings if (
                    b["kind"], b["metadata"].get("namespace", ""), b["metadata"]["name"]) != key]
                self.bindings.append(obj)
            else:
                continue
            count += 1
        return count

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> RbacAuthorizer:
        """From YAML manifest files (multi-document); non-RBAC objects are ignored."""
        objects: list[dict[str, Any]] = []
        for path in paths:
            objects.extend(doc for doc in yaml.safe_load_all(Path(path).read_text()) if doc)
        return cls.from_manifests(objects)

    def _rules_for(self, user: User, namespace: str) -> Iterable[dict[str, Any]]:
        for binding in self.bindings:
            binding_namespace = binding["metadata"].get("namespace", "")
            if binding["kind"] == "RoleBinding" and (not namespace or namespace != binding_namespace):
                continue
            if not any(_subject_matches(s, user, binding_namespace) for s in binding.get("subjects", [])):
                continue
            ref = binding["roleRef"]
            role_namespace = binding_namespace if ref["kind"] == "Role" else ""
            yield from self.roles.get((ref["kind"], role_namespace, ref["name"]), [])

    def allows(self, user: User, request: Request) -> bool:
        if SUPERUSER_GROUP in user.groups:
            return True
        return any(rule_allows(rule, request) for rule in self._rules_for(user, request.namespace))

    def __call__(self, user: User, request: Request) -> bool:
        allowed = self.allows(user, request)
        if not allowed:
            self.denials.append(request)
        return allowed
