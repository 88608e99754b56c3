"""mtu probe: pod MTU from the Installation / /var/lib/calico/mtu / Calico interfaces (never minus the
overhead twice), VXLAN and WireGuard overhead, interface MTU toward the API endpoint, active DF-ping
path MTU ("Frag needed ... (mtu = X)", "message too long, mtu=X", silent black hole found by search);
fail with the calico-mtu fix and the node's values in the remediation, ok on a healthy node, skip
without an endpoint; every ping command is built from validated values."""

from __future__ import annotations

import re

import pytest

from probes.catalog.mtu import mtu_probe
from probes.errors import ProbeSkip
from probes.facts import InstallationFacts
from probes.model import FixProposal, Status
from probes.observations import Observations
from probes.transports.base import CommandResult
from tests.fakes import FakeShell, out
from tests.probes.helpers import context, facts

LINKS = (
    "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000"
    "\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
    "2: wlp59s0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {wifi} qdisc noqueue state UP mode DEFAULT group "
    "default qlen 1000\\    link/ether 82:ea:96:78:f6:31 brd ff:ff:ff:ff:ff:ff link-netns ncl-router\n"
    "5: vxlan.calico: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN mode DEFAULT "
    "group default\\    link/ether 66:1e:2c:3a:4b:5c brd ff:ff:ff:ff:ff:ff\n"
)
ROUTE = "192.168.1.10 dev wlp59s0 src 192.168.1.105 uid 0 \\    cache \n"
PING_OK = ("PING 192.168.1.10 (192.168.1.10) {size}({total}) bytes of data.\n"
           "{reply} bytes from 192.168.1.10: icmp_seq=1 ttl=64 time=0.139 ms\n\n"
           "--- 192.168.1.10 ping statistics ---\n"
           "1 packets transmitted, 1 received, 0% packet loss, time 0ms\n")
PING_LOST = ("PING 192.168.1.10 (192.168.1.10) {size}({total}) bytes of data.\n\n"
             "--- 192.168.1.10 ping statistics ---\n"
             "1 packets transmitted, 0 received, 100% packet loss, time 0ms\n")
FRAG = ("PING 192.168.1.10 (192.168.1.10) 1472(1500) bytes of data.\n"
        "From 192.168.1.1 icmp_seq=1 Frag needed and DF set (mtu = 1400)\n\n--- 192.168.1.10 ping statistics "
        "---\n1 packets transmitted, 0 received, +1 errors, 100% packet loss, time 0ms\n")
INSTALLED = InstallationFacts(mtu=1450)


def pinger(path_mtu: int, *, icmp: bool = True):  # type: ignore[no-untyped-def]
    """Answer DF pings like a path whose narrowest hop is path_mtu (with or without frag-needed)."""
    def answer(command: str) -> CommandResult:
        size = int(re.search(r"-s (\d+)", command).group(1))  # type: ignore[union-attr]
        fields = {"size": size, "total": size + 28, "reply": size + 8}
        if size + 28 <= path_mtu:
            return CommandResult(command=command, exit_status=0, stdout=PING_OK.format(**fields))
        if icmp:
            return CommandResult(command=command, exit_status=1, stdout=FRAG)
        return CommandResult(command=command, exit_status=1, stdout=PING_LOST.format(**fields))
    return answer


def node(wifi_mtu: int = 1500, path_mtu: int = 1500, *, icmp: bool = True,
         calico_mtu_file: str = "") -> FakeShell:
    links = LINKS.format(wifi=wifi_mtu)
    return (FakeShell()
            .on(r"^ip -o link show$", out(links))
            .on(r"^ip -o link show dev wlp59s0$", out(links.splitlines()[1] + "\n"))
            .on(r"^ip -o route get 192\.168\.1\.10$", out(ROUTE))
            .on(r"^cat /var/lib/calico/mtu$", out(calico_mtu_file, 0 if calico_mtu_file else 1,
                                                  "" if calico_mtu_file else "cat: /var/lib/calico/mtu: "
                                                  "No such file or directory"))
            .on(r"^ping ", pinger(min(path_mtu, wifi_mtu), icmp=icmp)))


async def test_healthy_vxlan_node_is_ok() -> None:
    host = node()
    result = await mtu_probe(context(host, cluster_facts=facts(installation=INSTALLED)))
    assert result.status is Status.OK
    assert result.summary == "pod MTU 1450 + 50 = 1500 fits wlp59s0 MTU 1500 and path MTU 1500"
    assert result.fix is None
    assert "ping -M do -c 1 -W 1 -s 1472 192.168.1.10" in host.ran
    assert "cat /var/lib/calico/mtu" not in host.ran  # the Installation answered first


async def test_router_frag_needed_fails_with_calico_mtu_fix() -> None:
    result = await mtu_probe(context(node(path_mtu=1400), cluster_facts=facts(installation=INSTALLED)))
    assert result.status is Status.FAIL
    assert result.summary == ("pod MTU 1450 + vxlan overhead 50 = 1500 exceeds path MTU 1400 toward "
                              "192.168.1.10")
    assert "Frag needed and DF set (mtu = 1400)" in result.evidence
    assert result.fix == FixProposal(id="calico-mtu", params={"mtu": 1350})
    assert result.proof.splitlines()[0].startswith("pod MTU 1450 (from Installation default spec)")
    assert "Frag needed and DF set (mtu = 1400)" in result.proof
    assert result.observed == Observations(uplink="wlp59s0", uplink_mtu=1500, uplink_kind="wifi",
                                           path_mtu=1400, pod_mtu=1450)
    assert '"calicoNetwork":{"mtu":1350}' in result.remediation
    assert "sudo ip link set wlp59s0 mtu 1400" in result.remediation
    assert "sudo ip link set vxlan.calico mtu 1350" in result.remediation


async def test_small_interface_mtu_fails_without_touching_the_interface() -> None:
    host = node(wifi_mtu=1400)
    result = await mtu_probe(context(host, cluster_facts=facts(installation=INSTALLED)))
    assert result.status is Status.FAIL
    assert result.summary.endswith("exceeds wlp59s0 MTU 1400 toward 192.168.1.10")
    assert result.fix == FixProposal(id="calico-mtu", params={"mtu": 1350})
    assert "ip link set wlp59s0" not in result.remediation
    assert "ping -M do -c 1 -W 1 -s 1372 192.168.1.10" in host.ran


async def test_silent_black_hole_is_measured_by_search() -> None:
    host = node(path_mtu=1400, icmp=False)
    result = await mtu_probe(context(host, cluster_facts=facts(installation=INSTALLED)))
    assert result.status is Status.FAIL
    assert result.fix is not None
    assert 1340 <= int(result.fix.params["mtu"]) <= 1350
    assert "100% packet loss" in result.evidence


async def test_pod_mtu_from_file_is_not_reduced_twice() -> None:
    host = node(calico_mtu_file="1450\n")
    result = await mtu_probe(context(host, cluster_facts=facts(installation=None)))
    assert result.status is Status.OK
    assert "pod MTU 1450 (from /var/lib/calico/mtu)" in result.evidence


async def test_pod_mtu_from_vxlan_interface_when_nothing_else() -> None:
    result = await mtu_probe(context(node(), cluster_facts=facts(installation=None)))
    assert "pod MTU 1450 (from interface vxlan.calico)" in result.evidence
    assert result.status is Status.OK


async def test_wireguard_overhead_when_wireguard_interface_exists() -> None:
    host = node()
    links = LINKS.format(wifi=1500) + (
        "6: wireguard.cali: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1440 qdisc noqueue state UNKNOWN "
        "mode DEFAULT group default qlen 1000\\    link/none \n")
    host.script.insert(0, (re.compile(r"^ip -o link show$"), out(links)))
    result = await mtu_probe(context(host, cluster_facts=facts(installation=INSTALLED)))
    assert result.status is Status.FAIL
    assert result.fix == FixProposal(id="calico-mtu", params={"mtu": 1440})


async def test_unknown_endpoint_skips() -> None:
    with pytest.raises(ProbeSkip, match="real IPv4 address is unknown"):
        await mtu_probe(context(node(), cluster_facts=facts(endpoint=None)))


async def test_endpoint_on_this_node_needs_no_path_check() -> None:
    local = "local 192.168.1.10 dev lo src 192.168.1.10 uid 0 \\    cache <local> \n"
    host = (FakeShell().on(r"^ip -o link show$", out(LINKS.format(wifi=1500)))
            .on(r"^ip -o route get 192\.168\.1\.10$", out(local)))
    result = await mtu_probe(context(host, cluster_facts=facts(installation=INSTALLED)))
    assert result.status is Status.OK
    assert result.summary == ("the API endpoint 192.168.1.10 is this node's own address: "
                              "no link MTU on the path")
    assert not any(cmd.startswith("ping") for cmd in host.ran)
