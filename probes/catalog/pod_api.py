"""Probe `pod-api`: can the debug pod on the node reach the API service IP? (run by the engine).

Same request as `host-api` (see host_api.api_curl_command); the pair of results separates a
node-level fault from a pod-network one (docs/troubleshooting.md#key-indicator).
"""

from __future__ import annotations

from probes.catalog.host_api import curl_api
from probes.context import ProbeContext
from probes.model import Layer, ProbeResult
from probes.observations import Observations
from probes.registry import probe


@probe(id="pod-api", layer=Layer.POD_APP, needs={"pod"})
async def pod_api(ctx: ProbeContext) -> ProbeResult:
    """Debug pod: HTTPS GET /version on the API service IP:port answers (any HTTP status).

    Runs the same curl inside a debug pod pinned to the node (pod exec API). ok: any HTTP answer.
    fail: the pod cannot reach the API while the host can (docs/troubleshooting.md#key-indicator); the
    report names the cause (masquerade/return-path, mtu, ip-forward) found by the other probes.
    """
    result = await curl_api(ctx, ctx.pod, f"pod {ctx.pod.name} ({ctx.pod.ip})", remediation=(
        "If host-api is ok this is a pod-network problem: see the masquerade, return-path, mtu and\n"
        "pod-routes findings of this node for the cause."
    ))
    # the address the pod's traffic leaves with: the layer picture writes it on the pod's layers
    return result.model_copy(update={"observed": Observations(pod_ip=ctx.pod.ip)})
