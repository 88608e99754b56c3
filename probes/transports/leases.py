"""The real `LeaseStore` for bot.ops.leader and the fix lock: coordination.k8s.io/v1 Leases.

Kept beside cluster.py because only probes/transports/ may import the kubernetes client: the
requests go through the cluster transport's asyncio client (its session and credentials), on the
event loop. Objects go in and out as Kubernetes JSON dicts; errors are translated there, once (the
Status message, e.g. who may not do what in which namespace).
"""

from __future__ import annotations

from typing import Any

from probes.transports.cluster import KubeCluster, _path


class KubernetesLeaseStore:
    def __init__(self, cluster: KubeCluster, namespace: str, *, request_timeout: float = 5.0) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.request_timeout = request_timeout

    def _path(self, name: str | None = None) -> str:
        base = _path("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases", ns=self.namespace)
        return base if name is None else f"{base}/{_path('{n}', n=name)}"

    async def _call(self, action: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        # the API server's Status message names the user, verb, resource and namespace of a 403
        return await self.cluster.request(f"{action} in namespace {self.namespace}", method, path,
                                          body=body, timeout=self.request_timeout,
                                          content_type="application/json" if body is not None else None)

    async def aclose(self) -> None:
        """Close the client's session (the store's own: the engine's goes first at shutdown)."""
        await self.cluster.aclose()

    async def get(self, name: str) -> dict[str, Any]:
        return await self._call(f"get lease {name}", "GET", self._path(name))

    async def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(f"create lease {name}", "POST", self._path(), body)

    async def replace(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(f"update lease {name}", "PUT", self._path(name), body)
