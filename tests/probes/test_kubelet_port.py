"""kubelet-port probe: logs fetched → ok; the API's "dial tcp <ip>:10250: connect: connection refused"
and "i/o timeout" answers → fail with the ufw remediation carrying the API server's and cluster's
real values; RBAC refusal → skip; the direct TLS connect reports a real handshake against a local TLS
server and a real refusal against a closed port."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest

from probes.catalog.kubelet_port import kubelet_port, tls_connect
from probes.errors import ClusterError, ClusterForbidden
from probes.model import Status
from tests.fakes import FakeCluster, FakePod
from tests.probes.helpers import context

REFUSED = ('Get "https://192.168.1.105:10250/containerLogs/netcheck/netcheck-debug-worker2/debug": '
           "dial tcp 192.168.1.105:10250: connect: connection refused")
TIMEOUT = ('Get "https://192.168.1.105:10250/containerLogs/netcheck/netcheck-debug-worker2/debug": '
           "dial tcp 192.168.1.105:10250: i/o timeout")


def cluster(answer: str | Exception) -> FakeCluster:
    return FakeCluster(logs={"netcheck-debug-worker2": answer})


async def test_logs_fetched_is_ok() -> None:
    fake = cluster("log line\n")
    result = await kubelet_port(context(pod=FakePod(), cluster=fake))
    assert result.status is Status.OK
    assert fake.calls == [("pod_logs", ("netcheck", "netcheck-debug-worker2"))]
    assert "bot → 192.168.1.105:10250:" in result.evidence


@pytest.mark.parametrize(("message", "why"), [(REFUSED, "connection refused"), (TIMEOUT, "i/o timeout")])
async def test_dial_errors_fail_with_firewall_remediation(message: str, why: str) -> None:
    result = await kubelet_port(context(pod=FakePod(), cluster=cluster(ClusterError(message, status=500))))
    assert result.status is Status.FAIL
    assert result.summary == f"the API server cannot reach the kubelet on 192.168.1.105:10250: {why}"
    assert "sudo ufw allow 10250/tcp" in result.remediation
    assert "sudo ufw allow from 192.168.1.10 to any port 10250 proto tcp" in result.remediation
    assert "sudo ufw allow from 192.168.0.0/16" in result.remediation
    assert message in result.evidence


async def test_rbac_refusal_skips() -> None:
    answer = ClusterForbidden('pods "x" is forbidden: cannot get resource "pods/log"', status=403)
    result = await kubelet_port(context(pod=FakePod(), cluster=cluster(answer)))
    assert result.status is Status.SKIP


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=kubelet"], check=True, capture_output=True)
    return key, cert


async def test_tls_connect_real_handshake_and_refusal(self_signed: tuple[Path, Path]) -> None:
    key, cert = self_signed
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await tls_connect("127.0.0.1", port, 4.0) == "TLS handshake ok"
    refused = await tls_connect("127.0.0.1", port, 4.0)
    assert refused.startswith("failed: ") and "refused" in refused.lower()
