"""Bearer-token authentication and a pluggable authorizer for the API stand-in.

The default authorizer allows reads for everyone and writes for tokens not marked readonly; `make_app` swaps
in one built from RBAC manifests (`rbac.RbacAuthorizer`) when the config names them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .config import TokenInfo

READ_VERBS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    readonly: bool


@dataclass(frozen=True)
class Request:
    """What is being asked: the same attributes Kubernetes RBAC decides on."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str


Authorizer = Callable[[User, Request], bool]


def readonly_authorizer(user: User, request: Request) -> bool:
    return request.verb in READ_VERBS or not user.readonly


def authenticate(tokens: dict[str, TokenInfo], authorization_header: str | None) -> User | None:
    if not authorization_header or not authorization_header.startswith("Bearer "):
        return None
    info = tokens.get(authorization_header.removeprefix("Bearer ").strip())
    if info is None:
        return None
    return User(info.user, tuple(info.groups), info.readonly)
