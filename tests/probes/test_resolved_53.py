"""resolved-53 probe: kubelet (found in this netns, `--config` file's resolvConf) pointing at a
resolv.conf with 127.0.0.53 → fail with the gentle resolvConf remediation naming the real config
path; only a loopback stub listening → warn; a non-loopback :53 listener (a real DNS server) and
upstream nameservers → ok; `--resolv-conf` flag wins over the config; no kubelet process → assumes
/etc/resolv.conf. ss lines are real `ss -Hlntup` output."""

from __future__ import annotations

from probes.catalog.resolved_53 import loopback_listeners, resolved_53
from probes.model import Status
from tests.fakes import FakeShell, out
from tests.probes.helpers import context

STUB = ('udp UNCONN 0      0      127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=612,fd=13))\n'
        'tcp LISTEN 0      4096   127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=612,fd=14))\n')
REAL_DNS = 'udp UNCONN 0      0      192.168.1.10:53 0.0.0.0:* users:(("python3",pid=7647,fd=3))\n'
KUBELET = ("/usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf "
           "--kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml \n")
CONFIG = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nresolvConf: {path}\n"
STUB_RESOLV = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n"
UPSTREAM_RESOLV = "nameserver 192.168.1.1\n"


def node(listeners: str, resolv_path: str, files: dict[str, str], kubelet: str = KUBELET) -> FakeShell:
    shell = (FakeShell()
             .on(r"^ss -Hlntup", out(listeners))
             .on(r"pgrep -f", out(kubelet, 1))
             .on(r"^cat /var/lib/kubelet/config\.yaml$", out(CONFIG.format(path=resolv_path))))
    for name, text in files.items():
        shell.on(f"^cat {name}$", out(text))
    return shell


async def test_loopback_nameserver_in_kubelet_resolv_conf_fails() -> None:
    result = await resolved_53(context(node(STUB, "/etc/resolv.conf", {"/etc/resolv.conf": STUB_RESOLV})))
    assert result.status is Status.FAIL
    assert "kubelet's resolvConf /etc/resolv.conf lists loopback nameserver 127.0.0.53" in result.summary
    assert ("sudo sed -i 's|^resolvConf:.*|resolvConf: /run/systemd/resolve/resolv.conf|' "
            "/var/lib/kubelet/config.yaml") in result.remediation
    assert "sudo systemctl disable systemd-resolved" in result.remediation


async def test_stub_listener_alone_warns() -> None:
    shell = node(STUB, "/run/systemd/resolve/resolv.conf",
                 {"/run/systemd/resolve/resolv.conf": UPSTREAM_RESOLV})
    result = await resolved_53(context(shell))
    assert result.status is Status.WARN
    assert result.summary.startswith("a loopback DNS stub listens on 127.0.0.53%lo:53")


async def test_real_dns_listener_and_upstream_nameserver_ok() -> None:
    shell = node(REAL_DNS, "/etc/resolv.conf", {"/etc/resolv.conf": UPSTREAM_RESOLV})
    result = await resolved_53(context(shell))
    assert result.status is Status.OK


async def test_resolv_conf_flag_wins_and_missing_kubelet_defaults() -> None:
    flagged = ("/usr/bin/kubelet --resolv-conf=/etc/kubelet-resolv.conf "
               "--config /var/lib/kubelet/config.yaml\n")
    shell = node("", "/etc/resolv.conf", {"/etc/kubelet-resolv.conf": "nameserver ::1\n"}, kubelet=flagged)
    result = await resolved_53(context(shell))
    assert result.status is Status.FAIL
    assert "::1" in result.summary
    none = node("", "", {"/etc/resolv.conf": UPSTREAM_RESOLV}, kubelet="")
    result = await resolved_53(context(none))
    assert result.status is Status.OK
    assert "no kubelet process in this network namespace; assuming /etc/resolv.conf" in result.evidence


def test_loopback_listeners_parse_v6_and_wildcards() -> None:
    lines = ("udp UNCONN 0 0 [::1]:53 [::]:* users:((\"dnsmasq\",pid=1,fd=5))\n"
             "udp UNCONN 0 0 *:53 *:* users:((\"x\",pid=2,fd=5))\n")
    assert loopback_listeners(lines) == ["[::1]:53"]
