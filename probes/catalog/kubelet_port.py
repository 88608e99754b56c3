"""Probe `kubelet-port`: the API server can reach this node's kubelet on 10250.

Run by the engine (docs/troubleshooting.md#kubelet-port-blocked).
The decisive check is the symptom itself: fetch the debug pod's logs
through the API (the API server dials the kubelet for that). A direct TLS connect from wherever
the bot runs is reported beside it; it only says what the bot's own network sees.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl

from probes.context import ProbeContext
from probes.errors import ClusterError, ClusterForbidden
from probes.model import Layer, ProbeResult, fail, ok, skip
from probes.observations import Observations
from probes.registry import probe

KUBELET_PORT = 10250
_DIAL_ERROR = re.compile(
    r"dial tcp (?P<addr>\S+):10250: (?:connect: )?(?P<why>connection refused|i/o timeout|no route to host"
    r"|connection timed out)"
)


async def tls_connect(host: str, port: int, timeout: float) -> str:
    """Try a TLS handshake (certificate not verified: reachability only); a one-line outcome."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port, ssl=context)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except ssl.SSLError as exc:
        return f"TLS failed: {exc.reason or exc}"
    except OSError as exc:  # refused, unreachable (asyncio words it "Connect call failed")
        return f"failed: {os.strerror(exc.errno) if exc.errno else exc}"
    writer.close()
    try:
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        pass  # closing is best effort; the handshake already succeeded
    return "TLS handshake ok"


def _remediation(ctx: ProbeContext, node_ip: str) -> str:
    api = ctx.facts.api_endpoint
    lines = [f"On {ctx.node.name} ({node_ip}), let the API server reach the kubelet:",
             "sudo ufw allow 10250/tcp   # Kubelet API"]
    if api is not None:
        lines.append(f"# or only from the API server: "
                     f"sudo ufw allow from {api.ip} to any port 10250 proto tcp")
    if ctx.facts.cluster_pod_cidr:
        lines.append(f"# or allow all cluster traffic: sudo ufw allow from {ctx.facts.cluster_pod_cidr}")
    lines += ["# check other firewalls too: sudo iptables -S INPUT | grep -e 10250 -e REJECT -e DROP",
              "sudo systemctl restart kubelet"]
    return "\n".join(lines)


@probe(id="kubelet-port", layer=Layer.PHYSICAL, needs={"cluster", "pod"})
async def kubelet_port(ctx: ProbeContext) -> ProbeResult:
    """The API server reaches this node's kubelet on 10250 (it fetches the debug pod's logs).

    Asks the API for the debug pod's logs, which makes the API server dial the kubelet on
    <InternalIP>:10250; also tries a TLS connect to <InternalIP>:10250 from where the bot runs and
    reports both. fail: the API answers "dial tcp <ip>:10250: connection refused / i/o timeout"
    (a firewall on the node; `kubectl logs` and `exec` break too); remediation `ufw allow 10250/tcp`
    or from the API server / cluster CIDR, then restart kubelet. ok: the logs came back. skip: the
    API refused the request for another reason (e.g. RBAC), so the path could not be tested.
    """
    pod = ctx.pod
    node_ip = ctx.node.internal_ip or ctx.node.name
    timeout = ctx.settings.command_timeout
    try:
        await ctx.cluster.pod_logs(pod.namespace, pod.name, timeout=timeout)
        api_error: ClusterError | None = None
    except ClusterError as exc:  # the API's answer is the measurement here
        api_error = exc
    api_line = ("API: pod logs fetched (the API server reached the kubelet)" if api_error is None
                else f"API: {api_error}")
    direct = await tls_connect(node_ip, KUBELET_PORT, ctx.settings.http_timeout)
    evidence = (f"$ kubectl logs -n {pod.namespace} {pod.name}\n{api_line}\n"
                f"bot → {node_ip}:{KUBELET_PORT}: {direct}")
    if api_error is None:
        return ok(f"the API server reaches the kubelet on {node_ip}:{KUBELET_PORT}", evidence,
                  observed=Observations(kubelet_reachable=True))
    dial = _DIAL_ERROR.search(str(api_error))
    if dial:
        return fail(f"the API server cannot reach the kubelet on {dial['addr']}:{KUBELET_PORT}: "
                    f"{dial['why']}",
                    evidence, _remediation(ctx, node_ip), proof=api_line,
                    observed=Observations(kubelet_reachable=False))
    if isinstance(api_error, ClusterForbidden):
        return skip(f"the API refused the log request (RBAC), kubelet path untested; bot direct: {direct}",
                    evidence)
    return skip(f"the log request failed for another reason; bot direct: {direct}", evidence)
