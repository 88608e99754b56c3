"""pod-api probe: runs the same curl as host-api inside the debug pod (not on the host), ok on an
HTTP answer, fail with curl's timeout as evidence and a pointer to the pod-network probes."""

from __future__ import annotations

from probes.catalog.pod_api import pod_api
from probes.model import Status
from tests.fakes import FakePod, FakeShell, out
from tests.probes.helpers import context

CURL = "curl -sSk -o /dev/null -w '%{http_code}' --max-time 4 https://10.96.0.1:443/version"


async def test_http_answer_from_pod_is_ok() -> None:
    pod, host = FakePod().on(r"^curl ", out("403")), FakeShell()
    result = await pod_api(context(host, pod))
    assert result.status is Status.OK
    assert result.summary == ("pod netcheck-debug-worker2 (192.168.88.69) reaches the API at "
                              "10.96.0.1:443: HTTP 403")
    assert pod.ran == [CURL] and host.ran == []


async def test_pod_timeout_fails() -> None:
    stderr = "curl: (28) Connection timed out after 4002 milliseconds"
    pod = FakePod().on(r"^curl ", out("000", 28, stderr))
    result = await pod_api(context(None, pod))
    assert result.status is Status.FAIL
    assert result.summary.endswith("cannot reach the API at 10.96.0.1:443: timed out")
    assert stderr in result.evidence
    assert "masquerade, return-path, mtu" in result.remediation
