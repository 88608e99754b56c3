"""The API stand-in's JSON config, the lab's kubeconfigs and netcheck.yaml, and calls to the API.

Called by lab.cluster (at `up`) and lab.faults (vpn, pool-ipip). Requests go out with curl from
the ops namespace, so they travel over the lab network like any client's.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import yaml

from lab import certs, spec, topology

if TYPE_CHECKING:
    from lab.cluster import Lab

API_CALL_TIMEOUT_S = 10
API_SANS_DNS = ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
                f"kubernetes.default.svc.{spec.CLUSTER_DOMAIN}"]
MTU = spec.POD_MTU


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


def build(lab: Lab, ca: certs.CertPair) -> dict[str, Any]:
    master = topology.master_ip()
    pair = certs.issue(ca, lab.state / "pki", "apiserver", ips=[master, spec.API_SERVICE_IP],
                       dns=API_SANS_DNS)
    return {
        "listen_host": master, "listen_port": spec.API_PORT,
        "tls_cert": str(pair.cert), "tls_key": str(pair.key),
        "tokens": {
            lab.admin_token: {"user": "kubernetes-admin", "groups": ["system:masters"], "readonly": False},
            lab.readonly_token: {"user": "netcheck-viewer", "groups": ["viewers"], "readonly": True},
        },
        "control_token": lab.control_token,
        "service": {"cluster_ip": spec.API_SERVICE_IP, "port": spec.API_SERVICE_PORT,
                    "endpoints": [{"ip": master, "port": spec.API_PORT}]},
        "dns_service_ip": spec.DNS_SERVICE_IP, "service_cidr": spec.SERVICE_CIDR,
        "nodes": [{"name": n.name, "internal_ip": n.ip, "pod_cidr": n.pod_cidr, "ready": True,
                   "annotations": node_annotations(n), "labels": node_labels(n), "pod_ip": n.pod_ip,
                   "pod_netns": lab.names.pod(n.name)} for n in lab.nodes],
        "installation": installation(), "ippools": [ippool()],
        "exec_prefix": ["ip", "netns", "exec"], "kubelet_port": spec.KUBELET_PORT,
        "mtu_hook": [sys.executable, "-m", "lab.hooks", "mtu", "--state", str(lab.state)],
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
    for path in (lab.kubeconfig, lab.readonly_kubeconfig):
        path.chmod(0o600)
    lab.config_file.write_text(yaml.safe_dump({
        "kubeconfig": str(lab.kubeconfig),
        "ssh": {"user": "root", "port": 22, "private_key": str(lab.ssh_key),
                "known_hosts": str(lab.known_hosts), "sudo": False},
        "debug_pod": {"namespace": spec.DEBUG_POD_NAMESPACE},
        "cluster": {"service_cidr": spec.SERVICE_CIDR, "pod_cidr": spec.POOL_CIDR},
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
