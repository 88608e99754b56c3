"""The API stand-in's JSON config, the lab's kubeconfigs and netcheck.yaml, and calls to the API.

Called by lab.cluster (at `up`) and lab.faults (vpn, pool-ipip). Requests go out with curl from
the ops namespace, so they travel over the lab network like any client's.

The stand-in enforces the shipped RBAC (deploy/kubernetes/rbac.yaml) for the bot's ServiceAccount
token, and netcheck.yaml points at `kubeconfig-bot` (that token), so every lab run of netcheck has
exactly the permissions the manifests grant in a cluster. The lab's own calls keep the admin token
(system:masters); the read-only token keeps read access through a `view`-like ClusterRole.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lab import certs, nodeinit, spec, topology
from lab.apiserver.rbac import service_account_groups, service_account_user
from lab.spec import Layout

if TYPE_CHECKING:
    from lab.cluster import Lab

API_CALL_TIMEOUT_S = 10
API_CERT_RSA_BITS = 2048
"""The API server's key, as kubeadm makes it (RSA 2048), and its certificate is sent with the CA
(a chain, as many servers send): the server's first TLS flight then fills a full-size packet, so an
MTU black hole stalls the handshake here as it does in real clusters. A lone P-256 certificate
(about 800 bytes in all) would slip through any MTU fault in one small packet
(docs/lab.md#mtu-faults-on-veth-links)."""
DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
SHIPPED_RBAC = DEPLOY / "kubernetes" / "rbac.yaml"
SHIPPED_NAMESPACE = DEPLOY / "kubernetes" / "namespace.yaml"
NODE_ACCESS_COMPONENT = DEPLOY / "kubernetes" / "components" / "node-access-pod"
"""The optional node_access: pod pieces (host pods' namespace and Role): the lab is deployed with them,
so `node_access: pod` works in it; with `ssh` netcheck never uses them (tests/deploy prove both)."""
BOT_NAMESPACE = BOT_SERVICE_ACCOUNT = "netcheck"
VIEWER_GROUP = "viewers"
LAB_ROLLOUT_TIMEOUT_S = 60
LAB_ROLLOUT_POLL_S = 0.2


def bot_token(lab: Lab) -> str:
    """The bot ServiceAccount's token, derived from the admin token so `attach` finds the same one."""
    return hashlib.sha256(f"netcheck-bot:{lab.admin_token}".encode()).hexdigest()


def bot_kubeconfig_path(lab: Lab) -> Path:
    return lab.state / "kubeconfig-bot"


def lab_rbac() -> list[dict[str, Any]]:
    """RBAC for the lab's own read-only token (what it had before RBAC was enforced): read anything."""
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "lab-view"},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "lab-view"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "lab-view"},
         "subjects": [{"kind": "Group", "name": VIEWER_GROUP}]},
    ]


def api_sans_dns(layout: Layout) -> list[str]:
    return ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
            f"kubernetes.default.svc.{layout.cluster_domain}", layout.control_plane.name]


def installation_pools(layout: Layout, encapsulation: str | None = None) -> list[dict[str, Any]]:
    """The Installation's ipPools: the layout's pool, with `encapsulation` if given."""
    return [{"cidr": layout.pool_cidr, "encapsulation": encapsulation or layout.encapsulation,
             "natOutgoing": "Enabled" if layout.nat_outgoing else "Disabled"}]


def installation(layout: Layout) -> dict[str, Any]:
    return {
        "apiVersion": "operator.tigera.io/v1", "kind": "Installation", "metadata": {"name": "default"},
        "spec": {"calicoNetwork": {
            "mtu": layout.pod_mtu, "nodeAddressAutodetectionV4": {"firstFound": True},
            "ipPools": installation_pools(layout),
        }},
        "status": {"mtu": layout.pod_mtu},
    }


def ippool(layout: Layout) -> dict[str, Any]:
    ipip, vxlan = layout.pool_modes
    return {
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": {"name": layout.pool_name},
        "spec": {"cidr": layout.pool_cidr, "vxlanMode": vxlan, "ipipMode": ipip,
                 "natOutgoing": layout.nat_outgoing, "blockSize": 26, "nodeSelector": "all()"},
    }


def ippool_path(layout: Layout) -> str:
    return f"/apis/crd.projectcalico.org/v1/ippools/{layout.pool_name}"


def node_address_annotation(layout: Layout, address: str) -> str:
    """Calico's `projectcalico.org/IPv4Address`: the address with the LAN's prefix length."""
    return f"{address}/{layout.lan_prefixlen}"


def node_annotations(layout: Layout, node: spec.NodeSpec) -> dict[str, str]:
    annotations = {"projectcalico.org/IPv4Address": node_address_annotation(layout, node.ip)}
    if layout.vxlan:  # Calico gives a node a VXLAN tunnel address only with a VXLAN pool
        annotations["projectcalico.org/IPv4VXLANTunnelAddr"] = topology.vxlan_addr(node)
    return annotations


def node_labels(node: spec.NodeSpec) -> dict[str, str]:
    labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux"}
    if node.role == "control-plane":
        labels["node-role.kubernetes.io/control-plane"] = ""
    return labels


def containers_dir(lab: Lab) -> Path:
    """Where host pod containers mount their root (each on a tmpfs in its own mount namespace)."""
    return lab.state / "containers"


def build(lab: Lab, ca: certs.CertPair) -> dict[str, Any]:
    layout = lab.layout
    control_plane = lab.control_plane.ip
    containers_dir(lab).mkdir(parents=True, exist_ok=True)
    pair = certs.issue(ca, lab.state / "pki", "apiserver", ips=[control_plane, layout.api_service_ip],
                       dns=api_sans_dns(layout), rsa_bits=API_CERT_RSA_BITS, with_chain=True)
    lab_rbac_path = lab.state / "lab-rbac.yaml"
    lab_rbac_path.write_text(yaml.safe_dump_all(lab_rbac()))
    return {
        "listen_host": control_plane, "listen_port": layout.api_port,
        "tls_cert": str(pair.cert), "tls_key": str(pair.key),
        "tokens": {
            lab.admin_token: {"user": "kubernetes-admin", "groups": ["system:masters"], "readonly": False},
            lab.readonly_token: {"user": "netcheck-viewer", "groups": [VIEWER_GROUP], "readonly": True},
            bot_token(lab): {"user": service_account_user(BOT_NAMESPACE, BOT_SERVICE_ACCOUNT),
                             "groups": list(service_account_groups(BOT_NAMESPACE))},
        },
        "rbac_manifests": [str(path) for path in rbac_files(lab)],
        "namespace_manifests": [str(SHIPPED_NAMESPACE), str(NODE_ACCESS_COMPONENT / "namespace.yaml")],
        "containers_dir": str(containers_dir(lab)),
        "control_token": lab.control_token,
        "service": {"cluster_ip": layout.api_service_ip, "port": layout.api_service_port,
                    "endpoints": [{"ip": control_plane, "port": layout.api_port}]},
        "dns_service_ip": layout.dns_service_ip, "service_cidr": layout.service_cidr,
        "nodes": [{"name": n.name, "internal_ip": n.ip, "pod_cidr": n.pod_cidr, "ready": True,
                   "annotations": node_annotations(layout, n), "labels": node_labels(n), "pod_ip": n.pod_ip,
                   "pod_netns": lab.names.pod(n.name), "host_netns": lab.names.node(n.name),
                   "pod_veth": topology.cali_name(n.name),
                   "tunnel_device": topology.VXLAN_DEVICE if layout.vxlan else None,
                   "host_pid1_file": str(nodeinit.pid1_file(lab.state, n.name))} for n in lab.nodes],
        "installation": installation(layout), "ippools": [ippool(layout)],
        "exec_prefix": ["ip", "netns", "exec"], "kubelet_port": spec.KUBELET_PORT,
        # as if netcheck's manifests were applied: its namespace holds the debug pods
        "namespaces": [spec.DEBUG_POD_NAMESPACE],
    }


def kubeconfig(lab: Lab, token: str, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "netcheck-lab",
        "clusters": [{"name": "netcheck-lab", "cluster": {"server": lab.api_url,
                                                          "certificate-authority": str(lab.ca_cert)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "netcheck-lab", "context": {"cluster": "netcheck-lab", "user": user}}],
    }


def write_client_files(lab: Lab) -> None:
    lab.kubeconfig.write_text(yaml.safe_dump(kubeconfig(lab, lab.admin_token, "kubernetes-admin")))
    lab.readonly_kubeconfig.write_text(yaml.safe_dump(kubeconfig(lab, lab.readonly_token, "netcheck-viewer")))
    bot_kubeconfig = bot_kubeconfig_path(lab)
    bot_kubeconfig.write_text(yaml.safe_dump(kubeconfig(lab, bot_token(lab), "netcheck")))
    for path in (lab.kubeconfig, lab.readonly_kubeconfig, bot_kubeconfig):
        path.chmod(0o600)
    lab.config_file.write_text(yaml.safe_dump({
        "kubeconfig": str(bot_kubeconfig),  # netcheck runs as its ServiceAccount, under the shipped RBAC
        "ssh": {"user": "root", "port": 22, "private_key": str(lab.ssh_key),
                "known_hosts": str(lab.known_hosts), "sudo": False},
        "debug_pod": {"namespace": spec.DEBUG_POD_NAMESPACE},
        "cluster": {"service_cidr": lab.layout.service_cidr, "pod_cidr": lab.layout.pool_cidr,
                    "dns_service_ip": lab.layout.dns_service_ip},
        # the stand-in's operator rolls calico-node in about a second per node
        "fixes": {"rollout_timeout": LAB_ROLLOUT_TIMEOUT_S, "rollout_poll_interval": LAB_ROLLOUT_POLL_S},
    }, sort_keys=False))


def request(lab: Lab, method: str, path: str, body: Any = None, *, token: str | None = None,
            content_type: str = "application/json") -> dict[str, Any]:
    """One HTTPS call to the API stand-in from the ops namespace; raises on a non-2xx answer."""
    argv = ["curl", "-sS", "--max-time", str(API_CALL_TIMEOUT_S), "--cacert", str(lab.ca_cert),
            "-X", method, "-H", f"Authorization: Bearer {token or lab.admin_token}",
            "-w", "\n%{http_code}", lab.api_url + path]
    if body is not None:
        argv[1:1] = ["-H", f"Content-Type: {content_type}", "--data-binary", "@-"]
    proc = lab.run_ops(argv, input=json.dumps(body) if body is not None else None)
    text, _, code = proc.stdout.rpartition("\n")
    if proc.returncode != 0 or not code.startswith("2"):
        raise RuntimeError(f"{method} {path}: HTTP {code or '?'} {text.strip()[:300]} {proc.stderr.strip()}")
    return json.loads(text) if text.strip() else {}


def control(lab: Lab, method: str, path: str, body: Any = None) -> dict[str, Any]:
    return request(lab, method, path, body, token=lab.control_token)


def patch(lab: Lab, path: str, merge_patch: dict[str, Any]) -> dict[str, Any]:
    return request(lab, "PATCH", path, merge_patch, content_type="application/merge-patch+json")


def rbac_files(lab: Lab) -> list[Path]:
    """The RBAC manifests the lab's API stand-in enforces (as `build` configured it)."""
    return [SHIPPED_RBAC, NODE_ACCESS_COMPONENT / "rbac.yaml", lab.state / "lab-rbac.yaml"]


def set_rbac(lab: Lab, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Enforce these RBAC objects from now on (tests; restore with `rbac_objects(rbac_files(lab))`)."""
    return control(lab, "PUT", "/lab/v1/rbac", {"objects": objects})


def rbac_objects(paths: list[Path]) -> list[dict[str, Any]]:
    return [doc for path in paths for doc in yaml.safe_load_all(Path(path).read_text()) if doc]
