"""The remediation a probe prints and the fix it proposes name the same files.

For each probe that proposes a node fix (ip-forward, kernel-modules, masquerade, etc-hosts), the
probe's failing finding is produced with the unit-test fakes, the fix it proposes is planned with the
fixes layer's fake node, and every file under /etc named in the remediation must be one the plan
writes. This is the drift it guards against: the ip-forward remediation once named
99-kubernetes-forward.conf while the fix wrote 99-netcheck-ip-forward.conf.
"""

from __future__ import annotations

import re

from fixes.runner import FixRunner
from probes.catalog.etc_hosts import etc_hosts
from probes.catalog.ip_forward import ip_forward
from probes.catalog.kernel_modules import kernel_modules
from probes.catalog.masquerade import Backend, masquerade_remediation
from probes.model import FixProposal, ProbeResult, Status
from tests.fakes import FakeShell, out
from tests.fixes.fakenode import FakeNode, node_engine
from tests.probes.helpers import IPIP_POOL, cluster_facts, context

ETC_FILE = re.compile(r"/etc/[A-Za-z0-9_.@/-]+[A-Za-z0-9_]")


def etc_files(text: str) -> set[str]:
    return set(ETC_FILE.findall(text))


async def plan_text(proposal: FixProposal) -> str:
    runner = FixRunner(node_engine(FakeNode(node="worker2")))
    plan = await runner.plan("worker2", proposal.id, dict(proposal.params))
    return plan.render()


async def assert_same_files(result: ProbeResult) -> set[str]:
    assert result.status is Status.FAIL and result.fix is not None, result
    named = etc_files(result.remediation)
    assert named, f"the remediation names no file: {result.remediation!r}"
    written = etc_files(await plan_text(result.fix))
    assert named <= written, f"remediation names {sorted(named - written)}, the fix plan does not"
    return named


async def test_ip_forward_remediation_names_the_fix_drop_in() -> None:
    shell = (FakeShell()
             .on(r"^sysctl net\.ipv4\.ip_forward$", out("net.ipv4.ip_forward = 0\n"))
             .on(r"^ip -6 -o addr show scope global$", out(""))
             .on(r"^grep -HsE ", out("", 1)))
    named = await assert_same_files(await ip_forward(context(shell)))
    assert named == {"/etc/sysctl.d/99-netcheck-ip-forward.conf"}


async def test_kernel_modules_remediation_names_the_fix_entry() -> None:
    shell = (FakeShell()
             .on(r"modules_disabled; modprobe -n -v ", out("0\ninsmod /lib/modules/6.1.0/ipip.ko \n"))
             .on(r"^cat /proc/modules$", out("vxlan 143360 0 - Live 0x0\n"))
             .on(r"^ls -d /sys/module ", out("/sys/module\n", 2))
             .on(r"modules\.builtin", out("", 1))
             .on(r"^ip -o link show dev ", out("", 1, 'Device "tunl0" does not exist.\n')))
    ipip = cluster_facts(pools=[IPIP_POOL])
    named = await assert_same_files(await kernel_modules(context(shell, facts=ipip)))
    assert named == {"/etc/modules-load.d/netcheck-ipip.conf"}


async def test_etc_hosts_remediation_names_the_file_the_fix_rewrites() -> None:
    lookups = "master: MISSING\nworker1: MISSING\nworker2: 1.2.3.4         STREAM worker2\n"
    shell = FakeShell().on(r"getent ahosts", out(lookups))
    named = await assert_same_files(await etc_hosts(context(shell)))
    assert named == {"/etc/hosts"}


async def test_masquerade_remediation_names_the_fix_unit() -> None:
    remediation = masquerade_remediation(Backend("/usr/sbin/iptables", "iptables-save"), "192.168.88.0/24",
                                         "wlp59s0")
    result = ProbeResult(status=Status.FAIL, summary="no NAT", remediation=remediation,
                         fix=FixProposal(id="masquerade",
                                         params={"pod_cidr": "192.168.88.0/24", "interface": "wlp59s0"}))
    named = await assert_same_files(result)
    assert named == {"/etc/systemd/system/netcheck-masquerade.service"}


COMPARED = {"ip-forward": "ip-forward", "kernel-modules": "kernel-modules", "etc-hosts": "etc-hosts",
            "masquerade": "masquerade", "return-path": "masquerade"}
"""Probe -> the node fix whose files the tests above compare with its remediation (return-path hands
on masquerade's own finding: its remediation and its proposal)."""
CLUSTER_FIXES = {"calico-mtu"}
"""Fixes that write no node file (an API object): nothing to compare."""


def test_every_probe_proposing_a_node_fix_is_compared() -> None:
    """A probe that starts proposing a node fix must join the comparison above."""
    from bot.catalogs import probe_registry

    proposing = {spec.id: fix_id for spec in probe_registry() for fix_id in spec.fixes
                 if fix_id not in CLUSTER_FIXES}
    assert proposing == COMPARED
