"""pod-routes probe: a Calico pod with only `default via 169.254.1.1` is ok and said to be normal;
faults fail with the node's values: pod without a route to the service IP, node route to the pod IP
via the router instead of the veth, veth down, proxy_arp 0; commands carry only validated values."""

from __future__ import annotations

from probes.catalog.pod_routes import parse_route, pod_routes
from probes.model import Status
from tests.fakes import FakePod, FakeShell, out
from tests.probes.helpers import context

POD_TABLE = "default via 169.254.1.1 dev eth0 \n169.254.1.1 dev eth0 scope link \n"
POD_GET = "10.96.0.1 via 169.254.1.1 dev eth0 src 192.168.88.69 uid 0 \\    cache \n"
HOST_GET = "192.168.88.69 dev cali1a2b3c4d5e6 src 192.168.1.105 uid 0 \\    cache \n"
LINK_UP = ("7: cali1a2b3c4d5e6@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP "
           "mode DEFAULT group default qlen 1000\\    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff\n")
LINK_DOWN = ("7: cali1a2b3c4d5e6@if3: <BROADCAST,MULTICAST> mtu 1450 qdisc noqueue state DOWN "
             "mode DEFAULT group default qlen 1000\\    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff\n")


def calico_pod() -> FakePod:
    return (FakePod().on(r"^ip -o route show$", out(POD_TABLE))
            .on(r"^ip -o route get 10\.96\.0\.1$", out(POD_GET)))


def node(host_get: str = HOST_GET, link: str = LINK_UP, proxy_arp: str = "1\n") -> FakeShell:
    return (FakeShell().on(r"^ip -o route get 192\.168\.88\.69$", out(host_get))
            .on(r"^ip -o link show dev cali1a2b3c4d5e6$", out(link))
            .on(r"^cat /proc/sys/net/ipv4/conf/cali1a2b3c4d5e6/proxy_arp$", out(proxy_arp)))


async def test_lone_calico_default_route_is_normal() -> None:
    host = node()
    result = await pod_routes(context(host, calico_pod()))
    assert result.status is Status.OK
    assert "'default via 169.254.1.1 dev eth0' route is normal for Calico" in result.summary
    assert "node routes 192.168.88.69 dev cali1a2b3c4d5e6 (up, proxy_arp=1)" in result.summary
    assert host.ran == ["ip -o route get 192.168.88.69", "ip -o link show dev cali1a2b3c4d5e6",
                        "cat /proc/sys/net/ipv4/conf/cali1a2b3c4d5e6/proxy_arp"]


async def test_pod_without_route_to_service_ip_fails() -> None:
    pod = FakePod().on(r"^ip -o route show$", out("")).on(
        r"^ip -o route get", out("", 2, "RTNETLINK answers: Network is unreachable"))
    result = await pod_routes(context(node(), pod))
    assert result.status is Status.FAIL
    assert result.summary == "pod 192.168.88.69 has no route to the API service IP 10.96.0.1"
    assert "Network is unreachable" in result.evidence


async def test_node_routing_pod_ip_via_router_fails() -> None:
    host = node(host_get="192.168.88.69 via 192.168.1.1 dev wlp59s0 src 192.168.1.105 uid 0 \\    cache \n")
    result = await pod_routes(context(host, calico_pod()))
    assert result.status is Status.FAIL
    assert result.summary.startswith("node has no direct route back to pod IP 192.168.88.69")


async def test_veth_down_fails_with_its_name() -> None:
    result = await pod_routes(context(node(link=LINK_DOWN), calico_pod()))
    assert result.status is Status.FAIL
    assert result.summary == "pod veth cali1a2b3c4d5e6 on the node is down"
    assert result.remediation.startswith("sudo ip link set cali1a2b3c4d5e6 up")


async def test_proxy_arp_off_fails() -> None:
    result = await pod_routes(context(node(proxy_arp="0\n"), calico_pod()))
    assert result.status is Status.FAIL
    assert result.summary.startswith("proxy_arp is 0 on cali1a2b3c4d5e6")
    assert "net.ipv4.conf.cali1a2b3c4d5e6.proxy_arp=1" in result.remediation


def test_parse_route_forms() -> None:
    assert parse_route(HOST_GET).dev == "cali1a2b3c4d5e6"
    assert parse_route(POD_GET).via == "169.254.1.1"
    assert parse_route("unreachable 10.0.0.1 uid 0 \\    cache <error> ") is None
