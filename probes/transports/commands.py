"""The one validator module, and the one way to build a command.

Every value that comes from outside (CLI arguments, fix parameters, Slack payloads, the config file,
cluster objects, command output) is checked here before it is used: fixes, probes, the Slack bot and
the config all call these validators. Rules shared by all of them (docs/security.md):

- the whole string must match (`fullmatch`): `$` in a pattern would accept a final newline;
- no control characters, no whitespace, bounded length, ASCII only where a name is expected;
- addresses and networks come back in their canonical form; scoped (`fe80::1%eth0`), IPv4-mapped
  (`::ffff:10.0.0.1`), unspecified (`0.0.0.0`) addresses and prefix-0 networks are refused;
- every error is `InvalidInput` with ONE line that shows the value escaped and shortened.

Commands are fixed templates (`render("ip -o route get {ip}", ip=ipv4(value))`); a placeholder
only accepts an `Arg`, and an `Arg` only comes out of a validator here, so an unchecked string can
never reach a shell. Validated values of the name/address kinds are plain shell words (nothing to
quote, no `%`, `$` or `\\` that systemd would expand), so they are safe in unit files too; the
property test in tests/probes/test_validators.py checks that for random and hostile strings.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import shlex
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from probes.errors import InvalidInput
from probes.model import trim
from probes.transports.base import CommandResult

_IFACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,14}")
_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_NODE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_HOST_LABEL = r"[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")
_DNS_LABEL = re.compile(_LABEL)
_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
_PATH = re.compile(r"(?:/[A-Za-z0-9_.@+-]+)+/?")
_DIGITS = re.compile(r"[0-9]{1,10}")
_ADDRESS_CHARS = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_NETWORK_CHARS = re.compile(r"[0-9A-Fa-f:.]{2,45}/[0-9]{1,3}")
_PROBE_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
_PARAM_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_SLACK_ID = {
    "Slack user id": re.compile(r"[UW][A-Z0-9]{1,31}"),
    "Slack channel id": re.compile(r"[CGD][A-Z0-9]{1,31}"),
    "Slack user group id": re.compile(r"S[A-Z0-9]{1,31}"),
}

NODE_NAME_MAX = 253
PATH_MAX = 4096
SHOWN_MAX = 60
"""Characters of a refused value shown in the error line (a hostile value may be megabytes)."""

MTU_MIN, MTU_MAX = 68, 65535


@dataclass(frozen=True)
class Arg:
    """A value that passed validation; `render` shell-quotes it."""

    value: str

    def __str__(self) -> str:
        return self.value


def shown(value: object) -> str:
    """The value for an error line: escaped by repr (one line), cut to SHOWN_MAX characters and its
    escaped form to twice that (`\U0001f600` is ten characters of repr for one of value)."""
    text = value if isinstance(value, str) else str(value)
    escaped = repr(text[:SHOWN_MAX])
    if len(escaped) > 2 * SHOWN_MAX:
        escaped = escaped[: 2 * SHOWN_MAX] + "…"
    if len(text) <= SHOWN_MAX and not escaped.endswith("…"):
        return escaped
    return f"{escaped}… ({len(text)} characters)"


def field_value(validate: Callable[[str], Arg], value: str) -> str:
    """`validate(value)` inside a pydantic validator: the one-line `InvalidInput` becomes the
    ValueError pydantic reports under the key (`config error: ssh.user: …`)."""
    try:
        return validate(value).value
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


def _bad(kind: str, value: object, why: str) -> InvalidInput:
    return InvalidInput(f"invalid {kind} {shown(value)}: {why}")


def _matches(pattern: re.Pattern[str], value: object, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit and pattern.fullmatch(value) is not None


def node_name(value: str) -> Arg:
    """A Kubernetes node name (RFC 1123 subdomain: lowercase labels of at most 63, 253 in all)."""
    if not _matches(_NODE, value, NODE_NAME_MAX):
        raise _bad("node name", value, "must be lowercase letters, digits, '-' and '.' (RFC 1123)")
    return Arg(value)


def dns_label(value: str, kind: str = "name") -> Arg:
    """A Kubernetes namespace or object name that must be one RFC 1123 label (at most 63)."""
    if not _matches(_DNS_LABEL, value, 63):
        raise _bad(kind, value, "must be at most 63 lowercase letters, digits and '-' (RFC 1123 label)")
    return Arg(value)


def iface(value: str) -> Arg:
    """A Linux interface name (at most 15 characters, no spaces, slashes or shell syntax)."""
    if not _matches(_IFACE, value, 15) or value in {".", ".."}:
        raise _bad("interface name", value, "must be 1-15 of letters, digits, '_.:@-'")
    return Arg(value)


def _address(value: str, kind: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not _matches(_ADDRESS_CHARS, value, 45):
        raise _bad(kind, value, "must be a plain IPv4 or IPv6 address (no scope, spaces or prefix)")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise _bad(kind, value, "not an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise _bad(kind, value, f"IPv4-mapped IPv6 address; write {address.ipv4_mapped}")
    if address.is_unspecified:
        raise _bad(kind, value, "the unspecified address is not an address of anything")
    return address


def ip(value: str) -> Arg:
    """An IPv4 or IPv6 address, returned canonical (`2001:DB8::1` -> `2001:db8::1`)."""
    return Arg(str(_address(value, "IP address")))


def ipv4(value: str) -> Arg:
    address = _address(value, "IPv4 address")
    if address.version != 4:
        raise _bad("IPv4 address", value, "not an IPv4 address")
    return Arg(str(address))


def network(value: str, kind: str = "CIDR") -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A network in CIDR form: prefix given, host bits zero, not prefix 0, not IPv4-mapped."""
    if not _matches(_NETWORK_CHARS, value, 49):
        raise _bad(kind, value, "must be ADDRESS/PREFIX, e.g. 10.244.1.0/24 (no scope or spaces)")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise _bad(kind, value, str(exc)) from None
    if net.prefixlen == 0:
        raise _bad(kind, value, "a prefix-0 network is every address, not a pod or service range")
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
        raise _bad(kind, value, "IPv4-mapped IPv6 network; write the IPv4 network")
    return net


def cidr(value: str) -> Arg:
    """A network in CIDR form, canonical; host bits must be zero (`10.0.0.0/8`, not `10.0.0.1/8`)."""
    return Arg(str(network(value)))


def host(value: str) -> Arg:
    """An address to connect to: an IP address (canonical) or a DNS host name (RFC 1123)."""
    if isinstance(value, str) and _ADDRESS_CHARS.fullmatch(value) and ":" in value:
        return ip(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9.]+", value):
        return ip(value)  # all digits and dots is meant as an IPv4 address, never a name
    if not _matches(_HOSTNAME, value, NODE_NAME_MAX):
        raise _bad("host", value, "must be an IP address or a DNS name (letters, digits, '-' and '.')")
    return Arg(value)


def port(value: int | str) -> Arg:
    return Arg(str(integer(value, 1, 65535, "port")))


def mtu(value: int | str, low: int = MTU_MIN, high: int = MTU_MAX) -> Arg:
    return Arg(str(integer(value, low, high, "MTU")))


def integer(value: object, low: int, high: int, kind: str = "number") -> int:
    """A whole number from `low` to `high`: an int, or ASCII digits only (no sign, spaces, '_')."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    if number is None or not low <= number <= high:
        raise _bad(kind, value, f"must be a whole number from {low} to {high}")
    return number


def word(value: str, kind: str = "name") -> Arg:
    """A plain token such as an iptables chain, ipset, module or sysctl name."""
    if not _matches(_WORD, value, 63):
        raise _bad(kind, value, "must be letters, digits, '_', '.' and '-'")
    return Arg(value)


def path(value: str) -> Arg:
    """An absolute file path of plain characters (no spaces, globs, '..' or shell syntax)."""
    if not _matches(_PATH, value, PATH_MAX) or ".." in value.split("/"):
        raise _bad("path", value, "must be absolute, of letters, digits and '_.@+-/', without '..'")
    return Arg(value)


def probe_id(value: str) -> Arg:
    """A probe id as the registry defines them (`pod-api`); existence is checked by the caller."""
    if not _matches(_PROBE_ID, value, 63):
        raise _bad("probe id", value, "must be lowercase letters, digits and '-'")
    return Arg(value)


def param_key(value: str) -> Arg:
    """A fix parameter name (`pod_cidr`)."""
    if not _matches(_PARAM_KEY, value, 32):
        raise _bad("parameter name", value, "must be lowercase letters, digits and '_'")
    return Arg(value)


def slack_id(value: str, kind: str = "Slack user id") -> Arg:
    """A Slack user (U…/W…), channel (C…/G…/D…) or user group (S…) id; they end up in `<@U…>`."""
    if not _matches(_SLACK_ID[kind], value, 81):
        raise _bad(kind, value, "not a Slack id (uppercase letters and digits)")
    return Arg(value)


def text(value: str, limit: int, kind: str = "text") -> str:
    """One line of free text (a slash command's text): bounded, no control characters. It is never
    put in a command; it is split into words that are validated one by one."""
    if not isinstance(value, str) or len(value) > limit:
        raise _bad(kind, value, f"must be at most {limit} characters")
    if not value.isprintable():  # control, format (e.g. RTL override), separators, unassigned
        raise _bad(kind, value, "must be one line without control or invisible characters")
    return value


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


BATCH_MARKER_BYTES = 12
"""Random bytes in a batch's delimiter: a command's output cannot end a segment by accident."""


@dataclass(frozen=True)
class Batch:
    """Several commands (each built by `render`) as one shell script, run by one exec: each runs in a
    subshell with stdin closed, and a random delimiter line before it (on stdout and stderr) and after
    it (on stdout, with its exit status) lets `split` hand every command its own output back."""

    commands: tuple[str, ...]
    marker: str

    @classmethod
    def of(cls, commands: Sequence[str]) -> Batch:
        if not commands:
            raise ValueError("a batch of no commands")
        return cls(tuple(commands), f"netcheck-batch-{secrets.token_hex(BATCH_MARKER_BYTES)}")

    @property
    def script(self) -> str:
        m = self.marker  # hex and '-' only: nothing to quote
        return "\n".join(
            f"printf '\\n{m} {i}\\n'; printf '\\n{m} {i}\\n' >&2; ( {command}\n) </dev/null; "
            f"printf '\\n{m} {i} exit %s\\n' \"$?\""
            for i, command in enumerate(self.commands)
        )

    def results(self, whole: CommandResult, cap: int) -> list[CommandResult] | None:
        """Each command's result out of the script's (output kept to `cap` characters a stream);
        None if the script did not run to its end (killed, or its output cut)."""
        parts = None if whole.truncated else self.split(whole.stdout, whole.stderr)
        if parts is None:
            return None
        return [CommandResult(command=command, exit_status=status, stdout=trim(out, cap),
                              stderr=trim(err, cap), truncated=len(out) > cap or len(err) > cap)
                for command, (status, out, err) in zip(self.commands, parts, strict=True)]

    def split(self, stdout: str, stderr: str) -> list[tuple[int, str, str]] | None:
        """(exit status, stdout, stderr) per command; None if the script did not run to its end."""
        outs = self._segments(stdout, with_status=True)
        errs = self._segments(stderr, with_status=False)
        if outs is None or errs is None:
            return None
        return [(status, out, errs[i][1]) for i, (status, out) in enumerate(outs)]

    def _status_line(self, text: str, i: int, start: int) -> tuple[int, int] | None:
        """Where command i's `MARKER i exit N` line begins and its N (string search, not a regex
        compiled per command: the marker is random, so no compiled pattern would be reused)."""
        tag = f"\n{self.marker} {i} exit "
        at = text.find(tag, start)
        while at >= 0:
            digits_from = at + len(tag)
            line_end = text.find("\n", digits_from)
            digits = text[digits_from:line_end] if line_end >= 0 else ""
            if digits.isdigit() and digits.isascii():
                return at, int(digits)
            at = text.find(tag, at + 1)
        return None

    def _segments(self, text: str, *, with_status: bool) -> list[tuple[int, str]] | None:
        found: list[tuple[int, str]] = []
        for i in range(len(self.commands)):
            start = f"\n{self.marker} {i}\n"
            begin = text.find(start)
            if begin < 0:
                return None
            body_from = begin + len(start)
            if with_status:
                end = self._status_line(text, i, body_from)
                if end is None:
                    return None
                found.append((end[1], text[body_from:end[0]]))
                continue
            following = text.find(f"\n{self.marker} {i + 1}\n", body_from)
            found.append((0, text[body_from:] if following < 0 else text[body_from:following]))
        return found


class _CappedRunner(Protocol):
    async def run(self, command: str, *, timeout: float | None = None,
                  output_limit: int | None = None) -> CommandResult: ...


async def run_batched(runner: _CappedRunner, commands: Sequence[str], *, cap: int,
                      timeout: float | None = None) -> list[CommandResult]:
    """`commands` as one Batch through `runner` (one SSH session or one pod exec instead of one
    each); the script's output may be each command's cap times their number. Cut short (killed, or
    its output cut), each command runs again on its own."""
    batch = Batch.of(commands)
    whole = await runner.run(batch.script, timeout=timeout, output_limit=cap * len(commands))
    results = batch.results(whole, cap)
    if results is None:
        return [await runner.run(command, timeout=timeout) for command in commands]
    return results
