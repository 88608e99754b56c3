"""host-api probe: any HTTP answer is ok (200/403), refusal and timeouts fail with curl's error as
evidence and node-level remediation, the exact curl command (validated IP, port, --max-time from
settings), and IPv6 service IPs bracketed in the URL."""

from __future__ import annotations

import pytest

from probes.catalog.host_api import api_curl_command, host_api
from probes.errors import InvalidInput
from probes.facts import Endpoint
from probes.model import Status
from tests.fakes import FakeShell, out
from tests.probes.helpers import cluster_facts, context

CURL = "curl -sSk -o /dev/null -w '%{http_code}' --max-time 4 https://10.96.0.1:443/version"


@pytest.mark.parametrize("code", ["200", "401", "403"])
async def test_any_http_answer_is_ok(code: str) -> None:
    shell = FakeShell().on(r"^curl ", out(code))
    result = await host_api(context(shell))
    assert result.status is Status.OK
    assert result.summary == f"node worker2 reaches the API at 10.96.0.1:443: HTTP {code}"
    assert shell.ran == [CURL]


async def test_timeout_fails_with_curl_error_as_evidence() -> None:
    stderr = "curl: (28) Connection timed out after 4001 milliseconds"
    shell = FakeShell().on(r"^curl ", out("000", 28, stderr))
    result = await host_api(context(shell))
    assert result.status is Status.FAIL
    assert result.summary == "node worker2 cannot reach the API at 10.96.0.1:443: timed out"
    assert stderr in result.evidence and CURL in result.evidence
    assert "ip route get 10.96.0.1" in result.remediation
    assert "the API server (192.168.1.10 port 6443)" in result.remediation  # the endpoint's real port


async def test_remediation_names_the_api_servers_own_port() -> None:
    """Not every API server listens on 6443 (MicroK8s: 16443): the remediation says the real one."""
    shell = FakeShell().on(r"^curl ", out("000", 28, "curl: (28) Connection timed out"))
    cluster = cluster_facts().model_copy(update={"api_endpoints": [Endpoint(ip="172.20.0.10", port=16443)]})
    result = await host_api(context(shell, facts=cluster))
    assert "the API server (172.20.0.10 port 16443)" in result.remediation
    assert "6443)" not in result.remediation.replace("16443)", "")


async def test_refused_and_tls_handshake_timeout_are_named() -> None:
    refused = FakeShell().on(r"^curl ", out(
        "000", 7, "curl: (7) Failed to connect to 10.96.0.1 port 443 after 0 ms: Couldn't connect to server"))
    assert (await host_api(context(refused))).summary.endswith("connection refused or no route")
    tls = FakeShell().on(r"^curl ", out("000", 28, "curl: (28) SSL connection timeout"))
    assert (await host_api(context(tls))).summary.endswith("TLS handshake timeout")


def test_command_validates_and_brackets_ipv6() -> None:
    assert api_curl_command("fd00::1", 443, 2.5).endswith("--max-time 3 https://[fd00::1]:443/version")
    with pytest.raises(InvalidInput):
        api_curl_command("10.96.0.1; rm -rf /", 443, 4)
    with pytest.raises(InvalidInput):
        api_curl_command("10.96.0.1", 70000, 4)
