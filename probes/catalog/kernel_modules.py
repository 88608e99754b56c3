"""Probe `kernel-modules`: the module the IP pool's encapsulation needs is loaded.

Run by the engine (docs/troubleshooting.md#missing-kernel-modules).
Evidence comes from whatever the node exposes: /proc/modules, /sys/module,
modules.builtin, and the tunnel device Calico creates (tunl0 / vxlan.calico exists only if the
module works, docs/calico.md#encapsulation). Kernels without module support expose none of these
(docs/lab.md#what-the-kernel-cannot-do): that is its own case (`skip`), never a guess.
"""

from __future__ import annotations

from probes.context import ProbeContext
from probes.errors import ProbeSkip
from probes.facts import IPPoolFacts
from probes.model import FixProposal, Layer, ProbeResult, fail, ok
from probes.registry import probe
from probes.transports.commands import iface, render, word

TUNNEL_DEVICE = {"ipip": "tunl0", "vxlan": "vxlan.calico"}
_PROC = "cat /proc/modules"
_SYS = "ls -d /sys/module /sys/module/{module}"
_BUILTIN = 'grep -E "/{module}\\.ko" "/lib/modules/$(uname -r)/modules.builtin"'
_DEVICE = "ip -o link show dev {device}"
_LOADABLE = "cat /proc/sys/kernel/modules_disabled; modprobe -n -v {module}"
MODULES_LOAD_DIR = "/etc/modules-load.d"


def modules_load_file(module: str) -> str:
    """The modules-load.d entry that loads `module` at boot; the `kernel-modules` fix writes this file
    and the remediation names it, so the two never drift apart."""
    return f"{MODULES_LOAD_DIR}/netcheck-{module}.conf"


def loadable(output: str, exit_status: int) -> bool:
    """`modules_disabled` is 0 and `modprobe -n -v` resolved the module (insmod line or builtin)."""
    lines = output.splitlines()
    return exit_status == 0 and bool(lines) and lines[0].strip() == "0" and any(
        line.startswith(("insmod ", "builtin ")) for line in lines[1:])


def node_pools(ctx: ProbeContext) -> list[IPPoolFacts]:
    """Enabled pools holding this node's pod CIDR; all enabled pools when none does."""
    enabled = [p for p in ctx.facts.ippools if not p.disabled]
    cidr = ctx.node.pod_cidr
    mine = [p for p in enabled if cidr and p.contains(cidr.split("/")[0])]
    return mine or enabled


@probe(id="kernel-modules", layer=Layer.HOST_ROUTE, needs={"host"}, fixes=("kernel-modules",))
async def kernel_modules(ctx: ProbeContext) -> ProbeResult:
    """The kernel module the pool's encapsulation needs (ipip for IPIP, vxlan for VXLAN) is loaded.

    Reads the node's IP pools (ipipMode / vxlanMode), then on the node: `cat /proc/modules`,
    `ls -d /sys/module/<m>`, modules.builtin, and `ip -o link show dev tunl0|vxlan.calico`.
    ok: the tunnel device exists or the module is listed (or no encapsulation is configured).
    fail: the node lists its modules and the needed one is absent and no tunnel device exists;
    remediation `modprobe <m>` and persist it in /etc/modules-load.d; fix `kernel-modules` only
    where `modprobe -n -v <m>` finds the module and module loading is not disabled.
    skip: no Calico IP pools, or the node exposes no module information and no tunnel device.
    """
    pools = node_pools(ctx)
    if not pools:
        raise ProbeSkip("no Calico IP pools: encapsulation unknown")
    needed = sorted({p.encapsulation for p in pools if p.encapsulation})
    if not needed:
        return ok("no encapsulation: pools " + ", ".join(f"{p.name} ({p.cidr})" for p in pools)
                  + " use neither IPIP nor VXLAN")
    timeout = ctx.settings.command_timeout
    module = needed[0]  # a node's pod CIDR sits in one pool; its encapsulation decides
    mod, dev = word(module, "module"), iface(TUNNEL_DEVICE[module])
    # Sequential: every command is an SSH channel, and sshd caps channels per connection.
    proc = await ctx.host.run(render(_PROC), timeout=timeout)
    sys_module = await ctx.host.run(render(_SYS, module=mod), timeout=timeout)
    builtin = await ctx.host.run(render(_BUILTIN, module=mod), timeout=timeout)
    device = await ctx.host.run(render(_DEVICE, device=dev), timeout=timeout)
    listed = proc.ok and any(line.split()[:1] == [module] for line in proc.stdout.splitlines())
    sys_lines = sys_module.stdout.split()
    in_sys = f"/sys/module/{module}" in sys_lines
    evidence = "\n".join([
        f"pool encapsulation: {module} ("
        + ", ".join(f"{p.name} ipipMode={p.ipip_mode} vxlanMode={p.vxlan_mode}" for p in pools) + ")",
        f"$ {_PROC}: " + (f"{module} listed" if listed else ("present, no " + module) if proc.ok
                          else proc.output or "unreadable"),
        f"$ ls -d /sys/module /sys/module/{module}\n{sys_module.output}",
        f"$ grep {module}.ko modules.builtin\n{builtin.output or '(no match)'}",
        f"$ ip -o link show dev {dev}\n{device.output}",
    ])
    if device.ok:
        return ok(f"{dev} exists: {module} is loaded", evidence)
    if listed or in_sys or builtin.ok:
        return ok(f"{module} is loaded" + (" (built in)" if builtin.ok else ""), evidence)
    # Absence from /sys/module proves nothing by itself: a built-in module without parameters never
    # appears there. Only /proc/modules (loadable modules) or modules.builtin make "absent" conclusive.
    exposes_modules = proc.ok or builtin.exit_status == 1
    if not exposes_modules:
        raise ProbeSkip(f"the node exposes no module list (no /proc/modules, no modules.builtin; "
                        f"no /sys/module/{module}) and no {dev} device: "
                        f"cannot tell whether {module} is loaded")
    probe_load = await ctx.host.run(render(_LOADABLE, module=mod), timeout=timeout)
    can_load = loadable(probe_load.stdout, probe_load.exit_status)
    evidence += f"\n$ {_LOADABLE.format(module=module)}\n{probe_load.output or '(no output)'}"
    summary = (f"{module} module not loaded on {ctx.node.name} and no {dev}: "
               f"{module.upper()} encapsulation cannot work")
    recreate = (f"kubectl delete pod -n calico-system -l k8s-app=calico-node "
                f"--field-selector spec.nodeName={ctx.node.name}   # recreate {dev}")
    if not can_load:
        # No fix button: modprobe would fail (no such module, or module loading is disabled).
        remediation = (f"{module} cannot be loaded on {ctx.node.name} (see `modprobe -n -v {module}` above): "
                       f"install the kernel's extra modules package (or a kernel built with {module}), "
                       f"reboot if modules are disabled, then:\n{recreate}")
        return fail(summary, evidence, remediation)
    remediation = (f"On {ctx.node.name}:\nsudo modprobe {module}\n"
                   f"echo {module} | sudo tee {modules_load_file(module)}   # load on boot\n{recreate}")
    return fail(summary, evidence, remediation, FixProposal(id="kernel-modules", params={"module": module}))
