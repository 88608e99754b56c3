"""Command building: validators refuse shell syntax with one-line errors; render quotes values."""

from __future__ import annotations

import pytest

from probes.errors import InvalidInput
from probes.transports import commands as c


@pytest.mark.parametrize(
    ("validator", "value"),
    [
        (c.iface, "eth0 && reboot"),
        (c.iface, "averyveryverylongname0"),
        (c.iface, "../etc"),
        (c.cidr, "10.0.0.0/8; reboot"),
        (c.cidr, "10.0.0.1/8"),
        (c.node_name, "../etc"),
        (c.node_name, "Worker2"),
        (c.ipv4, "10.0.0.1 -j ACCEPT"),
        (c.mtu, 100000),
        (c.mtu, "1400; reboot"),
        (c.port, 0),
    ],
)
def test_validators_refuse_bad_values_with_one_line(validator, value) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as err:
        validator(value)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("invalid ")


def test_render_quotes_and_requires_validated_args() -> None:
    assert c.render("ip -o route get {ip}", ip=c.ipv4("10.96.0.1")) == "ip -o route get 10.96.0.1"
    assert c.render("ip link show dev {dev}", dev=c.iface("cali@x")) == "ip link show dev cali@x"
    with pytest.raises(TypeError):
        c.render("ping {ip}", ip="10.0.0.1; reboot")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        c.render("ping {ip} {count}", ip=c.ipv4("10.0.0.1"))


def test_valid_values_are_normalised() -> None:
    assert c.cidr("192.168.88.0/24").value == "192.168.88.0/24"
    assert c.cidr("FD00:0::/64").value == "fd00::/64"
    assert c.mtu("1450").value == "1450"
    assert c.node_name("worker2").value == "worker2"
