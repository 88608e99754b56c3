"""The API stand-in (lab/apiserver, in-process over TLS) reached through the real kubeconfig path:
the helpers the cluster transport tests and the debug-pod capability tests share.

Plain functions, not fixtures: each test module declares its own two-line fixtures from them, so no
fixture is imported from another test module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import yaml

from probes.facts import NodeFacts
from probes.transports.cluster import ClusterSettings, KubeCluster
from probes.transports.pod import DebugPodSettings
from tests.lab.test_apiserver_support import ADMIN_TOKEN

WORKER2 = NodeFacts(name="worker2", internal_ip="127.0.0.2", ready=True)
"""The stand-in's worker2 as discovery reports it (its pods run on this machine's loopback)."""


def write_kubeconfig(path: Path, url: str, ca: Path, token: str, context: str = "lab") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "lab", "cluster": {"server": url, "certificate-authority": str(ca)}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "lab", "user": "u"}},
                     {"name": "other", "context": {"cluster": "lab", "user": "u"}}],
    }))
    return path


@asynccontextmanager
async def admin_cluster(url: str, ca: Path, tmp_path: Path) -> AsyncIterator[KubeCluster]:
    """A KubeCluster with the stand-in's admin token, closed on exit."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, ca, ADMIN_TOKEN)
    cluster = KubeCluster(ClusterSettings(kubeconfig=kubeconfig, context="lab", request_timeout=5))
    try:
        yield cluster
    finally:
        await cluster.aclose()


async def create_namespace(kube: KubeCluster, name: str = "netcheck") -> None:
    await kube.create_namespace(name)


def pod_settings(**over: object) -> DebugPodSettings:
    """Pods deleted by their last user (keep_warm 0), unless a test says otherwise."""
    return DebugPodSettings.model_validate({"start_timeout": 5, "poll_interval": 0.1, "command_timeout": 5,
                                            "keep_warm": 0, **over})
