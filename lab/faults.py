"""Switchable faults of the lab, each a small on/off unit registered by a stable name.

Called through Lab.fault(name, node, on). Active faults are kept in <state>/faults.json so
`status` and other processes see them. Each reproduces the real symptom (see the test module
tests/lab/test_faults.py for what a plain command shows with the fault on and off), and means the
same symptom on every layout: every value comes from the lab's Layout, and `off` restores that
layout's healthy state. A fault that cannot apply to a layout (no tunnel device to remove on an
unencapsulated one) refuses with ValueError before it changes anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab import apiconfig, netns, nodes, spec, topology

if TYPE_CHECKING:
    from lab.cluster import Lab

FAULTS_FILE = "faults.json"
STUB_RESOLVER_IP = "127.0.0.53"
VPN_IFACE = "tailscale0"
NFT_BRIDGE_TABLE = "netcheck_lab"
ALTERNATIVE_NAMES = ("iptables", "iptables-save", "iptables-restore")

Action = Callable[["Lab", spec.NodeSpec], None]


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    on: Action
    off: Action
    applies: Callable[[Lab], str | None] | None = None
    """None when the fault applies to the lab's layout, else why not (the fault then refuses)."""


REGISTRY: dict[str, Fault] = {}


def register(name: str, summary: str) -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        REGISTRY[name] = Fault(name, summary, cls.on, cls.off,  # type: ignore[attr-defined]
                               getattr(cls, "applies", None))
        return cls
    return wrap


def _ipt(lab: Lab, node: spec.NodeSpec, *args: str, check: bool = True) -> None:
    lab.node_exec(node.name, "iptables-nft", *args, check=check)


def _ensure_rule(lab: Lab, node: spec.NodeSpec, table: str, chain: str, rule: list[str]) -> None:
    exists = lab.node_exec(node.name, "iptables-nft", "-t", table, "-C", chain, *rule).returncode == 0
    if not exists:
        _ipt(lab, node, "-t", table, "-A", chain, *rule)


def _drop_rule(lab: Lab, node: spec.NodeSpec, table: str, chain: str, rule: list[str]) -> None:
    while lab.node_exec(node.name, "iptables-nft", "-t", table, "-D", chain, *rule).returncode == 0:
        pass


def masquerade_rule(node: spec.NodeSpec) -> list[str]:
    return ["-s", node.pod_cidr, "-o", node.iface, "-j", "MASQUERADE"]


@register("no-masquerade", "pod traffic leaves un-NATed and replies cannot come back (the case study); "
          "off: the layout's healthy state")
class NoMasquerade:
    """Un-NATed pod traffic whose replies die at the router, on any node of any layout.

    The node loses its MASQUERADE rule and every route toward its pod block other than the
    default route, so replies to its pods go to the router, which has no route back: what a lost
    BGP session (a routed layout's router, or the other nodes) or the case study's WiFi node looks
    like. The masquerade fix then really repairs pod -> API. `off` restores the layout's healthy
    state: the routes come back, and a node whose block nobody routes (the default layout's WiFi
    node) gets the MASQUERADE rule instead.
    """

    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        _drop_rule(lab, node, "nat", "POSTROUTING", masquerade_rule(node))
        for peer in _routing_peers(lab, node):
            lab.node_exec(peer.name, "ip", "route", "del", node.pod_cidr)  # absent already: nothing to do
        if lab.layout.router_routes_pods:
            lab.router_exec("ip", "route", "del", node.pod_cidr)

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        peers = _routing_peers(lab, node)
        for peer in peers:
            netns.ip_batch(lab.ns(peer.name), [topology.peer_pod_route(peer, node)])
        if lab.layout.router_routes_pods:
            netns.ip_batch(lab.router_ns, [topology.router_pod_route(node)])
        if peers or lab.layout.router_routes_pods:
            _drop_rule(lab, node, "nat", "POSTROUTING", masquerade_rule(node))
        else:
            _ensure_rule(lab, node, "nat", "POSTROUTING", masquerade_rule(node))


def _routing_peers(lab: Lab, node: spec.NodeSpec) -> list[spec.NodeSpec]:
    """The other nodes that route `node`'s pod block directly in the healthy layout."""
    return [p for p in lab.nodes if node in topology.pod_route_peers(lab.layout, p, lab.nodes)]


def _set_link_mtu(lab: Lab, node: spec.NodeSpec, mtu: int) -> None:
    netns.ip_batch(lab.ns(node.name), [f"link set {node.iface} mtu {mtu}"])
    # Only the node's port shrinks, as a WiFi access point's radio side does: the bridge would
    # otherwise follow its smallest port, and the router would then send frag-needed for every
    # node's traffic. Setting the bridge's MTU explicitly keeps it at the LAN's
    # (docs/lab.md#mtu-faults-on-veth-links).
    netns.ip_batch(lab.router_ns, [f"link set {topology.router_port(node.name)} mtu {mtu}",
                                   f"link set {topology.LAN_BRIDGE} mtu {lab.layout.host_mtu}"])
    # Learned path MTUs would outlive the fault (or hide a new one); start every switch clean.
    for ns in (lab.pod_ns(node.name), lab.ns(node.name)):
        netns.ip_batch(ns, ["route flush cache"])
    if mtu == lab.layout.host_mtu and lab.layout.vxlan:
        _reapply_tunnel_mtu(lab, node)


def _reapply_tunnel_mtu(lab: Lab, node: spec.NodeSpec) -> None:
    """Felix's next pass: while the link was small, the kernel kept vxlan.calico below the
    Installation's MTU (at most the link MTU less 50); with the link back, it gets that MTU."""
    installation = apiconfig.request(lab, "GET", INSTALLATION_PATH)
    mtu = (installation.get("spec", {}).get("calicoNetwork", {}).get("mtu")
           or installation.get("status", {}).get("mtu") or lab.layout.pod_mtu)
    lab.node_exec(node.name, "ip", "link", "set", topology.VXLAN_DEVICE, "mtu", str(mtu))  # gone: no-op


@register("mtu", "the node's LAN link (node and router side) has an MTU below the pod MTU plus "
          "encapsulation (1400 on default, 1440 on edge); the node sends frag-needed")
class SmallMtu:
    """A small uplink MTU. Pod packets leaving through the node get frag-needed from the node.
    Oversize frames toward the node are lost on the link itself, as at a WiFi access point's port:
    an L2 hop sends no ICMP, so the pod's TLS handshake (the server's certificate flight) stalls."""

    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        _set_link_mtu(lab, node, lab.layout.small_link_mtu)

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        if node.name not in active(lab).get("icmp-blackhole", set()):
            _set_link_mtu(lab, node, lab.layout.host_mtu)


FRAG_NEEDED_DROP = ["-p", "icmp", "--icmp-type", "fragmentation-needed", "-j", "DROP"]


@register("icmp-blackhole", "the MTU black hole: link MTU below the pod MTU plus encapsulation and "
          "ICMP frag-needed dropped: oversize packets vanish silently, the pod's TLS handshake stalls")
class IcmpBlackhole:
    """The `mtu` fault plus a firewall dropping the frag-needed the node sends its pods: DF pings
    from the pod get no answer at all, the pod's TLS handshake stalls, the node's own traffic (its
    MTU is the link's) still works. This is the MTU black hole; there is no separate fault for it."""

    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        _set_link_mtu(lab, node, lab.layout.small_link_mtu)
        _ensure_rule(lab, node, "filter", "OUTPUT", FRAG_NEEDED_DROP)

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        _drop_rule(lab, node, "filter", "OUTPUT", FRAG_NEEDED_DROP)
        if node.name not in active(lab).get("mtu", set()):
            _set_link_mtu(lab, node, lab.layout.host_mtu)


KUBELET_REJECT = ["-p", "tcp", "--dport", str(spec.KUBELET_PORT), "-j", "REJECT",
                  "--reject-with", "tcp-reset"]


@register("kubelet-blocked", "tcp 10250 refused on the node (a firewall in front of the kubelet)")
class KubeletBlocked:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        _ensure_rule(lab, node, "filter", "INPUT", KUBELET_REJECT)

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        _drop_rule(lab, node, "filter", "INPUT", KUBELET_REJECT)


@register("hosts-missing", "the node's /etc/hosts lacks the other nodes")
class HostsMissing:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        (nodes.etc_dir(lab.ns(node.name)) / "hosts").write_text(nodes.hosts_text(lab.nodes, only=node))

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        (nodes.etc_dir(lab.ns(node.name)) / "hosts").write_text(nodes.hosts_text(lab.nodes))


def _move_rules(lab: Lab, node: spec.NodeSpec, source: str, target: str) -> None:
    """Move every table's rules from one iptables backend to the other (source left empty)."""
    dump = lab.node_exec(node.name, f"iptables-{source}-save", check=True).stdout
    lab.node_exec(node.name, f"iptables-{target}-restore", input=dump, check=True)
    empty = "".join(f"*{t}\nCOMMIT\n" for t in ("filter", "nat", "mangle") if f"*{t}\n" in dump)
    lab.node_exec(node.name, f"iptables-{source}-restore", input=empty, check=True)


@register("rules-in-legacy", "KUBE-*/cali-* rules live in iptables-legacy while `iptables` is nft")
class RulesInLegacy:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        _move_rules(lab, node, "nft", "legacy")

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        _move_rules(lab, node, "legacy", "nft")


def _set_alternative(lab: Lab, node: spec.NodeSpec, backend: str) -> None:
    # Per-node /etc/alternatives copy; update-alternatives would write the host's /var/lib/dpkg.
    alt = nodes.etc_dir(lab.ns(node.name)) / "alternatives"
    for name in ALTERNATIVE_NAMES:
        link = alt / name
        link.unlink(missing_ok=True)
        link.symlink_to(f"/usr/sbin/{name.replace('iptables', f'iptables-{backend}', 1)}")


@register("alternative-legacy", "rules in nft while the node's iptables alternative is iptables-legacy")
class AlternativeLegacy:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        _set_alternative(lab, node, "legacy")

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        _set_alternative(lab, node, "nft")


@register("ip-forward-off", "net.ipv4.ip_forward=0 on the node")
class IpForwardOff:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        lab.node_exec(node.name, "sysctl", "-qw", "net.ipv4.ip_forward=0", check=True)

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        lab.node_exec(node.name, "sysctl", "-qw", "net.ipv4.ip_forward=1", check=True)


@register("ip-forward-unpersisted", "ip_forward is 1 now but no sysctl.d drop-in keeps it after a reboot")
class IpForwardUnpersisted:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        (nodes.etc_dir(lab.ns(node.name)) / "sysctl.d" / nodes.SYSCTL_DROPIN).unlink(missing_ok=True)

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        (nodes.etc_dir(lab.ns(node.name)) / "sysctl.d" / nodes.SYSCTL_DROPIN).write_text(
            "net.ipv4.ip_forward=1\n")


@register("resolved-stub", "a resolved-like stub on 127.0.0.53:53; resolv.conf (kubelet's resolvConf) "
          "points at it")
class ResolvedStub:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        name = f"resolved-{node.name}"
        if not (lab.state / "pids" / f"{name}.pid").exists():
            lab.node_exec(node.name, "ip", "addr", "replace", f"{STUB_RESOLVER_IP}/8", "dev", "lo")
            nodes.start_dns(lab.state, lab.ns(node.name), name, STUB_RESOLVER_IP, lab.layout)
            nodes.wait_port(lab.ns(node.name), STUB_RESOLVER_IP, 53)
        (nodes.etc_dir(lab.ns(node.name)) / "resolv.conf").write_text(
            nodes.resolv_text(lab.layout, STUB_RESOLVER_IP))

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        nodes.stop(lab.state, f"resolved-{node.name}")
        (nodes.etc_dir(lab.ns(node.name)) / "resolv.conf").write_text(nodes.resolv_text(lab.layout))


VPN_HOLDER = (
    "import fcntl,os,struct,time\n"
    "fd=os.open('/dev/net/tun',os.O_RDWR)\n"
    "fcntl.ioctl(fd,0x400454ca,struct.pack('16sH',b'" + VPN_IFACE + "',0x0001|0x1000))\n"
    "while True: time.sleep(3600)\n"
)


def vpn_address(lab: Lab, node: spec.NodeSpec) -> str:
    """The node's address in Tailscale's CGNAT range (100.64.0.0/10), one per node."""
    return f"100.64.0.{[n.name for n in lab.nodes].index(node.name) + 1}"


@register("vpn", "a tailscale0 tun device with 100.64.0.x; Calico's IPv4Address annotation picked it")
class Vpn:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        name = f"vpn-{node.name}"
        if not (lab.state / "pids" / f"{name}.pid").exists():
            nodes.start(lab.state, name, netns.exec_argv(lab.ns(node.name), ["python3", "-c", VPN_HOLDER]))
            wait = (f"for i in $(seq 50); do ip link show {VPN_IFACE} >/dev/null 2>&1 && exit 0; sleep 0.1; "
                    "done; exit 1")
            lab.node_exec(node.name, "sh", "-c", wait, check=True)
            netns.ip_batch(lab.ns(node.name), [f"addr add {vpn_address(lab, node)}/32 dev {VPN_IFACE}",
                                               f"link set {VPN_IFACE} mtu 1280 up"])
        apiconfig.patch(lab, f"/api/v1/nodes/{node.name}", {"metadata": {"annotations": {
            "projectcalico.org/IPv4Address": f"{vpn_address(lab, node)}/32"}}})

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        nodes.stop(lab.state, f"vpn-{node.name}")
        apiconfig.patch(lab, f"/api/v1/nodes/{node.name}", {"metadata": {"annotations": {
            "projectcalico.org/IPv4Address": apiconfig.node_address_annotation(lab.layout, node.ip)}}})


@register("ipip-blocked", "the router drops IP protocol 4 (IPIP) between LAN hosts")
class IpipBlocked:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        if lab.router_exec("nft", "list", "table", "bridge", NFT_BRIDGE_TABLE).returncode != 0:
            script = (f"table bridge {NFT_BRIDGE_TABLE} {{\n chain forward {{\n"
                      "  type filter hook forward priority 0; policy accept;\n"
                      "  ip protocol 4 counter drop\n }\n}\n")
            netns.run(netns.exec_argv(lab.router_ns, ["nft", "-f", "-"]), input=script)

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        lab.router_exec("nft", "delete", "table", "bridge", NFT_BRIDGE_TABLE)


INSTALLATION_PATH = "/apis/operator.tigera.io/v1/installations/default"


def _set_pool(lab: Lab, encapsulation: str, ipip: str, vxlan: str) -> None:
    pools = apiconfig.installation_pools(lab.layout, encapsulation)
    apiconfig.patch(lab, INSTALLATION_PATH, {"spec": {"calicoNetwork": {"ipPools": pools}}})
    apiconfig.patch(lab, apiconfig.ippool_path(lab.layout), {"spec": {"ipipMode": ipip, "vxlanMode": vxlan}})


@register("pool-ipip", "the IPPool and Installation use IPIP Always (this kernel has no ipip)")
class PoolIpip:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        _set_pool(lab, "IPIP", "Always", "Never")

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        _set_pool(lab, lab.layout.encapsulation, *lab.layout.pool_modes)


@register("pod-route-missing", "the host's /32 route to the debug pod is gone")
class PodRouteMissing:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        lab.node_exec(node.name, "ip", "route", "del", f"{node.pod_ip}/32")

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        lab.node_exec(node.name, "ip", "route", "replace", f"{node.pod_ip}/32", "dev",
                      topology.cali_name(node.name), "scope", "link", check=True)


@register("no-tunnel-device", "vxlan.calico is missing on the node (VXLAN layouts only)")
class NoTunnelDevice:
    @staticmethod
    def applies(lab: Lab) -> str | None:
        if lab.layout.vxlan:
            return None
        return (f"layout {lab.layout.name} has no tunnel device to remove "
                f"(its pool's encapsulation is {lab.layout.encapsulation})")

    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        lab.node_exec(node.name, "ip", "link", "del", topology.VXLAN_DEVICE)

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        if lab.node_exec(node.name, "ip", "link", "show", topology.VXLAN_DEVICE).returncode != 0:
            netns.ip_batch(lab.ns(node.name), topology.vxlan_lines(lab.layout, node))


@register("calico-node-stall", "calico-node pods started on the node never turn Ready (readiness fails): an "
          "MTU rollout stops there")
class CalicoNodeStall:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        apiconfig.control(lab, "PUT", f"/lab/v1/nodes/{node.name}/calico-node", {"ready": False})

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        apiconfig.control(lab, "PUT", f"/lab/v1/nodes/{node.name}/calico-node", {"ready": True})


def _drop_lan(node: spec.NodeSpec) -> list[list[str]]:
    return [["INPUT", "-i", node.iface, "-j", "DROP"], ["FORWARD", "-i", node.iface, "-j", "DROP"]]


@register("unreachable", "the node's InternalIP answers nothing (all LAN traffic in dropped), the API "
          "sees it NotReady and its pods stay Pending: a dead node")
class Unreachable:
    @staticmethod
    def on(lab: Lab, node: spec.NodeSpec) -> None:
        if node.role == "control-plane":
            raise ValueError("the unreachable fault would take the lab's API server down with the node")
        for chain, *rule in _drop_lan(node):
            _ensure_rule(lab, node, "filter", chain, rule)
        lab.set_ready(node.name, False)  # what the node controller reports after its grace period
        lab.hold_pods(node.name, "ContainerCreating")

    @staticmethod
    def off(lab: Lab, node: spec.NodeSpec) -> None:
        lab.hold_pods(node.name, None)
        lab.set_ready(node.name, True)
        for chain, *rule in _drop_lan(node):
            _drop_rule(lab, node, "filter", chain, rule)


def active(lab: Lab) -> dict[str, set[str]]:
    path = lab.state / FAULTS_FILE
    if not path.exists():
        return {}
    return {k: set(v) for k, v in json.loads(path.read_text()).items() if v}


def _save(lab: Lab, faults: dict[str, set[str]]) -> None:
    (lab.state / FAULTS_FILE).write_text(json.dumps({k: sorted(v) for k, v in faults.items() if v}))


def set_fault(lab: Lab, name: str, node: str, on: bool) -> None:
    fault = REGISTRY.get(name)
    if fault is None:
        raise ValueError(f"unknown fault {name!r} (known: {', '.join(sorted(REGISTRY))})")
    spec_ = lab.node(node)
    refusal = fault.applies(lab) if fault.applies else None
    if refusal:
        raise ValueError(f"fault {name!r} does not apply here: {refusal}")
    (fault.on if on else fault.off)(lab, spec_)
    faults = active(lab)
    members = faults.setdefault(name, set())
    (members.add if on else members.discard)(spec_.name)
    _save(lab, faults)


def apply_defaults(lab: Lab) -> None:
    """Switch on the layout's default faults (the default layout's case study: no MASQUERADE on its
    WiFi node) on the nodes this lab has."""
    _save(lab, {})
    present = {n.name for n in lab.nodes}
    for name, node in lab.layout.default_faults:
        if node in present:
            set_fault(lab, name, node, True)
