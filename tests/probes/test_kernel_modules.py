"""kernel-modules probe: IPIP pool with /proc/modules lacking ipip and no tunl0 → fail with fix
`kernel-modules` {module: ipip} and modprobe/persist steps when `modprobe -n -v` finds the module
(no fix when it is not found or module loading is disabled); tunl0 present → ok; vxlan listed in
/proc/modules → ok; no encapsulation → ok; this lab kernel (no /proc/modules, no modules.builtin,
no /sys/module/ipip, no tunl0) → skip with the reason; no pools → skip. Outputs are this kernel's."""

from __future__ import annotations

import pytest

from probes.catalog.kernel_modules import kernel_modules
from probes.errors import ProbeSkip
from probes.model import FixProposal, Status
from tests.fakes import FakeShell, out
from tests.probes.helpers import IPIP_POOL, PLAIN_POOL, VXLAN_POOL, cluster_facts, context

NO_PROC = out("", 1, "cat: /proc/modules: No such file or directory\n")
NO_BUILTIN = out("", 2, "grep: /lib/modules/6.18.44-fc-v669/modules.builtin: No such file or directory\n")
NO_SYS_IPIP = out("/sys/module\n", 2, "ls: cannot access '/sys/module/ipip': No such file or directory\n")
NO_TUNL0 = out("", 1, 'Device "tunl0" does not exist.\n')
LOADABLE = out("0\ninsmod /lib/modules/6.1.0-13-amd64/kernel/net/ipv4/tunnel4.ko \n"
               "insmod /lib/modules/6.1.0-13-amd64/kernel/net/ipv4/ipip.ko \n")
NOT_FOUND = out("0\n", 1, "modprobe: FATAL: Module ipip not found in directory /lib/modules/6.1.0-13-amd64\n")
DISABLED = out("1\ninsmod /lib/modules/6.1.0-13-amd64/kernel/net/ipv4/ipip.ko \n")
PROC = "nf_tables 344064 5 - Live 0x0000000000000000\nvxlan 143360 0 - Live 0x0000000000000000\n"


def node(proc=NO_PROC, sys_module=NO_SYS_IPIP, builtin=NO_BUILTIN, device=NO_TUNL0,  # type: ignore[no-untyped-def]
         loadable=LOADABLE):
    return (FakeShell()
            .on(r"modules_disabled; modprobe -n -v ", loadable)
            .on(r"^cat /proc/modules$", proc)
            .on(r"^ls -d /sys/module ", sys_module)
            .on(r"modules\.builtin", builtin)
            .on(r"^ip -o link show dev ", device))


async def test_ipip_missing_with_module_list_fails_with_fix() -> None:
    result = await kernel_modules(context(node(proc=out(PROC)), facts=cluster_facts(pools=[IPIP_POOL])))
    assert result.status is Status.FAIL
    assert result.summary == "ipip module not loaded on worker2 and no tunl0: IPIP encapsulation cannot work"
    assert "sudo modprobe ipip" in result.remediation
    assert "echo ipip | sudo tee /etc/modules-load.d/netcheck-ipip.conf" in result.remediation
    assert result.fix == FixProposal(id="kernel-modules", params={"module": "ipip"})
    assert "insmod /lib/modules/6.1.0-13-amd64/kernel/net/ipv4/ipip.ko" in result.evidence


@pytest.mark.parametrize("answer", [NOT_FOUND, DISABLED], ids=["module-not-found", "modules-disabled"])
async def test_missing_but_not_loadable_fails_without_a_fix(answer) -> None:  # type: ignore[no-untyped-def]
    result = await kernel_modules(context(node(proc=out(PROC), loadable=answer),
                                      facts=cluster_facts(pools=[IPIP_POOL])))
    assert result.status is Status.FAIL
    assert result.fix is None  # modprobe would fail: a button would only ever roll back
    assert "ipip cannot be loaded on worker2" in result.remediation


async def test_tunnel_device_present_is_ok() -> None:
    tunl0 = out("5: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480 qdisc noqueue state UNKNOWN mode DEFAULT "
                "group default qlen 1000\\    link/ipip 0.0.0.0 brd 0.0.0.0\n")
    result = await kernel_modules(context(node(device=tunl0), facts=cluster_facts(pools=[IPIP_POOL])))
    assert result.status is Status.OK
    assert result.summary == "tunl0 exists: ipip is loaded"


async def test_vxlan_listed_is_ok() -> None:
    shell = node(proc=out(PROC), device=out("", 1, 'Device "vxlan.calico" does not exist.\n'))
    result = await kernel_modules(context(shell, facts=cluster_facts(pools=[VXLAN_POOL])))
    assert result.status is Status.OK
    assert result.summary == "vxlan is loaded"


async def test_no_encapsulation_is_ok_without_commands() -> None:
    shell = node()
    result = await kernel_modules(context(shell, facts=cluster_facts(pools=[PLAIN_POOL])))
    assert result.status is Status.OK
    assert shell.ran == []


async def test_kernel_without_module_information_skips() -> None:
    with pytest.raises(ProbeSkip, match="exposes no module list .* cannot tell whether ipip is loaded"):
        await kernel_modules(context(node(), facts=cluster_facts(pools=[IPIP_POOL])))


async def test_no_pools_skips() -> None:
    with pytest.raises(ProbeSkip, match="no Calico IP pools"):
        await kernel_modules(context(node(), facts=cluster_facts(pools=[])))
