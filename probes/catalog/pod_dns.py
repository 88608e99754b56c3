"""Probe `pod-dns`: the debug pod resolves the API service name through cluster DNS.

Run by the engine. Uses the pod's own resolver (its /etc/resolv.conf, as applications do) with
`dig` when the image has it, else `nslookup` (netshoot has both; minimal images have nslookup).
"""

from __future__ import annotations

import re

from probes.context import ProbeContext
from probes.model import Layer, ProbeResult, fail, ok
from probes.registry import probe
from probes.transports.commands import render

API_NAME = "kubernetes.default.svc.cluster.local"
# One try, two seconds: a dead DNS path must answer "timed out" well inside command_timeout.
_LOOKUP = (
    f"cat /etc/resolv.conf; if command -v dig >/dev/null 2>&1; then "
    f"dig +time=2 +tries=1 +noall +comments +answer {API_NAME} A; "
    f"else nslookup -timeout=2 -retry=0 {API_NAME}; fi"
)
_DIG_A = re.compile(r"\sIN\s+A\s+(\d+\.\d+\.\d+\.\d+)\s*$", re.MULTILINE)
_NSLOOKUP_A = re.compile(r"^Address(?:\s+\d+)?:\s*(\d+\.\d+\.\d+\.\d+)\s*$", re.MULTILINE)
_NAMESERVER = re.compile(r"^\s*nameserver\s+(\S+)", re.MULTILINE)
_STATUS = re.compile(
    r"status: (\w+)|(connection timed out|no servers could be reached)|(NXDOMAIN|SERVFAIL|REFUSED)"
)


def answers(output: str) -> list[str]:
    """IPv4 answers of dig's ANSWER section or nslookup's `Address:` lines (not `server#53`)."""
    return _DIG_A.findall(output) or _NSLOOKUP_A.findall(output)


@probe(id="pod-dns", layer=Layer.POD_APP, needs={"pod"})
async def pod_dns(ctx: ProbeContext) -> ProbeResult:
    """The debug pod resolves kubernetes.default.svc.cluster.local to the API service IP.

    Runs in the debug pod: `cat /etc/resolv.conf` and `dig +time=2 +tries=1 <name> A` (or
    `nslookup`). fail: no answer (timeout, NXDOMAIN, SERVFAIL) or a wrong address; the evidence
    is the resolver's answer and the pod's nameserver. Remediation: check CoreDNS pods and logs
    ("Loop ... detected": see resolved-53), that the pod's nameserver is the DNS service IP
    (kubelet clusterDNS), and the pod-to-service path (pod-api). ok: it resolves to the API
    service IP.
    """
    pod = ctx.pod
    result = await pod.run(render(_LOOKUP), timeout=ctx.settings.command_timeout)
    got = answers(result.stdout)
    expected = ctx.facts.api_service_ip
    nameservers = _NAMESERVER.findall(result.stdout)
    dns_ip = ctx.facts.dns_service_ip
    evidence = f"$ dig/nslookup {API_NAME} (in {pod.namespace}/{pod.name})\n{result.output}"
    if expected in got:
        return ok(f"{API_NAME} resolves to {expected} via {', '.join(nameservers) or 'the pod resolver'}",
                  evidence)
    status = _STATUS.search(result.output)
    why = (f"resolves to {', '.join(got)}, not the API service IP {expected}" if got
           else next((g for g in status.groups() if g), "no answer") if status else "no answer")
    remediation = "\n".join([
        "kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide",
        "kubectl -n kube-system logs -l k8s-app=kube-dns --tail=50   # 'Loop ... detected' → see resolved-53",
        f"# the pod's nameserver is {', '.join(nameservers) or 'missing'}"
        + (f"; it should be the DNS service {dns_ip} (kubelet clusterDNS)" if dns_ip else ""),
        f"kubectl exec -n {pod.namespace} {pod.name} -- dig @{dns_ip or '<dns service ip>'} {API_NAME}",
        "# if the API itself is unreachable from pods too (pod-api), fix that first: same path",
    ])
    return fail(f"{pod.name} cannot resolve {API_NAME}: {why}", evidence, remediation)
