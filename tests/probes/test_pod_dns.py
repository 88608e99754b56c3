"""pod-dns probe: dig answer with the API service IP → ok; dig timeout and NXDOMAIN → fail naming
the failure, with the pod's nameserver and the DNS service IP in the remediation; a wrong address →
fail; nslookup output (images without dig) is parsed without taking the server's `#53` line."""

from __future__ import annotations

from probes.catalog.pod_dns import answers, pod_dns
from probes.model import Status
from tests.fakes import FakePod, out
from tests.probes.helpers import context

RESOLV = ("search netcheck.svc.cluster.local svc.cluster.local cluster.local\n"
          "nameserver 10.96.0.10\noptions ndots:5\n")
DIG_OK = (RESOLV + ";; Got answer:\n;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4242\n"
          ";; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 0\n\n"
          ";; ANSWER SECTION:\nkubernetes.default.svc.cluster.local. 30 IN A 10.96.0.1\n\n")
DIG_TIMEOUT = RESOLV + ";; communications error to 10.96.0.10#53: timed out\n;; no servers could be reached\n"
DIG_NXDOMAIN = RESOLV + ";; Got answer:\n;; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 1\n"
NSLOOKUP = (RESOLV + "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n"
            "Name:\tkubernetes.default.svc.cluster.local\nAddress: 10.96.0.1\n")


async def test_resolves_to_api_service_ip_ok() -> None:
    result = await pod_dns(context(pod=FakePod().on(r"dig \+time=2", out(DIG_OK))))
    assert result.status is Status.OK
    assert result.summary == "kubernetes.default.svc.cluster.local resolves to 10.96.0.1 via 10.96.0.10"


async def test_timeout_fails_with_nameserver_and_dns_service() -> None:
    result = await pod_dns(context(pod=FakePod().on(r"dig", out(DIG_TIMEOUT, 9))))
    assert result.status is Status.FAIL
    assert result.summary == ("netcheck-debug-worker2 cannot resolve kubernetes.default.svc.cluster.local: "
                              "no servers could be reached")
    assert "the pod's nameserver is 10.96.0.10; it should be the DNS service 10.96.0.10" in result.remediation
    assert "kubectl exec -n netcheck netcheck-debug-worker2 -- dig @10.96.0.10" in result.remediation


async def test_nxdomain_fails_naming_it() -> None:
    result = await pod_dns(context(pod=FakePod().on(r"dig", out(DIG_NXDOMAIN))))
    assert result.status is Status.FAIL
    assert result.summary.endswith("NXDOMAIN")


async def test_wrong_address_fails() -> None:
    wrong = DIG_OK.replace("10.96.0.1\n", "10.96.0.99\n")
    result = await pod_dns(context(pod=FakePod().on(r"dig", out(wrong))))
    assert result.status is Status.FAIL
    assert "resolves to 10.96.0.99, not the API service IP 10.96.0.1" in result.summary


def test_nslookup_answers_skip_server_line() -> None:
    assert answers(NSLOOKUP) == ["10.96.0.1"]
