"""Probe `host-api`: can the node host itself reach the API service IP? (also the shared curl logic).

Run by the engine; `pod_api` reuses `api_curl_command` and `judge_api_answer` so host and pod are
checked with exactly the same request, which is what makes the two results comparable.
"""

from __future__ import annotations

import math
import re

from probes.context import ProbeContext
from probes.model import Layer, ProbeResult, Status, fail, ok
from probes.registry import Explains, probe
from probes.transports.base import CommandResult, NodeShell, PodExec
from probes.transports.commands import Arg, integer, ip, port, render

_CURL_V4 = "curl -sSk -o /dev/null -w '%{{http_code}}' --max-time {seconds} https://{ip}:{port}/version"
_CURL_V6 = "curl -sSk -o /dev/null -w '%{{http_code}}' --max-time {seconds} https://[{ip}]:{port}/version"

# curl exit codes that name the failure (curl(1) "EXIT CODES").
_CURL_ERRORS = {
    6: "name not resolved",
    7: "connection refused or no route",
    28: "timed out",
    35: "TLS handshake failed",
    52: "empty reply",
    56: "connection reset",
}


def api_curl_command(address: str, api_port: int, seconds: float) -> str:
    """HTTPS GET /version, printing only the HTTP status code (000 when nothing answered)."""
    target = ip(address)
    wait = Arg(str(integer(math.ceil(seconds), 1, 600, "timeout")))
    template = _CURL_V6 if ":" in target.value else _CURL_V4
    return render(template, seconds=wait, ip=target, port=port(api_port))


def http_code(result: CommandResult) -> int:
    match = re.search(r"\b(\d{3})\s*$", result.stdout.strip())
    return int(match.group(1)) if match else 0


def judge_api_answer(result: CommandResult, where: str, target: str) -> ProbeResult:
    """ok on any HTTP answer (200/401/403 all prove TLS and routing work), fail otherwise."""
    code = http_code(result)
    evidence = f"$ {result.command}\n{result.output}"
    if code:
        return ok(f"{where} reaches the API at {target}: HTTP {code}", evidence=evidence)
    why = _CURL_ERRORS.get(result.exit_status, f"curl exit {result.exit_status}")
    if result.exit_status == 28 and re.search(r"SSL|TLS|handshake", result.stderr, re.I):
        why = "TLS handshake timeout"
    return fail(f"{where} cannot reach the API at {target}: {why}", evidence=evidence)


# What the node itself cannot reach, its pods cannot either (and masquerade then sees pod-api failing).
@probe(id="host-api", layer=Layer.HOST_ROUTE, needs={"host"}, explains=(
    Explains("pod-api", only_when_failing=True), Explains("masquerade", only_when_failing=True),
))
async def host_api(ctx: ProbeContext) -> ProbeResult:
    """Node host: HTTPS GET /version on the API service IP:port answers (any HTTP status).

    Runs `curl -sk --max-time <http_timeout> https://<service IP>:<port>/version` on the node.
    ok: any HTTP answer (200, 401, 403 all prove routing, the service DNAT and TLS work).
    fail: timeout, refusal or TLS handshake timeout: a node-level problem (firewall, routes,
    kube-proxy) that comes before every pod-level finding.
    """
    endpoint = ctx.facts.api_endpoint
    server = f"{endpoint.ip} port {endpoint.port}" if endpoint else "its port"  # not always 6443
    return await curl_api(ctx, ctx.host, f"node {ctx.node.name}", remediation=(
        "A node-level problem (outside the pod network): check on the node\n"
        f"  ip route get {ctx.facts.api_service_ip}        # route toward the service IP\n"
        f"  sudo iptables-save -t nat | grep {ctx.facts.api_service_ip}   # kube-proxy DNAT rule present?\n"
        f"  the firewall between this node and the API server ({server})"
    ))


async def curl_api(
    ctx: ProbeContext, shell: NodeShell | PodExec, where: str, *, remediation: str
) -> ProbeResult:
    """The shared body of host-api and pod-api: curl the service IP from `shell`, judge the answer."""
    target = f"{ctx.facts.api_service_ip}:{ctx.facts.api_service_port}"
    command = api_curl_command(ctx.facts.api_service_ip, ctx.facts.api_service_port,
                               ctx.settings.http_timeout)
    result = await shell.run(command, timeout=ctx.settings.command_timeout)
    verdict = judge_api_answer(result, where, target)
    if verdict.status is Status.OK:
        return verdict
    return verdict.model_copy(update={"remediation": remediation})
