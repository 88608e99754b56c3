"""The API stand-in's configuration (JSON written by the lab builder,
read by `python -m lab.apiserver`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TokenInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str
    groups: list[str] = Field(default_factory=list)
    readonly: bool = False


class EndpointAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ip: str
    port: int


class ServiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cluster_ip: str
    port: int = 443
    endpoints: list[EndpointAddress] = Field(default_factory=list)


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    internal_ip: str
    pod_cidr: str
    ready: bool = True
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    pod_ip: str | None = None
    pod_netns: str | None = None
    host_netns: str | None = Field(None, description="The node's own network namespace (host pods; the "
                                   "Calico tunnel device and the debug pod's host-side veth live there).")
    host_pid1_file: Path | None = Field(
        None, description="File holding the PID of the node's init (lab/nodeinit.py); host pods run in "
        "its namespaces. None: host pods on this node never start.")
    pod_veth: str | None = Field(None, description="Host side of the debug pod's veth (its cali* name), "
                                 "in host_netns: a new pod's MTU is set on both ends.")
    tunnel_device: str | None = Field(None, description="The node's Calico tunnel device (vxlan.calico), "
                                      "in host_netns: Felix sets its MTU when calico-node restarts.")


class ApiServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    listen_host: str
    listen_port: int
    tls_cert: Path
    tls_key: Path
    tokens: dict[str, TokenInfo]
    control_token: str
    service: ServiceConfig
    dns_service_ip: str
    service_cidr: str
    nodes: list[NodeConfig] = Field(default_factory=list)
    installation: dict[str, Any] | None = None
    ippools: list[dict[str, Any]] = Field(default_factory=list)
    exec_prefix: list[str] = Field(default_factory=list)
    kubelet_port: int = 10250
    rbac_manifests: list[Path] = Field(
        default_factory=list,
        description="RBAC manifests (e.g. deploy/kubernetes/rbac.yaml) to enforce for every token; "
        "empty: the read-only/read-write default authorizer.",
    )
    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to create beside the standard ones."
    )
    namespace_manifests: list[Path] = Field(
        default_factory=list,
        description="YAML files whose Namespace objects (name and labels, e.g. the Pod Security level) "
        "are created beside the standard ones.",
    )
    containers_dir: Path | None = Field(
        None, description="An empty directory host pod containers mount their root on (each in its own "
        "mount namespace); None: host pods never start.")
