"""The validator module (probes/transports/commands.py) against random and hostile strings.

Covers: a property test per validator (hypothesis) — whatever passes is a single shell word that needs
no quoting, has no control character, whitespace, `%`, `$` or backslash (systemd would expand
those in a unit file), is bounded in length, renders through `render` to exactly that one word, and
validates to itself again (canonical); free text passes only as one line without control characters.
Table tests for what the issue found: trailing newlines, scoped/mapped/prefix-0 addresses, Unicode
digits, `1_400`, overlong values (the error line is bounded), and canonical forms.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from probes.errors import InvalidInput
from probes.transports import commands as c

HOSTILE = list(";&|`$(){}[]<>*?!~#'\"\\ \t\n\r\x00\x0b\x0c\x1b\x7f%=,+^@:/.-_") + [
    "\u2028", "\u0085", "\u200b", "\uff1b", "\u0661", "K", "\u212a", "é", "ı",
]
VALID_SEEDS = ["worker2", "eth0", "wlp59s0", "10.244.1.0/24", "192.168.1.105", "fd00::/64", "2001:db8::1",
               "1400", "/etc/hosts", "pod-api", "pod_cidr", "UALICE", "node.example.com"]

Validator = Callable[[str], c.Arg]
VALIDATORS: dict[str, Validator] = {
    "node_name": c.node_name,
    "dns_label": c.dns_label,
    "iface": c.iface,
    "ip": c.ip,
    "ipv4": c.ipv4,
    "cidr": c.cidr,
    "host": c.host,
    "port": c.port,
    "mtu": c.mtu,
    "word": c.word,
    "path": c.path,
    "probe_id": c.probe_id,
    "param_key": c.param_key,
    "slack_user": lambda v: c.slack_id(v, "Slack user id"),
    "slack_channel": lambda v: c.slack_id(v, "Slack channel id"),
    "slack_group": lambda v: c.slack_id(v, "Slack user group id"),
}
MAX_LENGTH = {"path": c.PATH_MAX}

hostile_text = st.text(alphabet=st.sampled_from(HOSTILE + list(string.ascii_letters + string.digits)),
                       max_size=40)
mutated = st.builds(lambda seed, pre, post: pre + seed + post,
                    st.sampled_from(VALID_SEEDS), hostile_text, hostile_text)
candidates = st.one_of(st.text(max_size=80), hostile_text, mutated, st.sampled_from(VALID_SEEDS))


def assert_safe_word(name: str, validator: Validator, value: str) -> None:
    try:
        arg = validator(value)
    except InvalidInput as exc:
        line = str(exc)
        assert "\n" not in line and "\r" not in line and len(line) < 300, line
        return
    word = arg.value
    assert isinstance(word, str) and word, (name, value)
    assert len(word) <= MAX_LENGTH.get(name, c.NODE_NAME_MAX)
    assert shlex.quote(word) == word, f"{name} passed {value!r}, which needs shell quoting"
    assert not set(word) & set("%$\\`'\" \t\n\r\x00"), f"{name} passed {value!r}"
    assert word.isascii() and word.isprintable()
    assert shlex.split(c.render("run {x} end", x=arg)) == ["run", word, "end"]
    assert validator(word).value == word, f"{name}: {word!r} is not canonical"


@pytest.mark.parametrize("name", sorted(VALIDATORS))
@settings(max_examples=300, deadline=None)
@given(value=candidates)
@example(value="eth0\n")
@example(value="fe80::1%wlan0")
@example(value="worker2\n")
def test_whatever_passes_is_one_safe_shell_word(name: str, value: str) -> None:
    assert_safe_word(name, VALIDATORS[name], value)


@settings(max_examples=300, deadline=None)
@given(value=candidates)
def test_free_text_passes_only_as_one_bounded_line(value: str) -> None:
    try:
        line = c.text(value, 200)
    except InvalidInput as exc:
        assert "\n" not in str(exc)
        return
    assert len(line) <= 200 and line.isprintable() or line == ""
    assert shlex.split(c.render("echo {t}", t=c.Arg(line))) == ["echo", line]


@pytest.mark.parametrize(
    ("validator", "value"),
    [
        (c.iface, "eth0\n"),
        (c.node_name, "worker2\n"),
        (c.node_name, "a" * 64),
        (c.node_name, "-worker"),
        (c.cidr, "0.0.0.0/0"),
        (c.cidr, "::/0"),
        (c.cidr, "::ffff:10.2.3.0/120"),
        (c.cidr, "fe80::%wlan0/64"),
        (c.cidr, "10.0.0.0/8\n"),
        (c.cidr, " 10.0.0.0/8"),
        (c.cidr, "10.0.0.1"),
        (c.ip, "fe80::1%eth0"),
        (c.ip, "::ffff:10.0.0.1"),
        (c.ip, "0.0.0.0"),
        (c.ip, "10.0.0.1\n"),
        (c.ipv4, "2001:db8::1"),
        (c.mtu, "1_400"),
        (c.mtu, "+1400"),
        (c.mtu, " 1400"),
        (c.mtu, "\u0661\u0664\u0660\u0660"),
        (c.mtu, True),
        (c.word, "ipip\n"),
        (c.path, "/etc/hosts\n"),
        (c.path, "/etc/../shadow"),
        (c.host, "node1;reboot"),
        (c.host, "10.0.0.256"),
        (c.host, "\u212aube"),
        (c.slack_id, "U1> <!channel"),
        (c.probe_id, "no-such-probe; touch /tmp/x"),
        (c.param_key, "pod_cidr\n"),
    ],
)
def test_hostile_values_are_refused_with_one_bounded_line(validator, value) -> None:  # noqa: ANN001
    with pytest.raises(InvalidInput) as err:
        validator(value)
    line = str(err.value)
    assert line.startswith("invalid ") and "\n" not in line and len(line) < 300


def test_an_overlong_value_is_shown_cut() -> None:
    with pytest.raises(InvalidInput) as err:
        c.iface("x" * 100_000)
    assert len(str(err.value)) < 200 and "(100000 characters)" in str(err.value)


@pytest.mark.parametrize(
    ("validator", "value", "canonical"),
    [
        (c.cidr, "2001:DB8::/32", "2001:db8::/32"),
        (c.ip, "2001:0db8:0:0::1", "2001:db8::1"),
        (c.host, "10.0.0.7", "10.0.0.7"),
        (c.host, "node-7.lab.example", "node-7.lab.example"),
        (c.mtu, 1450, "1450"),
    ],
)
def test_valid_values_come_back_canonical(validator, value, canonical) -> None:  # noqa: ANN001
    assert validator(value).value == canonical
