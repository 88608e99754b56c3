"""node-address probe: annotation = InternalIP on wlp59s0 → ok; annotation on tailscale0 (the VPN
fault) → fail naming tailscale0 and the primary interface, with the skipInterface patch; annotation
differing from the InternalIP on a normal interface → fail; annotation on no interface → fail; no
annotation → skip. `ip -o` outputs are real iproute2 output shapes."""

from __future__ import annotations

import pytest

from probes.catalog.node_address import node_address
from probes.errors import ProbeSkip
from probes.facts import NodeFacts
from probes.model import Status
from tests.fakes import FakeShell, out
from tests.probes.helpers import WORKER2, context

ADDRS = ("1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
         "2: wlp59s0    inet 192.168.1.105/24 scope global wlp59s0\\       valid_lft forever "
         "preferred_lft forever\n"
         "7: tailscale0    inet 100.101.102.103/32 scope global tailscale0\\       valid_lft forever "
         "preferred_lft forever\n")
ROUTE = "192.168.1.10 dev wlp59s0 src 192.168.1.105 uid 0 \\    cache \n"


def node() -> FakeShell:
    return (FakeShell().on(r"^ip -o -4 addr show$", out(ADDRS))
            .on(r"^ip -o route get 192\.168\.1\.10$", out(ROUTE)))


def annotated(address: str | None) -> NodeFacts:
    notes = {"projectcalico.org/IPv4Address": address} if address else {}
    return WORKER2.model_copy(update={"annotations": notes})


async def test_internal_ip_on_primary_interface_ok() -> None:
    result = await node_address(context(node()))
    assert result.status is Status.OK
    assert result.summary == "Calico uses 192.168.1.105 on wlp59s0, the InternalIP's interface"


async def test_vpn_address_fails_with_interface_names() -> None:
    result = await node_address(context(node(), node=annotated("100.101.102.103/32")))
    assert result.status is Status.FAIL
    assert "100.101.102.103 is on tailscale0, a VPN/tunnel/container interface" in result.summary
    assert "it differs from the InternalIP 192.168.1.105 on wlp59s0" in result.summary
    assert '"nodeAddressAutodetectionV4":{"skipInterface":"tailscale0"}' in result.remediation
    assert 'interface: "wlp59s0"' in result.remediation


async def test_other_lan_address_differs_fails() -> None:
    shell = FakeShell().on(r"^ip -o -4 addr show$", out(
        ADDRS + "2: wlp59s0    inet 192.168.1.150/24 scope global secondary wlp59s0\\       "
        "valid_lft forever\n"))
    shell.on(r"^ip -o route get", out(ROUTE))
    result = await node_address(context(shell, node=annotated("192.168.1.150/24")))
    assert result.status is Status.FAIL
    assert result.summary.endswith("it differs from the InternalIP 192.168.1.105 on wlp59s0")


async def test_stale_address_on_no_interface_fails() -> None:
    result = await node_address(context(node(), node=annotated("10.9.9.9/24")))
    assert result.status is Status.FAIL
    assert "10.9.9.9 is on no interface of worker2" in result.summary


async def test_no_annotation_skips() -> None:
    with pytest.raises(ProbeSkip, match="no projectcalico.org/IPv4Address"):
        await node_address(context(node(), node=annotated(None)))
