"""Builds the lab's real networking: router, ops host, nodes, Calico-style debug pods, kube-proxy rules.

Called by lab.cluster.Lab.up with the lab's Layout (lab.spec), which gives every name and address.
Every link is created inside a lab namespace (veths are created in one namespace with their peer
moved straight into another), never in the host namespace.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from lab import netns, spec
from lab.spec import Layout, NodeSpec

LAN_BRIDGE = "br-lan"
VXLAN_DEVICE = "vxlan.calico"
VXLAN_ID = 4096
VXLAN_PORT = 4789
OPS_IFACE = "eth0"
API_SVC_CHAIN = "KUBE-SVC-NPX46M4PTMTKRN6Y"
API_SEP_CHAIN = "KUBE-SEP-LAB4PIAPISERVER1"
DNS_UDP_SVC_CHAIN = "KUBE-SVC-TCOU7JCQXEZGVUNU"
DNS_TCP_SVC_CHAIN = "KUBE-SVC-ERIFXISQEP7F7OF4"
DNS_UDP_SEP_CHAIN = "KUBE-SEP-LAB4DNSUDP0000001"
DNS_TCP_SEP_CHAIN = "KUBE-SEP-LAB4DNSTCP0000001"
DNS_COMMENT = "kube-system/kube-dns:dns"
MASQ_POOL_SET = "cali40masq-ipam-pools"
ALL_POOL_SET = "cali40all-ipam-pools"


@dataclass(frozen=True)
class Names:
    """Namespace and device names of one lab, derived from its prefix."""

    prefix: str

    @property
    def router(self) -> str:
        return f"{self.prefix}router"

    @property
    def ops(self) -> str:
        return f"{self.prefix}ops"

    def node(self, node: str) -> str:
        return f"{self.prefix}{node}"

    def pod(self, node: str) -> str:
        return f"{self.prefix}pod-{node}"


def cali_name(node: str) -> str:
    """Host-side veth name like Calico's: 'cali' + 11 hex chars (stable per node)."""
    return "cali" + hashlib.sha1(f"netcheck-lab/{node}".encode()).hexdigest()[:11]


def router_port(node: str) -> str:
    return f"v-{node}"[:15]


def vxlan_addr(node: NodeSpec) -> str:
    return str(ipaddress.ip_network(node.pod_cidr)[0])


def router_lines(layout: Layout, all_nodes: list[NodeSpec]) -> list[str]:
    lines = [
        f"link add {LAN_BRIDGE} type bridge",
        f"link set {LAN_BRIDGE} up",
        f"addr add {layout.router_ip}/{layout.lan_prefixlen} dev {LAN_BRIDGE}",
    ]
    return lines + [router_pod_route(node) for node in all_nodes if layout.router_routes_pods]


def router_pod_route(node: NodeSpec) -> str:
    """The routed layouts' route to a node's pod block, via the node (what BGP would teach the router)."""
    return f"route replace {node.pod_cidr} via {node.ip} dev {LAN_BRIDGE}"


LAN_GSO_MAX_SEGS = "1"
"""LAN veths put wire-size packets on the "wire", as a real NIC does (its TSO segments in hardware).
A veth otherwise passes whole GSO super-packets, which skip every MTU check on the bridge and the
veth peer, so no MTU fault could ever drop a TCP segment in the lab (docs/lab.md#mtu-faults-on-veth-links)."""


def attach_to_router(names: Names, host_ns: str, iface: str, port: str, mtu: int) -> None:
    """A veth from `host_ns`'s `iface` to a port of the router's LAN bridge."""
    netns.run(["ip", "-n", host_ns, "link", "add", iface, "mtu", str(mtu), "gso_max_segs", LAN_GSO_MAX_SEGS,
               "type", "veth", "peer", "name", port, "gso_max_segs", LAN_GSO_MAX_SEGS, "netns", names.router])
    netns.ip_batch(names.router, [f"link set {port} master {LAN_BRIDGE}", f"link set {port} up"])


def vxlan_lines(layout: Layout, node: NodeSpec) -> list[str]:
    """The node's vxlan.calico device (VXLAN layouts only)."""
    if not layout.vxlan:
        return []
    return [
        f"link add {VXLAN_DEVICE} type vxlan id {VXLAN_ID} dstport {VXLAN_PORT} local {node.ip} "
        f"dev {node.iface}",
        f"link set {VXLAN_DEVICE} mtu {layout.pod_mtu}",
        f"addr add {vxlan_addr(node)}/32 dev {VXLAN_DEVICE}",
        f"link set {VXLAN_DEVICE} up",
    ]


def node_lines(layout: Layout, node: NodeSpec, all_nodes: list[NodeSpec], pod_ns: str) -> list[str]:
    """`ip -batch` lines for a node namespace (after its LAN veth exists)."""
    cali = cali_name(node.name)
    lines = [
        f"addr add {node.ip}/{layout.lan_prefixlen} dev {node.iface}",
        f"link set {node.iface} up",
        f"route add default via {layout.router_ip} dev {node.iface}",
        f"link add {cali} mtu {layout.pod_mtu} type veth peer name eth0 netns {pod_ns}",
        f"link set {cali} up",
        f"route add {node.pod_ip}/32 dev {cali} scope link",
        *vxlan_lines(layout, node),
    ]
    lines += [peer_pod_route(node, other) for other in pod_route_peers(layout, node, all_nodes)]
    return lines


def peer_pod_route(node: NodeSpec, other: NodeSpec) -> str:
    """`node`'s direct route to `other`'s pod block (what Calico programs for a peer)."""
    return f"route replace {other.pod_cidr} via {other.ip} dev {node.iface}"


def pod_route_peers(layout: Layout, node: NodeSpec, all_nodes: list[NodeSpec]) -> list[NodeSpec]:
    """Nodes whose pod block `node` routes to directly.

    In a routed layout none: other nodes' pod traffic goes to the router, which routes every block.
    Otherwise every other node's, except a WiFi node's: nobody routes to it (the case study).
    """
    if layout.router_routes_pods:
        return []
    return [o for o in all_nodes if o.name != node.name and not o.wifi]


def pod_lines(layout: Layout, node: NodeSpec) -> list[str]:
    return [
        f"link set eth0 mtu {layout.pod_mtu}",
        f"addr add {node.pod_ip}/32 dev eth0",
        "link set eth0 up",
        f"route add {spec.POD_GATEWAY} dev eth0 scope link",
        f"route add default via {spec.POD_GATEWAY} dev eth0",
    ]


def node_sysctl_script(node: NodeSpec) -> str:
    cali = cali_name(node.name)
    return "\n".join([
        "set -e",
        "sysctl -qw net.ipv4.ip_forward=1",
        f"sysctl -qw net.ipv4.conf.{cali}.proxy_arp=1",
        # as Calico's CNI plugin: answer the pod's ARP for its gateway at once, not after the kernel's
        # random proxy delay of up to 0.8 s (docs/calico.md#pod-routes)
        f"sysctl -qw net.ipv4.neigh.{cali}.proxy_delay=0",
        f"sysctl -qw net.ipv4.conf.{cali}.forwarding=1",
    ])


def ipset_restore_text(layout: Layout) -> str:
    """Felix's pool sets: every pool in the all-pools set, natOutgoing pools in the masq set."""
    lines = [f"create {MASQ_POOL_SET} hash:net family inet hashsize 1024 maxelem 1048576"]
    if layout.nat_outgoing:
        lines.append(f"add {MASQ_POOL_SET} {layout.pool_cidr}")
    lines += [f"create {ALL_POOL_SET} hash:net family inet hashsize 1024 maxelem 1048576",
              f"add {ALL_POOL_SET} {layout.pool_cidr}"]
    return "\n".join(lines) + "\n"


def _svc_rules(layout: Layout, svc_chain: str, sep_chain: str, ip: str, proto: str, port: int,
               comment: str, endpoint: str) -> list[str]:
    """One ClusterIP service as kube-proxy writes it: match in KUBE-SERVICES, mark, DNAT."""
    match = f"-d {ip}/32 -p {proto} -m comment --comment \"{comment} cluster IP\" -m {proto} --dport {port}"
    return [
        f"-A KUBE-SERVICES {match} -j {svc_chain}",
        f"-A {svc_chain} ! -s {layout.pool_cidr} {match} -j KUBE-MARK-MASQ",
        f"-A {svc_chain} -m comment --comment \"{comment} -> {endpoint}\" -j {sep_chain}",
        f"-A {sep_chain} -s {endpoint.split(':')[0]}/32 -m comment --comment \"{comment}\" -j KUBE-MARK-MASQ",
        f"-A {sep_chain} -p {proto} -m comment --comment \"{comment}\" -m {proto} "
        f"-j DNAT --to-destination {endpoint}",
    ]


def iptables_restore_text(layout: Layout) -> str:
    """kube-proxy (iptables mode) and Calico NAT rules as `iptables-save` would print them.

    Felix writes the natOutgoing MASQUERADE rule only while some pool has natOutgoing on.
    """
    control_plane = layout.control_plane.ip
    api = f"{control_plane}:{layout.api_port}"
    dns = f"{control_plane}:53"
    nat_outgoing = [
        '-A cali-nat-outgoing -m comment --comment "cali:flqWnvo8yq4ULQLa" '
        f"-m set --match-set {MASQ_POOL_SET} src -m set ! --match-set {ALL_POOL_SET} dst "
        "-j MASQUERADE --random-fully",
    ] if layout.nat_outgoing else []
    builtin = [":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
               ":POSTROUTING ACCEPT [0:0]"]
    nat_chains = ["KUBE-SERVICES", "KUBE-MARK-MASQ", "KUBE-POSTROUTING", API_SVC_CHAIN, API_SEP_CHAIN,
                  DNS_UDP_SVC_CHAIN, DNS_TCP_SVC_CHAIN, DNS_UDP_SEP_CHAIN, DNS_TCP_SEP_CHAIN,
                  "cali-POSTROUTING", "cali-fip-snat", "cali-nat-outgoing"]
    nat = [
        "*nat", *builtin, *[f":{c} - [0:0]" for c in nat_chains],
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "cali:O3lYWMrLQYEMJtB5" -j cali-POSTROUTING',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
        *_svc_rules(layout, API_SVC_CHAIN, API_SEP_CHAIN, layout.api_service_ip, "tcp",
                    layout.api_service_port, "default/kubernetes:https", api),
        *_svc_rules(layout, DNS_UDP_SVC_CHAIN, DNS_UDP_SEP_CHAIN, layout.dns_service_ip, "udp", 53,
                    DNS_COMMENT, dns),
        *_svc_rules(layout, DNS_TCP_SVC_CHAIN, DNS_TCP_SEP_CHAIN, layout.dns_service_ip, "tcp", 53,
                    "kube-system/kube-dns:dns-tcp", dns),
        '-A cali-POSTROUTING -m comment --comment "cali:Z-c7XtVd2Bq7s_hA" -j cali-fip-snat',
        '-A cali-POSTROUTING -m comment --comment "cali:nYKhEzDlr11Jccal" -j cali-nat-outgoing',
        *nat_outgoing,
        "COMMIT",
    ]
    mangle = ["*mangle", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]",
              ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", ":KUBE-IPTABLES-HINT - [0:0]",
              ":KUBE-KUBELET-CANARY - [0:0]", "COMMIT"]
    return "\n".join(mangle + nat) + "\n"


def node_setup_script(layout: Layout, node: NodeSpec) -> str:
    """Shell run inside the node namespace: sysctls, ipsets, then the iptables rules (nft backend)."""
    return "\n".join([
        node_sysctl_script(node),
        "ipset restore <<'IPSET'", ipset_restore_text(layout).rstrip("\n"), "IPSET",
        "iptables-nft-restore <<'IPT'", iptables_restore_text(layout).rstrip("\n"), "IPT",
    ]) + "\n"


ROUTER_SYSCTLS = (
    "net.ipv4.ip_forward=1",
    # A routed layout's router forwards pod traffic back out of the LAN it came from; an ICMP
    # redirect would teach nodes a direct route that outlives the router's own (the no-masquerade
    # fault removes that), so this router sends none, like many routers configured for BGP peers.
    "net.ipv4.conf.all.send_redirects=0",
    "net.ipv4.conf.default.send_redirects=0",
)


def build_router(names: Names, layout: Layout, all_nodes: list[NodeSpec]) -> None:
    netns.add(names.router)
    netns.ns_run(names.router, ["sysctl", "-qw", *ROUTER_SYSCTLS])
    netns.ip_batch(names.router, router_lines(layout, all_nodes))


def build_ops(names: Names, layout: Layout) -> None:
    netns.add(names.ops)
    attach_to_router(names, names.ops, OPS_IFACE, "v-ops", layout.host_mtu)
    netns.ip_batch(names.ops, [
        f"addr add {layout.ops_ip}/{layout.lan_prefixlen} dev {OPS_IFACE}",
        f"link set {OPS_IFACE} up",
        f"route add default via {layout.router_ip} dev {OPS_IFACE}",
    ])


def build_node(names: Names, layout: Layout, node: NodeSpec, all_nodes: list[NodeSpec]) -> None:
    node_ns, pod_ns = names.node(node.name), names.pod(node.name)
    netns.add(node_ns)
    netns.add(pod_ns)
    attach_to_router(names, node_ns, node.iface, router_port(node.name), layout.host_mtu)
    netns.ip_batch(node_ns, node_lines(layout, node, all_nodes, pod_ns))
    netns.ip_batch(pod_ns, pod_lines(layout, node))
    netns.ns_run(node_ns, ["sh", "-c", node_setup_script(layout, node)])
