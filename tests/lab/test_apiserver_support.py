"""Shared setup for the API stand-in tests: TLS material, a config, the in-process server, clients."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from kubernetes import client

from lab import certs
from lab.apiserver import ApiServerConfig, serve
from lab.apiserver.auth import Authorizer, readonly_authorizer

ADMIN_TOKEN = "admin-token"
READONLY_TOKEN = "readonly-token"
CONTROL_TOKEN = "control-token"
KUBELET_LOG_TEXT = "kubelet says hello\nsecond line\n"


@dataclass
class Lab:
    url: str
    ca: Path
    config: ApiServerConfig
    tmp: Path

    def api_client(self, token: str | None = ADMIN_TOKEN) -> client.ApiClient:
        configuration = client.Configuration(host=self.url)
        configuration.ssl_ca_cert = str(self.ca)
        if token is not None:
            configuration.api_key = {"authorization": token}
            configuration.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(configuration)

    async def control(self, method: str, path: str, body: Any) -> dict[str, Any]:
        tls = ssl.create_default_context(cafile=str(self.ca))
        async with aiohttp.ClientSession() as session:
            async with session.request(
                method,
                self.url + path,
                json=body,
                ssl=tls,
                headers={"Authorization": f"Bearer {CONTROL_TOKEN}"},
            ) as response:
                assert response.status < 300, await response.text()
                return await response.json()


def make_tls(directory: Path) -> tuple[certs.CertPair, certs.CertPair]:
    ca = certs.make_ca(directory)
    return ca, certs.issue(ca, directory, "apiserver", ips=["127.0.0.1"], dns=["localhost"])


def base_config(server: certs.CertPair, kubelet_port: int, tmp: Path) -> dict[str, Any]:
    return {
        "listen_host": "127.0.0.1",
        "listen_port": 0,
        "tls_cert": str(server.cert),
        "tls_key": str(server.key),
        "tokens": {
            ADMIN_TOKEN: {"user": "admin", "groups": ["system:masters"]},
            READONLY_TOKEN: {"user": "viewer", "readonly": True},
        },
        "control_token": CONTROL_TOKEN,
        "service": {
            "cluster_ip": "10.96.0.1",
            "port": 443,
            "endpoints": [{"ip": "192.168.1.10", "port": 6443}],
        },
        "dns_service_ip": "10.96.0.10",
        "service_cidr": "10.96.0.0/12",
        "nodes": [
            {
                "name": "master",
                "internal_ip": "127.0.0.1",
                "pod_cidr": "10.244.0.0/24",
                "labels": {"node-role.kubernetes.io/control-plane": ""},
                "pod_ip": "10.244.0.5",
                "pod_netns": "NETCHECK_POD=master",
            },
            {
                "name": "worker2",
                "internal_ip": "127.0.0.2",
                "pod_cidr": "192.168.88.0/24",
                "annotations": {"projectcalico.org/IPv4Address": "192.168.1.105/24"},
                "pod_ip": "192.168.88.5",
                "pod_netns": "NETCHECK_POD=worker2",
            },
            {"name": "ghost", "internal_ip": "127.0.0.3", "pod_cidr": "10.244.9.0/24", "ready": False},
        ],
        "installation": {
            "apiVersion": "operator.tigera.io/v1",
            "kind": "Installation",
            "metadata": {"name": "default"},
            "spec": {
                "calicoNetwork": {
                    "mtu": 1450,
                    "bgp": "Enabled",
                    "nodeAddressAutodetectionV4": {"firstFound": True},
                }
            },
        },
        "ippools": [
            {
                "apiVersion": "crd.projectcalico.org/v1",
                "kind": "IPPool",
                "metadata": {"name": "default-ipv4-ippool"},
                "spec": {"cidr": "10.244.0.0/16", "ipipMode": "Always", "natOutgoing": True},
            }
        ],
        "exec_prefix": ["env"],
        "kubelet_port": kubelet_port,
    }


@contextlib.asynccontextmanager
async def kubelet_standin(server: certs.CertPair) -> AsyncIterator[int]:
    """A TLS kubelet on 127.0.0.1:<ephemeral> that answers /containerLogs with fixed text."""

    async def container_logs(request: web.Request) -> web.Response:
        info = request.match_info
        return web.Response(text=f"{info['ns']}/{info['pod']}/{info['container']}: {KUBELET_LOG_TEXT}")

    app = web.Application()
    app.router.add_get("/containerLogs/{ns}/{pod}/{container}", container_logs)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(server.cert, server.key)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running_lab(
    tmp: Path, authorizer: Authorizer = readonly_authorizer, **overrides: Any
) -> AsyncIterator[Lab]:
    ca, server = make_tls(tmp / "tls")
    async with kubelet_standin(server) as kubelet_port:
        config = ApiServerConfig.model_validate({**base_config(server, kubelet_port, tmp), **overrides})
        async with serve(config, authorizer) as runner:
            port = runner.addresses[0][1]
            yield Lab(f"https://127.0.0.1:{port}", ca.cert, config, tmp)
