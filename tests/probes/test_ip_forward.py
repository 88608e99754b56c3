"""ip-forward probe: runtime 0 → fail with fix `ip-forward` and the sysctl/persist commands; runtime 1
but not persisted → warn; persisted in /etc/sysctl.d → ok; last assignment wins (a later file setting
0 un-persists it; /etc/sysctl.conf is applied last); global IPv6 adds the IPv6 key, and IPv6
forwarding 0 then fails without a fix (the fix handles IPv4 only); persisted_values honours /etc over
/usr/lib for the same file name; the proving lines and the typed observations (forwarding, persisted,
rp_filter) for node diffs."""

from __future__ import annotations

from probes.catalog.ip_forward import ip_forward, persisted_values
from probes.model import FixProposal, Status
from probes.observations import Observations
from tests.fakes import FakeShell, out
from tests.probes.helpers import context

V6_ADDR = "3: eth0    inet6 2001:db8::105/64 scope global \\       valid_lft forever preferred_lft forever\n"


def node(v4: str = "1", persisted: str = "", v6_addr: str = "", v6: str = "1") -> FakeShell:
    return (FakeShell()
            .on(r"^sysctl net\.ipv4\.ip_forward$", out(f"net.ipv4.ip_forward = {v4}\n"))
            .on(r"^ip -6 -o addr show scope global$", out(v6_addr))
            .on(r"^sysctl net\.ipv6\.conf\.all\.forwarding$", out(f"net.ipv6.conf.all.forwarding = {v6}\n"))
            .on(r"^grep -HsE ", out(persisted, 0 if persisted else 1))
            .on(r"^sysctl net\.ipv4\.conf\.all\.rp_filter$", out("net.ipv4.conf.all.rp_filter = 2\n")))


async def test_forwarding_off_fails_with_fix() -> None:
    result = await ip_forward(context(node(v4="0")))
    assert result.status is Status.FAIL
    assert result.summary == "forwarding is off on worker2: net.ipv4.ip_forward=0"
    assert "sudo sysctl -w net.ipv4.ip_forward=1" in result.remediation
    assert "echo 'net.ipv4.ip_forward = 1' | sudo tee -a /etc/sysctl.d/99-netcheck-ip-forward.conf" \
        in result.remediation
    assert result.fix == FixProposal(id="ip-forward", params={})
    assert "net.ipv4.ip_forward = 0" in result.evidence
    assert result.proof.splitlines() == ["net.ipv4.ip_forward = 0",
                                         "persisted: no assignment in sysctl.conf or sysctl.d"]
    assert result.observed == Observations(ip_forward=False, forwarding_persisted=False, rp_filter=2)


async def test_on_but_not_persisted_warns() -> None:
    result = await ip_forward(context(node(v4="1")))
    assert result.status is Status.WARN
    assert "net.ipv4.ip_forward is not 1" in result.summary
    assert "no assignment in sysctl.conf or sysctl.d" in result.evidence
    assert result.fix == FixProposal(id="ip-forward", params={})


async def test_persisted_in_sysctl_d_is_ok() -> None:
    result = await ip_forward(context(node(persisted="/etc/sysctl.d/k8s.conf:net.ipv4.ip_forward = 1\n")))
    assert result.status is Status.OK
    assert "net.ipv4.ip_forward = 1 (/etc/sysctl.d/k8s.conf)" in result.evidence


async def test_a_later_file_setting_zero_wins() -> None:
    lines = ("/etc/sysctl.d/k8s.conf:net.ipv4.ip_forward = 1\n"
             "/etc/sysctl.conf:net.ipv4.ip_forward=0\n")
    result = await ip_forward(context(node(persisted=lines)))
    assert result.status is Status.WARN


async def test_global_ipv6_with_forwarding_off_fails() -> None:
    persisted = "/etc/sysctl.d/k8s.conf:net.ipv4.ip_forward = 1\n"
    result = await ip_forward(context(node(persisted=persisted, v6_addr=V6_ADDR, v6="0")))
    assert result.status is Status.FAIL
    assert "net.ipv6.conf.all.forwarding=0" in result.summary
    assert result.fix is None  # the ip-forward fix handles IPv4 only: no button that cannot verify
    assert "sudo sysctl -w net.ipv6.conf.all.forwarding=1" in result.remediation


def test_persisted_values_dir_precedence_and_order() -> None:
    grep = ("/usr/lib/sysctl.d/50-default.conf:net.ipv4.ip_forward = 0\n"
            "/usr/lib/sysctl.d/99-k8s.conf:net/ipv4/ip_forward = 0\n"
            "/etc/sysctl.d/99-k8s.conf:net.ipv4.ip_forward = 1\n")
    assert persisted_values(grep) == {"net.ipv4.ip_forward": ("1", "/etc/sysctl.d/99-k8s.conf")}
