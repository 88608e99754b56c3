"""Fix `masquerade`: a systemd oneshot unit that adds the pod-CIDR MASQUERADE rule if absent.

Proposed by the `masquerade` probe with {"pod_cidr", "interface"} when no NAT applies
(docs/troubleshooting.md#router-drops-replies-to-pod-ips, the WiFi case study). Unlike the
troubleshooting guide's unit (docs/troubleshooting.md#where-the-guide-is-wrong), ExecStart checks
(`-C`) before it appends (`-A`), so a restart never adds a duplicate, and ExecStop removes the rule.
The rule goes into the iptables backend the node actually uses
(docs/calico.md#iptables-legacy-vs-nft), detected by `detect_backend`.
Verified for the next boot too (`check_applied`): the unit is enabled, and with the rule flushed the
unit's start puts it back exactly once.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Any

from fixes import binding
from fixes.base import Fix, FixFailed
from fixes.model import Approval, Plan
from fixes.registry import fix
from probes.catalog import iptables_mode
from probes.errors import InvalidInput
from probes.transports.commands import Arg, cidr, iface, render

UNIT_NAME = "netcheck-masquerade.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
_BINARY = re.compile(r"^/[A-Za-z0-9_./-]+/iptables-(nft|legacy)$")

UNIT_TEMPLATE = """\
# Installed by `netcheck fix masquerade`: NAT pod traffic leaving {iface} to the node's address,
# because the network behind {iface} has no route back to the pod CIDR {cidr}.
[Unit]
Description=netcheck: masquerade pod traffic from {cidr} leaving {iface}
After=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c '{bin} -t nat -C {rule} 2>/dev/null || {bin} -t nat -A {rule}'
ExecStop=/bin/sh -c '{bin} -t nat -D {rule} 2>/dev/null || true'

[Install]
WantedBy=multi-user.target
"""


async def detect_backend(fix: Fix) -> str:
    """'nft' or 'legacy': the backend whose rules are live on the node (read-only commands).

    Runs the same reads as the `iptables-mode` probe (the legacy tables only where
    /proc/net/ip_tables_names exists, since iptables-legacy-save would load their modules) and
    decides with its exported pure `detect_backend` (docs/calico.md#iptables-legacy-vs-nft order:
    kubelet hint in nft, then in legacy, then more KUBE-*/cali-* chains, then what `iptables` itself is).
    """
    nft_save = await fix.run("iptables-nft-save", check=False)
    legacy_save = await fix.run("test -e /proc/net/ip_tables_names && iptables-legacy-save", check=False)
    version = await fix.run("iptables --version", check=False)
    found = iptables_mode.detect_backend(
        nft_save=nft_save.stdout, legacy_save=legacy_save.stdout if legacy_save.ok else None,
        version=version.stdout,
    )
    if found.backend is None:
        raise FixFailed(f"cannot tell which iptables backend {fix.node} uses ({found.evidence_line()})")
    if found.split:
        raise FixFailed(f"cluster chains are split across iptables backends on {fix.node} "
                        f"({found.evidence_line()}): fix the iptables-mode finding first")
    return found.backend


def unit_text(binary: str, pod_cidr: Arg, interface: Arg) -> str:
    """The unit's full text; every value in it was validated (binary path, CIDR, interface)."""
    if not _BINARY.match(binary):
        raise FixFailed(f"unexpected iptables binary path {binary!r}")
    rule = f"POSTROUTING -s {pod_cidr} -o {interface} -j MASQUERADE"
    return UNIT_TEMPLATE.format(bin=binary, rule=rule, cidr=pod_cidr, iface=interface)


def effective_rule(line: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str] | None:
    """(source, out interface) of a plain `-A POSTROUTING [-s NET] [-o IF] -j MASQUERADE` line as
    iptables-save prints it, else None. iptables-save writes the rule as the kernel holds it: the
    source masked and with its prefix (`-s 10.0.0.1` -> `10.0.0.1/32`), and no `-s` at all for
    0.0.0.0/0, so the source is compared as a network, never as the text that was typed. Any other
    match or a negation makes it a different rule."""
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None
    if tokens[:2] != ["-A", "POSTROUTING"] or len(tokens) % 2:
        return None
    options = dict(zip(tokens[2::2], tokens[3::2], strict=True))
    if len(options) * 2 != len(tokens) - 2 or set(options) - {"-s", "-o", "-j"}:
        return None
    if options.get("-j") != "MASQUERADE" or "-o" not in options:
        return None
    try:
        source = ipaddress.ip_network(options.get("-s", "0.0.0.0/0"), strict=False)
    except ValueError:
        return None
    return source, options["-o"]


def count_effective_rules(saved: str, pod_cidr: Arg, interface: Arg) -> int:
    """How many nat rules in `iptables-save -t nat` output masquerade exactly pod_cidr leaving interface."""
    wanted = (ipaddress.ip_network(pod_cidr.value), interface.value)
    return sum(1 for line in saved.splitlines() if effective_rule(line.strip()) == wanted)


@fix(id="masquerade", addresses="masquerade", verify=("masquerade", "pod-api", "return-path"))
class Masquerade(Fix):
    """Installs `/etc/systemd/system/netcheck-masquerade.service`, which adds the NAT rule if absent.

    A oneshot unit with RemainAfterExit: start adds `-s POD_CIDR -o IFACE -j MASQUERADE` only if it
    is absent, stop removes it; it uses the iptables backend the node really uses, then
    `daemon-reload` and `enable --now`.

    Verified when the probes pass, the rule is there once, the unit is enabled, and with the rule
    flushed (as after a boot) starting the unit puts exactly one rule back.

    Rollback: `disable --now`, removes the unit (and extra copies of the rule), `daemon-reload`.
    """

    async def plan(self, params: dict[str, str | int]) -> Plan:
        if set(params) != {"pod_cidr", "interface"}:
            raise InvalidInput(f"masquerade takes pod_cidr=CIDR and interface=NAME (got {sorted(params)})")
        pod_cidr = cidr(str(params["pod_cidr"]))
        interface = iface(str(params["interface"]))
        pod_cidr = await binding.pod_block(self, pod_cidr)
        interface, _ = await binding.node_interface(self, interface)
        backend = await detect_backend(self)
        located = await self.run(render("command -v {name}", name=Arg(f"iptables-{backend}")), check=False)
        binary = located.stdout.strip()
        if not located.ok or not _BINARY.match(binary):
            raise FixFailed(f"iptables-{backend} not found on {self.node}")
        text = unit_text(binary, pod_cidr, interface)
        commands = [
            f"write {UNIT_PATH} (below)",
            "systemctl daemon-reload",
            f"systemctl enable --now {UNIT_NAME}",
        ]
        change = "\n".join([
            f"iptables backend in use on {self.node}: {backend} ({binary})",
            "Commands:", *(f"  {c}" for c in commands), "", f"{UNIT_PATH}:", text,
        ])
        fallback = (f"{binary} -t nat -C POSTROUTING -s {pod_cidr} -o {interface} -j MASQUERADE || "
                    f"{binary} -t nat -A POSTROUTING -s {pod_cidr} -o {interface} -j MASQUERADE")
        return Plan(
            fix=self.id, node=self.node,
            params={"pod_cidr": pod_cidr.value, "interface": interface.value},
            summary=f"Masquerade pod traffic from {pod_cidr} leaving {interface} on {self.node} "
                    f"({backend} iptables), kept by systemd unit {UNIT_NAME}.",
            change=change, fallback=fallback, found={"iptables": binary},
        )

    def _values(self, plan: Plan) -> tuple[Arg, Arg]:
        return cidr(str(plan.params["pod_cidr"])), iface(str(plan.params["interface"]))

    def _binary(self, plan: Plan) -> str:
        """The backend's binary `plan` found on this node."""
        binary = plan.found.get("iptables", "")
        if not _BINARY.match(binary):
            raise FixFailed(f"masquerade: the plan names no iptables binary ({binary!r})")
        return binary

    async def rule_count(self, plan: Plan) -> int:
        """How many times the rule is in effect in the nat table of the backend in use."""
        pod_cidr, interface = self._values(plan)
        saved = await self.run(f"{self._binary(plan)}-save -t nat")
        return count_effective_rules(saved.stdout, pod_cidr, interface)

    async def is_applied(self, plan: Plan) -> bool:
        unit = await self.read_file(UNIT_PATH)
        return unit == unit_text(self._binary(plan), *self._values(plan)) and await self.rule_count(plan) == 1

    async def snapshot(self, plan: Plan) -> dict[str, Any]:
        enabled = await self.run(f"systemctl is-enabled {UNIT_NAME}", check=False)
        return {"unit": await self.read_file(UNIT_PATH), "enabled": enabled.ok,
                "rules": await self.rule_count(plan)}

    async def apply(self, plan: Plan, approval: Approval) -> dict[str, Any]:
        await self.write_file(UNIT_PATH, unit_text(self._binary(plan), *self._values(plan)))
        await self.run("systemctl daemon-reload")
        await self.run(f"systemctl enable --now {UNIT_NAME}")
        return {"unit": UNIT_PATH, "enabled": True, "rules": await self.rule_count(plan)}

    def _rule_command(self, plan: Plan, op: str) -> str:
        if op not in ("-A", "-D"):
            raise ValueError(f"unexpected iptables operation {op!r}")
        pod_cidr, interface = self._values(plan)
        return render("{bin} -t nat {op} POSTROUTING -s {cidr} -o {iface} -j MASQUERADE",
                      bin=Arg(self._binary(plan)), op=Arg(op), cidr=pod_cidr, iface=interface)

    async def check_applied(self, plan: Plan) -> list[str]:
        """The rule is there once now, and a reboot would put it back exactly once: the unit is
        enabled, and with the rule flushed (as after a boot) the unit's start adds exactly one."""
        count = await self.rule_count(plan)
        if count != 1:
            return [f"the MASQUERADE rule is present {count} times, expected once"]
        problems = []
        enabled = await self.run(f"systemctl is-enabled {UNIT_NAME}", check=False)
        if enabled.stdout.strip() != "enabled":
            problems.append(f"{UNIT_NAME} is not enabled ({enabled.output.strip() or 'no answer'}): "
                            "nothing would add the rule at boot")
        # As at boot: the unit inactive and no rule, then the unit's start. Pod egress lacks NAT for
        # the few milliseconds between the delete and the start.
        await self.run(f"systemctl stop {UNIT_NAME}")
        await self.run(f"while {self._rule_command(plan, '-D')} 2>/dev/null; do :; done")
        flushed = await self.rule_count(plan)
        started = await self.run(f"systemctl start {UNIT_NAME}", check=False)
        after_boot = await self.rule_count(plan)
        if flushed != 0:
            problems.append(f"the rule could not be flushed to simulate a boot ({flushed} left)")
        if not started.ok:
            problems.append(f"systemctl start {UNIT_NAME} failed: {started.output[:200]}")
        if after_boot != 1:
            problems.append(f"starting {UNIT_NAME} as at boot left the rule {after_boot} times, "
                            "expected exactly once")
        return problems

    async def rollback(self, plan: Plan, before: dict[str, Any]) -> dict[str, Any]:
        await self.run(f"systemctl disable --now {UNIT_NAME}", check=False)
        # Back to the count `snapshot` saw: ExecStop deletes the rule even when it was there before
        # the fix (put it back), and a start that misbehaved may have left extra copies (remove them).
        wanted, now = int(before.get("rules", 0)), await self.rule_count(plan)
        for _ in range(abs(wanted - now)):
            await self.run(self._rule_command(plan, "-A" if now < wanted else "-D"))
        await self.restore_file(UNIT_PATH, before.get("unit"))
        await self.run("systemctl daemon-reload")
        if before.get("unit") is not None and before.get("enabled"):
            await self.run(f"systemctl enable --now {UNIT_NAME}")
        return {"unit": await self.read_file(UNIT_PATH), "rules": await self.rule_count(plan)}

    def applied_message(self, plan: Plan) -> str:
        return (f"Pod traffic from {plan.params['pod_cidr']} leaving {plan.params['interface']} "
                f"on {plan.node} "
                f"is now masqueraded; {UNIT_NAME} re-adds the rule at boot (once, never twice).")
