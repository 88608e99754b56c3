"""return-path probe: the case study (host-api ok, pod-api fail, no NAT) fails naming the pod IP and
pod CIDR, with the node's unreplied conntrack entries as evidence (or, when conntrack shows none, a
tcpdump of unanswered SYNs taken while the pod retries), and carries the masquerade fix; pod-api ok
is ok; host-api failing skips (node-level problem first); NAT present but pod failing warns."""

from __future__ import annotations

import pytest

from probes.catalog.return_path import return_path
from probes.errors import ProbeSkip
from probes.model import FixProposal, Status
from tests.fakes import FakePod, FakeShell, out
from tests.probes.helpers import context, finding

FIX = FixProposal(id="masquerade", params={"pod_cidr": "192.168.88.0/24", "interface": "wlp59s0"})
HOST_OK = finding("host-api", Status.OK, "node worker2 reaches the API at 10.96.0.1:443: HTTP 403")
POD_FAIL = finding("pod-api", Status.FAIL, "pod cannot reach the API at 10.96.0.1:443: timed out")
MASQ_FAIL = finding("masquerade", Status.FAIL, "NAT skipped: destination 192.168.1.10 inside pool "
                    "default-ipv4-ippool (192.168.0.0/16) for 192.168.88.0/24 leaving via wlp59s0",
                    remediation="sudo /usr/sbin/iptables -t nat -A POSTROUTING -s 192.168.88.0/24 -o wlp59s0 "
                                "-j MASQUERADE", fix=FIX)
CONNTRACK = ("tcp      6 117 SYN_SENT src=192.168.88.69 dst=10.96.0.1 sport=59696 dport=443 [UNREPLIED] "
             "src=192.168.1.10 dst=192.168.88.69 sport=6443 dport=59696 mark=0 use=1\n"
             "udp      17 29 src=192.168.88.69 dst=10.96.0.10 sport=41000 dport=53 src=192.168.1.10 "
             "dst=192.168.88.69 sport=53 dport=41000 mark=0 use=1\n")
CAPTURE = ("10:43:04.686267 IP 192.168.88.69.55392 > 192.168.1.10.6443: Flags [S], seq 213656391, win 64240, "
           "options [mss 1460,sackOK,TS val 4188315395 ecr 0,nop,wscale 7], length 0\n"
           "10:43:05.711019 IP 192.168.88.69.55392 > 192.168.1.10.6443: Flags [S], seq 213656391, win 64240, "
           "options [mss 1460,sackOK,TS val 4188316420 ecr 0,nop,wscale 7], length 0\n")
CASE_STUDY = {"host-api": HOST_OK, "pod-api": POD_FAIL, "masquerade": MASQ_FAIL}


async def test_case_study_fails_with_conntrack_evidence_and_fix() -> None:
    host = FakeShell().on(r"^conntrack -L -s 192\.168\.88\.69 2>/dev/null$", out(CONNTRACK))
    result = await return_path(context(host, FakePod(), results=CASE_STUDY))
    assert result.status is Status.FAIL
    assert result.summary == ("replies to pod IP 192.168.88.69 cannot come back: the router has no route "
                              "to 192.168.88.0/24")
    assert "SYN_SENT src=192.168.88.69 dst=10.96.0.1" in result.evidence
    assert "dport=53" not in result.evidence  # answered flows are not evidence
    assert result.fix == FIX
    assert "-s 192.168.88.0/24 -o wlp59s0 -j MASQUERADE" in result.remediation
    assert host.ran == ["conntrack -L -s 192.168.88.69 2>/dev/null"]


async def test_capture_while_pod_retries_when_conntrack_is_empty() -> None:
    host = (FakeShell().on(r"^conntrack ", out(""))
            .on(r"^ip -o route get 192\.168\.1\.10$",
                out("192.168.1.10 dev wlp59s0 src 192.168.1.105 uid 0 \n"))
            .on(r"^timeout 4 tcpdump -ni wlp59s0 -c 20 host 192\.168\.88\.69$",
                out(CAPTURE, 124, "2 packets captured\n2 packets received by filter")))
    pod = FakePod().on(r"^curl ", out("000", 28, "curl: (28) Connection timed out after 4001 milliseconds"))
    result = await return_path(context(host, pod, results=CASE_STUDY))
    assert result.status is Status.FAIL
    assert "Flags [S], seq 213656391" in result.evidence
    assert len(pod.ran) == 1 and pod.ran[0].startswith("curl -sSk")


async def test_pod_ok_is_ok() -> None:
    results = {**CASE_STUDY, "pod-api": finding("pod-api", Status.OK, "HTTP 403")}
    host = FakeShell()
    result = await return_path(context(host, FakePod(), results=results))
    assert result.status is Status.OK
    assert host.ran == []


async def test_host_failing_skips_node_level_first() -> None:
    results = {**CASE_STUDY, "host-api": finding("host-api", Status.FAIL, "timed out")}
    with pytest.raises(ProbeSkip, match="node-level problem first"):
        await return_path(context(FakeShell(), FakePod(), results=results))


async def test_nat_present_but_pod_failing_warns() -> None:
    results = {**CASE_STUDY, "masquerade": finding("masquerade", Status.OK, "Calico NAT present")}
    result = await return_path(context(FakeShell(), FakePod(), results=results))
    assert result.status is Status.WARN
    assert "although NAT applies (Calico NAT present)" in result.summary
    assert result.fix is None
