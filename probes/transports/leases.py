"""The real `LeaseStore` for bot.ops.leader: coordination.k8s.io/v1 Leases over the official client.

Kept beside cluster.py because only probes/transports/ may import the kubernetes client. The client
is synchronous, so each call runs in a worker thread, bounded by `request_timeout`. Objects go in
and out as Kubernetes JSON dicts; ApiException becomes netcheck's ClusterError family the way
cluster.py translates it (the Status message, e.g. who may not do what in which namespace).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kubernetes.client import ApiClient, CoordinationV1Api
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from probes.transports.cluster import api_error, unreachable


class KubernetesLeaseStore:
    def __init__(self, api_client: ApiClient, namespace: str, *, request_timeout: float = 5.0) -> None:
        self.api = CoordinationV1Api(api_client)
        self.namespace = namespace
        self.request_timeout = request_timeout

    async def _call(self, action: str, method: Any, *args: Any) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            response = method(*args, _preload_content=False, _request_timeout=self.request_timeout)
            answer: dict[str, Any] = json.loads(response.data)
            return answer

        try:
            return await asyncio.to_thread(call)
        except ApiException as exc:
            # the API server's Status message names the user, verb, resource and namespace of a 403
            raise api_error(exc, f"{action} in namespace {self.namespace}") from exc
        except (HTTPError, OSError) as exc:
            raise unreachable(exc, self.api.api_client.configuration.host) from exc

    async def get(self, name: str) -> dict[str, Any]:
        return await self._call(f"get lease {name}", self.api.read_namespaced_lease, name, self.namespace)

    async def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(
            f"create lease {name}", self.api.create_namespaced_lease, self.namespace, body
        )

    async def replace(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(
            f"update lease {name}", self.api.replace_namespaced_lease, name, self.namespace, body
        )
