"""Builders for the objects the API stand-in serves: nodes, the kubernetes Service, pods' status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .config import ApiServerConfig, NodeConfig
from .store import Store, find_resource, now_timestamp

NODES = find_resource("", "v1", "nodes")
NAMESPACES = find_resource("", "v1", "namespaces")
PODS = find_resource("", "v1", "pods")
SERVICES = find_resource("", "v1", "services")
ENDPOINTS = find_resource("", "v1", "endpoints")
ENDPOINTSLICES = find_resource("discovery.k8s.io", "v1", "endpointslices")
INSTALLATIONS = find_resource("operator.tigera.io", "v1", "installations")
IPPOOLS = find_resource("crd.projectcalico.org", "v1", "ippools")
LEASES = find_resource("coordination.k8s.io", "v1", "leases")
DAEMONSETS = find_resource("apps", "v1", "daemonsets")
TIGERASTATUSES = find_resource("operator.tigera.io", "v1", "tigerastatuses")
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "calico-system")


def ready_condition(ready: bool) -> dict[str, Any]:
    now = now_timestamp()
    return {
        "type": "Ready",
        "status": "True" if ready else "Unknown",
        "reason": "KubeletReady" if ready else "NodeStatusUnknown",
        "message": "kubelet is posting ready status" if ready else "Kubelet stopped posting node status.",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


def node_object(node: NodeConfig, kubelet_port: int) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", **node.labels}
    return {
        "metadata": {"name": node.name, "labels": labels, "annotations": dict(node.annotations)},
        "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]},
        "status": {
            "conditions": [ready_condition(node.ready)],
            "addresses": [
                {"type": "InternalIP", "address": node.internal_ip},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {
                "kubeletVersion": "v1.31.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kernelVersion": "6.1.0",
                "osImage": "netcheck lab",
                "kubeProxyVersion": "v1.31.0",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


def manifest_namespaces(paths: list[Path]) -> dict[str, dict[str, str]]:
    """Namespace name -> labels (e.g. pod-security.kubernetes.io/enforce) from shipped manifests."""
    found: dict[str, dict[str, str]] = {}
    for path in paths:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Namespace":
                metadata = doc.get("metadata") or {}
                found[metadata["name"]] = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    return found


def seed(store: Store, config: ApiServerConfig) -> None:
    """Load the configured cluster, then compact so that watches from before startup get 410."""
    labels = {name: {} for name in (*INITIAL_NAMESPACES, *config.namespaces)}
    for name, shipped in manifest_namespaces(config.namespace_manifests).items():
        labels[name] = {**labels.get(name, {}), **shipped}
    for name, namespace_labels in labels.items():
        metadata: dict[str, Any] = {"name": name, "labels": {"kubernetes.io/metadata.name": name,
                                                              **namespace_labels}}
        store.create(
            NAMESPACES,
            "",
            {"metadata": metadata, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
        )
    for node in config.nodes:
        store.create(NODES, "", node_object(node, config.kubelet_port))
    port = {"name": "https", "port": config.service.port, "protocol": "TCP", "targetPort": 6443}
    if config.service.endpoints:
        port["targetPort"] = config.service.endpoints[0].port
    store.create(
        SERVICES,
        "default",
        {
            "metadata": {
                "name": "kubernetes",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "clusterIP": config.service.cluster_ip,
                "clusterIPs": [config.service.cluster_ip],
                "type": "ClusterIP",
                "ports": [port],
                "sessionAffinity": "None",
            },
            "status": {"loadBalancer": {}},
        },
    )
    store.create(
        SERVICES,
        "kube-system",
        {
            "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
            "spec": {
                "clusterIP": config.dns_service_ip,
                "clusterIPs": [config.dns_service_ip],
                "type": "ClusterIP",
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                ],
            },
            "status": {"loadBalancer": {}},
        },
    )
    endpoints = config.service.endpoints
    store.create(
        ENDPOINTS,
        "default",
        {
            "metadata": {"name": "kubernetes"},
            "subsets": [
                {
                    "addresses": [{"ip": e.ip} for e in endpoints],
                    "ports": [{"name": "https", "port": endpoints[0].port, "protocol": "TCP"}],
                }
            ]
            if endpoints
            else [],
        },
    )
    store.create(
        ENDPOINTSLICES,
        "default",
        {
            "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [e.ip], "conditions": {"ready": True}} for e in endpoints],
            "ports": [{"name": "https", "port": endpoints[0].port, "protocol": "TCP"}] if endpoints else [],
        },
    )
    if config.installation is not None:
        installation = {**config.installation}
        installation.setdefault("metadata", {})["name"] = installation.get("metadata", {}).get(
            "name", "default"
        )
        store.create(INSTALLATIONS, "", installation)
    for pool in config.ippools:
        store.create(IPPOOLS, "", pool)
    store.compact()


def running_pod_status(pod: dict[str, Any], node: NodeConfig) -> dict[str, Any]:
    now = now_timestamp()
    containers = pod.get("spec", {}).get("containers") or []
    return {
        "phase": "Running",
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": now}
            for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "hostIP": node.internal_ip,
        "hostIPs": [{"ip": node.internal_ip}],
        "podIP": node.pod_ip,
        "podIPs": [{"ip": node.pod_ip}] if node.pod_ip else [],
        "startTime": now,
        "qosClass": "BestEffort",
        "containerStatuses": [
            {
                "name": c.get("name", ""),
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "containerID": f"containerd://{i:064x}",
                "state": {"running": {"startedAt": now}},
                "lastState": {},
            }
            for i, c in enumerate(containers, 1)
        ],
    }


def waiting_pod_status(pod: dict[str, Any], reason: str, message: str = "") -> dict[str, Any]:
    """Pending with every container waiting for `reason` (and why, when known), as a kubelet reports a
    pod it cannot start."""
    status = pending_pod_status()
    waiting = {"reason": reason, **({"message": message} if message else {})}
    status["containerStatuses"] = [
        {"name": c.get("name", ""), "image": c.get("image", ""), "imageID": "", "ready": False,
         "started": False, "restartCount": 0, "state": {"waiting": dict(waiting)}, "lastState": {}}
        for c in pod.get("spec", {}).get("containers") or []
    ]
    return status


def pending_pod_status() -> dict[str, Any]:
    return {
        "phase": "Pending",
        "qosClass": "BestEffort",
        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_timestamp()}],
    }
