"""The lab's layouts as data: every name, interface and address the other lab modules use.

A `Layout` is one whole cluster design; `Lab.up(layout=NAME)` builds it and records its name in
the lab state, so every later process (`Lab.attach()`, `netcheck lab ...`, the API stand-in's MTU
hook) sees the same one. No lab module may use a node name, interface or address that does not
come from the lab's Layout: users' clusters use other names, interfaces, CIDRs and service IPs.

- `default`: the WiFi case study (docs/troubleshooting.md#router-drops-replies-to-pod-ips). A
  home LAN 192.168.1.0/24 behind a router with no route to the pod network; `worker2` is the WiFi
  node (wlp59s0, 192.168.1.105, pods in 192.168.88.0/24) whose pod traffic leaves un-NATed, so
  replies die at the router. Calico's default pool 192.168.0.0/16 overlaps the LAN, which is why
  Calico's own natOutgoing does not help (docs/calico.md#how-calico-masquerades): the API server's
  real address is inside the pool. Nodes route each other's pod blocks, except nobody routes the
  WiFi node's.
- `edge`: an on-prem/edge cluster unlike the default in every name and number. Control plane
  `cp-1` (ens18), wired worker `edge-a` (eno1), WiFi worker `edge-b` (wlan0), more wired workers
  `edge-c`, ...; LAN 172.20.0.0/24; pool `edge-pool` 10.244.0.0/16 (no overlap with the LAN),
  no encapsulation (pod MTU = host MTU) and natOutgoing off, because the network is routed: the
  router has a route to every node's pod block via that node, so pods need no NAT. Service CIDR
  10.43.0.0/16 (API 10.43.0.1, DNS 10.43.0.10), API server on 16443. Healthy by default.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

PREFIX_ENV = "NETCHECK_LAB_PREFIX"
STATE_ENV = "NETCHECK_LAB_STATE"
DEFAULT_PREFIX = "ncl-"

DEFAULT_LAYOUT = "default"
CONTROL_PLANE = "control-plane"
WORKER = "worker"
MAX_WORKERS = 60
KUBELET_PORT = 10250  # the kubelet's port is the same in every distribution
DEBUG_POD_HOST_OCTET = 69  # the debug pod's host number in its node's block (192.168.88.69: the case study)
POD_GATEWAY = "169.254.1.1"  # Calico's fixed pod gateway (proxy ARP on the cali veth)
DEBUG_POD_NAMESPACE = "netcheck"  # netcheck's own namespace, as its manifests create it
MAX_IFACE_LEN = 15  # IFNAMSIZ - 1
ENCAPSULATION_OVERHEAD = {"VXLANCrossSubnet": 50, "VXLAN": 50, "None": 0}
"""Installation ipPools `encapsulation` values the lab builds, with their IPv4 overhead in bytes
(docs/calico.md#mtu). IPIP is not here: this kernel has no ipip (`pool-ipip` only relabels)."""
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str  # CONTROL_PLANE | WORKER
    iface: str
    ip: str
    pod_cidr: str
    wifi: bool = False

    @property
    def pod_ip(self) -> str:
        """The debug pod's address in this node's pod block."""
        return str(ipaddress.ip_network(self.pod_cidr)[DEBUG_POD_HOST_OCTET])


@dataclass(frozen=True)
class Layout:
    """One lab cluster: its LAN, nodes, Calico pool, services and how pod traffic is routed.

    `workers` lists every worker a lab of this layout can have, in order; a lab with N workers
    uses the first N (`nodes(N)`). Checked when the layout is defined (`__post_init__`).
    """

    name: str
    summary: str
    lan_cidr: str
    router_ip: str
    ops_ip: str
    control_plane: NodeSpec
    workers: tuple[NodeSpec, ...]
    pool_name: str
    pool_cidr: str
    encapsulation: str  # the Installation's ipPools `encapsulation`: VXLANCrossSubnet | VXLAN | None
    nat_outgoing: bool
    router_routes_pods: bool
    """True: the router routes every node's pod block via that node (a routed pod network; nodes
    send other nodes' pod traffic to the router). False: the router knows no pod route; nodes route
    each other's blocks directly, except nobody routes to a WiFi node's block (the case study)."""
    service_cidr: str
    api_service_ip: str
    dns_service_ip: str
    api_port: int
    small_link_mtu: int
    """The uplink MTU of the `mtu`/`icmp-blackhole` faults: below the pod MTU plus encapsulation."""
    api_service_port: int = 443
    host_mtu: int = 1500
    cluster_domain: str = "cluster.local"
    default_faults: tuple[tuple[str, str], ...] = field(default=())
    """(fault, node) pairs switched on when a lab of this layout comes up (skipped for absent nodes)."""

    def __post_init__(self) -> None:
        problems = _layout_problems(self)
        if problems:
            raise ValueError(f"layout {self.name!r}: " + "; ".join(problems))

    # ---- derived values
    @property
    def overhead(self) -> int:
        return ENCAPSULATION_OVERHEAD[self.encapsulation]

    @property
    def pod_mtu(self) -> int:
        """Calico's pod/tunnel MTU: the host MTU less the encapsulation overhead."""
        return self.host_mtu - self.overhead

    @property
    def vxlan(self) -> bool:
        """Whether the nodes have a vxlan.calico device (a VXLAN pool)."""
        return self.encapsulation.startswith("VXLAN")

    @property
    def pool_modes(self) -> tuple[str, str]:
        """The IPPool's (ipipMode, vxlanMode) for the layout's encapsulation."""
        vxlan = {"VXLANCrossSubnet": "CrossSubnet", "VXLAN": "Always"}.get(self.encapsulation, "Never")
        return "Never", vxlan

    @property
    def lan_prefixlen(self) -> int:
        return ipaddress.ip_network(self.lan_cidr).prefixlen

    def nodes(self, workers: int = 2) -> list[NodeSpec]:
        """The control plane plus the first `workers` workers."""
        if not 1 <= workers <= len(self.workers):
            raise ValueError(f"workers must be from 1 to {len(self.workers)}")
        return [self.control_plane, *self.workers[:workers]]


def _layout_problems(layout: Layout) -> list[str]:
    lan = ipaddress.ip_network(layout.lan_cidr)
    pool = ipaddress.ip_network(layout.pool_cidr)
    services = ipaddress.ip_network(layout.service_cidr)
    nodes = [layout.control_plane, *layout.workers]
    problems = [f"{what} {ip} outside the LAN {lan}"
                for what, ip in (("router", layout.router_ip), ("ops host", layout.ops_ip),
                                 *((n.name, n.ip) for n in nodes))
                if ipaddress.ip_address(ip) not in lan]
    problems += [f"{n.name}: pod block {n.pod_cidr} outside pool {pool}" for n in nodes
                 if not ipaddress.ip_network(n.pod_cidr).subnet_of(pool)]  # type: ignore[arg-type]
    problems += [f"{n.name}: bad name" for n in nodes if not _DNS_LABEL.match(n.name)]
    problems += [f"{n.name}: interface {n.iface!r} too long" for n in nodes if len(n.iface) > MAX_IFACE_LEN]
    problems += [f"service IP {ip} outside {services}"
                 for ip in (layout.api_service_ip, layout.dns_service_ip)
                 if ipaddress.ip_address(ip) not in services]
    for what, values in (("node names", [n.name for n in nodes]),
                         ("addresses", [n.ip for n in nodes] + [layout.router_ip, layout.ops_ip]),
                         ("pod blocks", [n.pod_cidr for n in nodes])):
        if len(set(values)) != len(values):
            problems.append(f"duplicate {what}")
    if layout.control_plane.role != CONTROL_PLANE or any(w.role != WORKER for w in layout.workers):
        problems.append("the control plane must come first, then workers")
    if layout.encapsulation not in ENCAPSULATION_OVERHEAD:
        problems.append(f"unknown encapsulation {layout.encapsulation!r}")
    elif not layout.small_link_mtu < layout.pod_mtu + layout.overhead:
        problems.append(f"small_link_mtu {layout.small_link_mtu} must be below the pod MTU plus overhead")
    return problems


def _default_worker(n: int) -> NodeSpec:
    if n == 2:
        return NodeSpec("worker2", WORKER, "wlp59s0", "192.168.1.105", "192.168.88.0/24", wifi=True)
    ip = "192.168.1.20" if n == 1 else f"192.168.1.{20 + n}"
    return NodeSpec(f"worker{n}", WORKER, "enp3s0", ip, f"192.168.{86 + n}.0/24")


def _letters(n: int) -> str:
    """1 -> a, 26 -> z, 27 -> aa (spreadsheet-style column names)."""
    out = ""
    while n:
        n, rest = divmod(n - 1, 26)
        out = chr(ord("a") + rest) + out
    return out


def _edge_worker(n: int) -> NodeSpec:
    wifi = n == 2
    return NodeSpec(f"edge-{_letters(n)}", WORKER, "wlan0" if wifi else "eno1", f"172.20.0.{10 + n}",
                    f"10.244.{n}.0/24", wifi=wifi)


DEFAULT = Layout(
    name="default",
    summary="the case study: home LAN 192.168.1.0/24, VXLAN pool overlapping it, no pod routes on the "
            "router, WiFi worker2 without MASQUERADE",
    lan_cidr="192.168.1.0/24", router_ip="192.168.1.1", ops_ip="192.168.1.200",
    control_plane=NodeSpec("master", CONTROL_PLANE, "eth0", "192.168.1.10", "192.168.86.0/24"),
    workers=tuple(_default_worker(n) for n in range(1, MAX_WORKERS + 1)),
    pool_name="default-ipv4-ippool", pool_cidr="192.168.0.0/16", encapsulation="VXLANCrossSubnet",
    nat_outgoing=True, router_routes_pods=False,
    service_cidr="10.96.0.0/12", api_service_ip="10.96.0.1", dns_service_ip="10.96.0.10", api_port=6443,
    small_link_mtu=1400,
    default_faults=(("no-masquerade", "worker2"),),
)

EDGE = Layout(
    name="edge",
    summary="a routed edge site: LAN 172.20.0.0/24, unencapsulated pool 10.244.0.0/16 routed by the "
            "router, services 10.43.0.0/16, API on 16443, WiFi edge-b; healthy",
    lan_cidr="172.20.0.0/24", router_ip="172.20.0.1", ops_ip="172.20.0.250",
    control_plane=NodeSpec("cp-1", CONTROL_PLANE, "ens18", "172.20.0.10", "10.244.0.0/24"),
    workers=tuple(_edge_worker(n) for n in range(1, MAX_WORKERS + 1)),
    pool_name="edge-pool", pool_cidr="10.244.0.0/16", encapsulation="None",
    nat_outgoing=False, router_routes_pods=True,
    service_cidr="10.43.0.0/16", api_service_ip="10.43.0.1", dns_service_ip="10.43.0.10", api_port=16443,
    small_link_mtu=1440,
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (DEFAULT, EDGE)}


def layout(name: str) -> Layout:
    """The layout called `name`; ValueError listing the layouts otherwise."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r} (layouts: {', '.join(LAYOUTS)})") from None


def prefix() -> str:
    """Prefix of every namespace, so labs never collide with anything else (or each other)."""
    return os.environ.get(PREFIX_ENV, DEFAULT_PREFIX)


def state_dir() -> Path:
    """Where a running lab keeps its keys, kubeconfig, pids and per-node files."""
    return Path(os.environ.get(STATE_ENV, f"/run/netcheck-lab/{prefix().rstrip('-')}"))
