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

if TYPE_CHECKING:
    from lab.cluster import Lab

API_CALL_TIMEOUT_S = 10
API_SANS_DNS = ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
                f"kubernetes.default.svc.{spec.CLUSTER_DOMAIN}"]
MTU = spec.POD_MTU
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


def installation(encapsulation: str = "VXLANCrossSubnet") -> dict[str, Any]:
    return {
        "apiVersion": "operator.tigera.io/v1", "kind": "Installation", "metadata": {"name": "default"},
        "spec": {"calicoNetwork": {
            "mtu": MTU, "nodeAddressAutodetectionV4": {"firstFound": True},
            "ipPools": [{"cidr": spec.POOL_CIDR, "encapsulation": encapsulation, "natOutgoing": "Enabled"}],
        }},
        "status": {"mtu": MTU},
    }


def ippool(ipip: str = "Never", vxlan: str = "CrossSubnet") -> dict[str, Any]:
    return {
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": {"name": spec.POOL_NAME},
        "spec": {"cidr": spec.POOL_CIDR, "vxlanMode": vxlan, "ipipMode": ipip, "natOutgoing": True,
                 "blockSize": 26, "nodeSelector": "all()"},
    }


def node_annotations(node: spec.NodeSpec, address: str | None = None) -> dict[str, str]:
    return {"projectcalico.org/IPv4Address": f"{address or node.ip}/24",
            "projectcalico.org/IPv4VXLANTunnelAddr": topology.vxlan_addr(node)}


def node_labels(node: spec.NodeSpec) -> dict[str, str]:
    labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux"}
    if node.role == "control-plane":
        labels["node-role.kubernetes.io/control-plane"] = ""
    return labels


def containers_dir(lab: Lab) -> Path:
    """Where host pod containers mount their root (each on a tmpfs in its own mount namespace)."""
    return lab.state / "containers"


def build(lab: Lab, ca: certs.CertPair) -> dict[str, Any]:
    master = topology.master_ip()
    containers_dir(lab).mkdir(parents=True, exist_ok=True)
    pair = certs.issue(ca, lab.state / "pki", "apiserver", ips=[master, spec.API_SERVICE_IP],
                       dns=API_SANS_DNS)
    lab_rbac_path = lab.state / "lab-rbac.yaml"
    lab_rbac_path.write_text(yaml.safe_dump_all(lab_rbac()))
    return {
        "listen_host": master, "listen_port": spec.API_PORT,
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
        "service": {"cluster_ip": spec.API_SERVICE_IP, "port": spec.API_SERVICE_PORT,
                    "endpoints": [{"ip": master, "port": spec.API_PORT}]},
        "dns_service_ip": spec.DNS_SERVICE_IP, "service_cidr": spec.SERVICE_CIDR,
        "nodes": [{"name": n.name, "internal_ip": n.ip, "pod_cidr": n.pod_cidr, "ready": True,
                   "annotations": node_annotations(n), "labels": node_labels(n), "pod_ip": n.pod_ip,
                   "pod_netns": lab.names.pod(n.name), "host_netns": lab.names.node(n.name),
                   "pod_veth": topology.cali_name(n.name), "tunnel_device": topology.VXLAN_DEVICE,
                   "host_pid1_file": str(nodeinit.pid1_file(lab.state, n.name))} for n in lab.nodes],
        "installation": installation(), "ippools": [ippool()],
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
        "cluster": {"service_cidr": spec.SERVICE_CIDR, "pod_cidr": spec.POOL_CIDR,
                    "dns_service_ip": spec.DNS_SERVICE_IP},
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
