"""The lab's topology as data: names, interfaces and addresses every other lab module uses.

The WiFi case study (docs/troubleshooting.md#router-drops-replies-to-pod-ips): a home LAN
192.168.1.0/24 behind a router with no route to the pod network; `worker2` is the WiFi node
(wlp59s0, 192.168.1.105, pods in 192.168.88.0/24) whose pod traffic leaves un-NATed, so replies die
at the router. Calico's default pool 192.168.0.0/16 overlaps the LAN, which is why Calico's own
natOutgoing does not help (docs/calico.md#how-calico-masquerades): the API server's real address is
inside the pool.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

PREFIX_ENV = "NETCHECK_LAB_PREFIX"
STATE_ENV = "NETCHECK_LAB_STATE"
DEFAULT_PREFIX = "ncl-"

LAN_CIDR = "192.168.1.0/24"
ROUTER_LAN_IP = "192.168.1.1"
OPS_IP = "192.168.1.200"
POOL_NAME = "default-ipv4-ippool"
POOL_CIDR = "192.168.0.0/16"
SERVICE_CIDR = "10.96.0.0/12"
API_SERVICE_IP = "10.96.0.1"
API_SERVICE_PORT = 443
DNS_SERVICE_IP = "10.96.0.10"
API_PORT = 6443
KUBELET_PORT = 10250
HOST_MTU = 1500
POD_MTU = 1450  # VXLAN CrossSubnet pool over 1500-byte links
WIFI_FAULT_MTU = 1400
DEBUG_POD_HOST_OCTET = 69  # 192.168.88.69 on the WiFi node, as in the case study
POD_GATEWAY = "169.254.1.1"
CLUSTER_DOMAIN = "cluster.local"
DEBUG_POD_NAMESPACE = "netcheck"  # netcheck's own namespace, as its manifests create it


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str  # "control-plane" | "worker"
    iface: str
    ip: str
    pod_cidr: str
    wifi: bool = False

    @property
    def pod_ip(self) -> str:
        """The debug pod's address in this node's pod block."""
        return str(ipaddress.ip_network(self.pod_cidr)[DEBUG_POD_HOST_OCTET])


def nodes(workers: int = 2) -> list[NodeSpec]:
    """The control plane plus `workers` workers; worker2 is the WiFi node."""
    if not 1 <= workers <= 60:
        raise ValueError("workers must be from 1 to 60")
    out = [NodeSpec("master", "control-plane", "eth0", "192.168.1.10", "192.168.86.0/24")]
    for n in range(1, workers + 1):
        if n == 2:
            out.append(NodeSpec("worker2", "worker", "wlp59s0", "192.168.1.105",
                                "192.168.88.0/24", wifi=True))
        else:
            ip = "192.168.1.20" if n == 1 else f"192.168.1.{20 + n}"
            out.append(NodeSpec(f"worker{n}", "worker", "enp3s0", ip, f"192.168.{86 + n}.0/24"))
    return out


def prefix() -> str:
    """Prefix of every namespace, so labs never collide with anything else (or each other)."""
    return os.environ.get(PREFIX_ENV, DEFAULT_PREFIX)


def state_dir() -> Path:
    """Where a running lab keeps its keys, kubeconfig, pids and per-node files."""
    return Path(os.environ.get(STATE_ENV, f"/run/netcheck-lab/{prefix().rstrip('-')}"))
