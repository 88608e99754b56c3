"""mtu probe: the pod MTU is measured on the debug pod's eth0 (never read back from the Installation,
which is evidence only), VXLAN and WireGuard overhead, interface MTU toward the API endpoint, active
DF-ping path MTU from the node and from the pod toward the API endpoint and the peer pod ("Frag
needed ... (mtu = X)", "message too long, mtu=X", silent black hole found by search); fail with the
calico-mtu fix and the node's values in the remediation, ok on a healthy node, skip without an
endpoint; an Installation already patched while this node's new pods still get the old MTU fails
without a fix button (the rollout is missing, not the patch); every ping command is built from
validated values."""

from __future__ import annotations

import re

import pytest

from probes.catalog.mtu import mtu_probe
from probes.errors import ProbeSkip
from probes.facts import InstallationFacts
from probes.model import FixProposal, Status
from probes.observations import Observations
from probes.transports.base import CommandResult
from tests.fakes import FakePod, FakeShell, out
from tests.probes.helpers import cluster_facts, context

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


def pod(eth0_mtu: int = 1450, path_mtu: int = 1500, *, peer_path_mtu: int | None = None) -> FakePod:
    """The debug pod: eth0 with `eth0_mtu`, DF pings through a path whose narrowest hop is path_mtu
    (toward the API endpoint) or peer_path_mtu (toward the peer pod 192.168.86.69)."""
    eth0 = (f"2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {eth0_mtu} qdisc noqueue state UP mode "
            "DEFAULT group default qlen 1000\\    link/ether 5e:1c:aa:02:0b:6f brd ff:ff:ff:ff:ff:ff\n")
    return (FakePod()
            .on(r"^ip -o link show dev eth0$", out(eth0))
            .on(r"^ping .* 192\.168\.86\.69$", pinger(min(eth0_mtu, peer_path_mtu or path_mtu)))
            .on(r"^ping ", pinger(min(eth0_mtu, path_mtu))))


def with_peer(ctx):  # type: ignore[no-untyped-def]
    ctx.peer_pod_ip = "192.168.86.69"
    return ctx


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
    host, debug = node(), pod()
    result = await mtu_probe(with_peer(context(host, debug, facts=cluster_facts(installation=INSTALLED))))
    assert result.status is Status.OK
    assert result.summary == "pod MTU 1450 + 50 = 1500 fits wlp59s0 MTU 1500 and path MTU 1500"
    assert result.fix is None
    assert "ping -M do -c 1 -i 0.2 -w 1 -s 1472 192.168.1.10" in host.ran
    # the pod's own full-size packets, toward the API endpoint and the peer pod
    assert debug.ran[0] == "ip -o link show dev eth0"
    assert "ping -M do -c 1 -i 0.2 -w 1 -s 1422 192.168.1.10" in debug.ran
    assert "ping -M do -c 1 -i 0.2 -w 1 -s 1422 192.168.86.69" in debug.ran
    assert "pod MTU 1450 (measured: debug pod eth0)" in result.evidence
    assert "configured pod MTU 1450 (from Installation default spec)" in result.evidence


async def test_router_frag_needed_fails_with_calico_mtu_fix() -> None:
    result = await mtu_probe(context(node(path_mtu=1400), pod(path_mtu=1400),
                                     facts=cluster_facts(installation=INSTALLED)))
    assert result.status is Status.FAIL
    assert result.summary == ("pod MTU 1450 + vxlan overhead 50 = 1500 exceeds path MTU 1400 toward "
                              "192.168.1.10")
    assert "Frag needed and DF set (mtu = 1400)" in result.evidence
    assert "toward API endpoint 192.168.1.10: path MTU 1400" in result.evidence
    assert result.fix == FixProposal(id="calico-mtu", params={"mtu": 1350})
    assert result.proof.splitlines()[0].startswith("pod MTU 1450 (measured: debug pod eth0)")
    assert "Frag needed and DF set (mtu = 1400)" in result.proof
    assert result.observed == Observations(uplink="wlp59s0", uplink_mtu=1500, uplink_kind="wifi",
                                           path_mtu=1400, pod_mtu=1450, link_fits=False)
    assert '"calicoNetwork":{"mtu":1350}' in result.remediation
    assert "sudo ip link set wlp59s0 mtu 1400" in result.remediation
    assert "sudo ip link set vxlan.calico mtu 1350" in result.remediation


async def test_small_interface_mtu_fails_without_touching_the_interface() -> None:
    host = node(wifi_mtu=1400)
    result = await mtu_probe(context(host, pod(path_mtu=1400), facts=cluster_facts(installation=INSTALLED)))
    assert result.status is Status.FAIL
    assert result.summary.endswith("exceeds wlp59s0 MTU 1400 toward 192.168.1.10")
    assert result.fix == FixProposal(id="calico-mtu", params={"mtu": 1350})
    assert "ip link set wlp59s0" not in result.remediation
    assert "ping -M do -c 1 -i 0.2 -w 1 -s 1372 192.168.1.10" in host.ran


async def test_the_installation_value_is_never_read_back_as_the_verdict() -> None:
    """Right after a calico-mtu patch: the Installation says 1350, but a pod created now on this node
    still gets 1450 (calico-node here has not restarted): the probe must still fail, and must not offer
    the same patch again."""
    patched = InstallationFacts(mtu=1350)
    result = await mtu_probe(context(node(wifi_mtu=1400), pod(eth0_mtu=1450, path_mtu=1400),
                                     facts=cluster_facts(installation=patched)))
    assert result.status is Status.FAIL
    assert result.summary.startswith("pod MTU 1450 + vxlan overhead 50 = 1500 exceeds")
    assert "this pod has 1450: calico-node on worker2 does not give new pods the configured MTU yet" \
        in result.evidence
    assert result.fix is None
    assert "kubectl rollout status ds/calico-node -n calico-system" in result.remediation


async def test_after_the_rollout_the_measured_pod_fits() -> None:
    result = await mtu_probe(context(node(wifi_mtu=1400), pod(eth0_mtu=1350, path_mtu=1400),
                                     facts=cluster_facts(installation=InstallationFacts(mtu=1350))))
    assert result.status is Status.OK
    assert result.summary == "pod MTU 1350 + 50 = 1400 fits wlp59s0 MTU 1400 and path MTU 1400"


async def test_pod_packets_blocked_toward_the_peer_pod_fail() -> None:
    debug = pod(eth0_mtu=1450, path_mtu=1500, peer_path_mtu=1400)
    result = await mtu_probe(with_peer(context(node(), debug, facts=cluster_facts(installation=INSTALLED))))
    assert result.status is Status.FAIL
    assert result.summary == ("pod packets of 1450 bytes do not pass: path MTU 1400 toward peer pod "
                              "192.168.86.69")
    assert result.fix == FixProposal(id="calico-mtu", params={"mtu": 1400})


async def test_silent_black_hole_is_measured_by_search() -> None:
    host = node(path_mtu=1400, icmp=False)
    result = await mtu_probe(context(host, pod(path_mtu=1400), facts=cluster_facts(installation=INSTALLED)))
    assert result.status is Status.FAIL
    assert result.fix is not None
    assert 1340 <= int(result.fix.params["mtu"]) <= 1350
    assert "100% packet loss" in result.evidence


async def test_configured_mtu_from_file_is_evidence_and_not_reduced_twice() -> None:
    host = node(calico_mtu_file="1450\n")
    result = await mtu_probe(context(host, pod(), facts=cluster_facts(installation=None)))
    assert result.status is Status.OK
    assert "configured pod MTU 1450 (from /var/lib/calico/mtu)" in result.evidence


async def test_configured_mtu_from_vxlan_interface_when_nothing_else() -> None:
    result = await mtu_probe(context(node(), pod(), facts=cluster_facts(installation=None)))
    assert "configured pod MTU 1450 (from interface vxlan.calico)" in result.evidence
    assert result.status is Status.OK


async def test_wireguard_overhead_when_wireguard_interface_exists() -> None:
    host = node()
    links = LINKS.format(wifi=1500) + (
        "6: wireguard.cali: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1440 qdisc noqueue state UNKNOWN "
        "mode DEFAULT group default qlen 1000\\    link/none \n")
    host.script.insert(0, (re.compile(r"^ip -o link show$"), out(links)))
    result = await mtu_probe(context(host, pod(), facts=cluster_facts(installation=INSTALLED)))
    assert result.status is Status.FAIL
    assert result.fix == FixProposal(id="calico-mtu", params={"mtu": 1440})


async def test_unknown_endpoint_skips() -> None:
    with pytest.raises(ProbeSkip, match="real IPv4 address is unknown"):
        await mtu_probe(context(node(), pod(), facts=cluster_facts(endpoint=None)))


async def test_endpoint_on_this_node_needs_no_path_check() -> None:
    local = "local 192.168.1.10 dev lo src 192.168.1.10 uid 0 \\    cache <local> \n"
    host = (FakeShell().on(r"^ip -o link show$", out(LINKS.format(wifi=1500)))
            .on(r"^ip -o route get 192\.168\.1\.10$", out(local)))
    result = await mtu_probe(context(host, pod(), facts=cluster_facts(installation=INSTALLED)))
    assert result.status is Status.OK
    assert result.summary == ("the API endpoint 192.168.1.10 is this node's own address: "
                              "no link MTU on the path")
    assert not any(cmd.startswith("ping") for cmd in host.ran)
