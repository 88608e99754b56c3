"""encapsulation probe: IPIP pool over wlp59s0 → warn recommending VXLAN with the pool's name;
VXLAN pool over WiFi with the peer pod answering → ok; peer pod silent (100% loss, real ping output)
→ fail naming the peer's node, with the host route as evidence; small pings pass but pod-MTU-sized
ones with DF are lost → warn (large packets), passing → ok; no peer → pod-to-pod reported as not
checked; a missing ping binary gives no verdict. The node shell and debug pod are declared needs
(the engine skips the probe without them, tests/probes/test_engine.py), so every case has both."""

from __future__ import annotations

from probes.catalog.encapsulation import encapsulation
from probes.model import Status
from probes.registry import default_registry
from tests.fakes import FakePod, FakeShell, out
from tests.probes.helpers import IPIP_POOL, cluster_facts, context

ADDRS = ("2: wlp59s0    inet 192.168.1.105/24 scope global wlp59s0\\       valid_lft forever "
         "preferred_lft forever\n")
PING_OK = ("PING 192.168.87.69 (192.168.87.69) 56(84) bytes of data.\n"
           "64 bytes from 192.168.87.69: icmp_seq=1 ttl=62 time=0.128 ms\n"
           "64 bytes from 192.168.87.69: icmp_seq=2 ttl=62 time=0.048 ms\n\n"
           "--- 192.168.87.69 ping statistics ---\n"
           "2 packets transmitted, 2 received, 0% packet loss, time 1017ms\n")
PING_LOST = ("PING 192.168.87.69 (192.168.87.69) 56(84) bytes of data.\n\n"
             "--- 192.168.87.69 ping statistics ---\n"
             "2 packets transmitted, 0 received, 100% packet loss, time 1019ms\n")


def node() -> FakeShell:
    return (FakeShell().on(r"^ip -o -4 addr show$", out(ADDRS))
            .on(r"^test -d /sys/class/net/wlp59s0/wireless$", out("", 1))
            .on(r"^ip -o route get 192\.168\.87\.69$", out("192.168.87.69 via 192.168.1.20 dev wlp59s0 "
                                                           "src 192.168.1.105 uid 0 \\    cache \n")))


async def test_ipip_over_wifi_warns_recommending_vxlan() -> None:
    result = await encapsulation(context(node(), FakePod(), facts=cluster_facts(pools=[IPIP_POOL])))
    assert result.status is Status.WARN
    assert result.summary.startswith("IPIP encapsulation over WiFi interface wlp59s0")
    assert '"value":"VXLANCrossSubnet"' in result.remediation
    assert "calicoctl patch ippool default-ipv4-ippool" in result.remediation
    assert "pod-to-pod skipped: no debug pod on another Ready node" in result.evidence


async def test_vxlan_over_wifi_with_peer_reachable_ok() -> None:
    pod = FakePod().on(r"^ping -c 3 -i 0\.5 -W 2 192\.168\.87\.69$", out(PING_OK))
    result = await encapsulation(context(node(), pod, peer_pod_ip="192.168.87.69"))
    assert result.status is Status.OK
    assert result.summary == "no IPIP over WiFi; pod-to-pod to 192.168.87.69 ok (0% loss)"


async def test_peer_pod_silent_fails_with_route_evidence() -> None:
    pod = FakePod().on(r"^ping ", out(PING_LOST, 1))
    result = await encapsulation(context(node(), pod, facts=cluster_facts(pools=[IPIP_POOL]),
                                     peer_pod_ip="192.168.87.69"))
    assert result.status is Status.FAIL
    assert result.summary == "no reply from the pod 192.168.87.69 on worker1 (pod-to-pod lost)"
    assert "100% packet loss" in result.proof and "$ ping" in result.proof
    assert "192.168.87.69 via 192.168.1.20 dev wlp59s0" in result.evidence
    assert "drops protocol 4" in result.remediation


FRAG = ("PING 192.168.87.69 (192.168.87.69) 1422(1450) bytes of data.\n"
        "From 192.168.1.105 icmp_seq=1 Frag needed and DF set (mtu = 1400)\n\n"
        "--- 192.168.87.69 ping statistics ---\n"
        "2 packets transmitted, 0 received, +1 errors, 100% packet loss, time 1001ms\n")


async def test_large_packets_lost_warns_naming_the_peer() -> None:
    pod = (FakePod().on(r"^ping -c 3 -i 0\.5 -W 2 192\.168\.87\.69$", out(PING_OK))
           .on(r"^cat /sys/class/net/eth0/mtu$", out("1450\n"))
           .on(r"^ping -M do -c 2 -i 0\.5 -W 2 -s 1422 192\.168\.87\.69$", out(FRAG, 1)))
    result = await encapsulation(context(node(), pod, peer_pod_ip="192.168.87.69"))
    assert result.status is Status.WARN
    assert result.summary == ("pod-to-pod to 192.168.87.69 on worker1: small packets pass, 1450-byte packets "
                              "with DF set are lost (an MTU smaller than the pods' on the way)")
    assert "Frag needed and DF set (mtu = 1400)" in result.proof
    assert "mtu findings of worker2 and worker1" in result.remediation


async def test_large_packets_passing_stay_ok() -> None:
    pod = (FakePod().on(r"^ping -c 3 ", out(PING_OK)).on(r"^cat /sys/class/net/eth0/mtu$", out("1450\n"))
           .on(r"^ping -M do ", out(PING_OK)))
    result = await encapsulation(context(node(), pod, peer_pod_ip="192.168.87.69"))
    assert result.status is Status.OK
    assert "-s 1422 192.168.87.69   (pod MTU 1450)" in result.evidence


async def test_without_peer_pod_to_pod_not_checked() -> None:
    result = await encapsulation(context(node(), FakePod()))
    assert result.status is Status.OK
    assert "pod-to-pod skipped: no debug pod on another Ready node" in result.evidence


async def test_missing_ping_gives_no_verdict() -> None:
    pod = FakePod().on(r"^ping ", out("", 127, "sh: ping: not found"))
    result = await encapsulation(context(node(), pod, peer_pod_ip="192.168.87.69"))
    assert result.status is Status.OK
    assert result.summary.endswith("pod-to-pod not checked")


def test_shell_and_pod_are_declared_needs() -> None:
    """What lets the probe use both without checking: the engine only runs it when they exist."""
    assert default_registry["encapsulation"].needs == {"host", "pod", "peer-pod"}
