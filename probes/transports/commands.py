"""Validation of every value that goes into a command, and the one way to build a command.

Commands are fixed templates (`render("ip -o route get {ip}", ip=ipv4(value))`); a placeholder
only accepts an `Arg`, and an `Arg` only comes out of a validator here, so an unchecked string
can never reach a shell. Each validator raises `InvalidInput` with a one-line message.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import string
from dataclasses import dataclass

from probes.errors import InvalidInput

_IFACE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,14}$")
_NODE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_WORD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
_PATH = re.compile(r"^(/[A-Za-z0-9_.@+-]+)+/?$")

MTU_MIN, MTU_MAX = 68, 65535


@dataclass(frozen=True)
class Arg:
    """A value that passed validation; `render` shell-quotes it."""

    value: str

    def __str__(self) -> str:
        return self.value


def _bad(kind: str, value: object, why: str) -> InvalidInput:
    return InvalidInput(f"invalid {kind} {str(value)!r}: {why}")


def node_name(value: str) -> Arg:
    """A Kubernetes node name (RFC 1123 subdomain)."""
    if not isinstance(value, str) or len(value) > 253 or not _NODE.match(value):
        raise _bad("node name", value, "must be lowercase letters, digits, '-' and '.'")
    return Arg(value)


def iface(value: str) -> Arg:
    """A Linux interface name (at most 15 characters, no spaces, slashes or shell syntax)."""
    if not isinstance(value, str) or not _IFACE.match(value) or value in {".", ".."}:
        raise _bad("interface name", value, "must be 1-15 of letters, digits, '_.:@-'")
    return Arg(value)


def ip(value: str) -> Arg:
    try:
        return Arg(str(ipaddress.ip_address(str(value).strip())))
    except ValueError:
        raise _bad("IP address", value, "not an IPv4 or IPv6 address") from None


def ipv4(value: str) -> Arg:
    try:
        return Arg(str(ipaddress.IPv4Address(str(value).strip())))
    except ValueError:
        raise _bad("IPv4 address", value, "not an IPv4 address") from None


def cidr(value: str) -> Arg:
    """A network in CIDR form; host bits must be zero (`10.0.0.0/8`, not `10.0.0.1/8`)."""
    try:
        return Arg(str(ipaddress.ip_network(str(value).strip(), strict=True)))
    except ValueError as exc:
        raise _bad("CIDR", value, str(exc)) from None


def port(value: int | str) -> Arg:
    return Arg(str(integer(value, 1, 65535, "port")))


def mtu(value: int | str, low: int = MTU_MIN, high: int = MTU_MAX) -> Arg:
    return Arg(str(integer(value, low, high, "MTU")))


def integer(value: int | str, low: int, high: int, kind: str = "number") -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise _bad(kind, value, f"must be a whole number from {low} to {high}")
    return number


def word(value: str, kind: str = "name") -> Arg:
    """A plain token such as an iptables chain, ipset, module or sysctl name."""
    if not isinstance(value, str) or not _WORD.match(value):
        raise _bad(kind, value, "must be letters, digits, '_', '.' and '-'")
    return Arg(value)


def path(value: str) -> Arg:
    """An absolute file path of plain characters (no spaces, globs, '..' or shell syntax)."""
    if (not isinstance(value, str) or len(value) > 4096 or not _PATH.match(value)
            or ".." in value.split("/")):
        raise _bad("path", value, "must be absolute, of letters, digits and '_.@+-/', without '..'")
    return Arg(value)


def render(template: str, **args: Arg) -> str:
    """Fill a fixed template; every field must be a validated `Arg`, and is shell-quoted."""
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = fields - args.keys()
    if missing:
        raise KeyError(f"template needs {sorted(missing)}")
    for name, value in args.items():
        if not isinstance(value, Arg):
            raise TypeError(f"{name!r} must be a validated Arg, not {type(value).__name__}")
    return template.format(**{name: shlex.quote(value.value) for name, value in args.items()})
