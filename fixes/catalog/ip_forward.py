"""Fix `ip-forward`: turn on net.ipv4.ip_forward now (`sysctl -w`) and at boot (a sysctl.d drop-in).

Proposed by the `ip-forward` probe with no parameters (docs/troubleshooting.md#ip-forwarding-disabled;
docs/calico.md#pod-routes: Felix normally sets it, so 0 means something reset it). The drop-in path
is the probe's `PERSIST_FILE`, so the remediation text and the fix name the same file. Verified for
the next boot too: the value `sysctl --system` would leave, computed read-only from every sysctl
file in boot order (a later file setting 0 would undo the drop-in), must be 1. Rollback removes
the drop-in (or restores the one that was there) and puts the previous runtime value back.
"""

from __future__ import annotations

from typing import Any

from fixes.base import Fix, FixFailed
from fixes.model import Approval, Plan
from fixes.registry import fix
from probes.catalog.ip_forward import PERSIST_FILE, PERSIST_LINE, PERSISTED_COMMAND, persisted_values
from probes.errors import InvalidInput
from probes.transports.commands import Arg, integer, render

DROP_IN = PERSIST_FILE
DROP_IN_TEXT = f"# Installed by `netcheck fix ip-forward`: pods route through the host.\n{PERSIST_LINE}\n"
READ = "sysctl -n net.ipv4.ip_forward"
KEY = "net.ipv4.ip_forward"


@fix(id="ip-forward", addresses="ip-forward", verify=("ip-forward",))
class IpForward(Fix):
    """Writes `/etc/sysctl.d/99-netcheck-ip-forward.conf` and `sysctl -w net.ipv4.ip_forward=1`.

    IPv4 only; the drop-in is the file the probe's remediation names.

    Verified when the probe passes and what `sysctl --system` would leave at boot, read from every
    sysctl file in boot order, is 1.

    Rollback: removes the drop-in (or puts back the one that was there), restores the previous value.
    """

    async def plan(self, params: dict[str, str | int]) -> Plan:
        if params:
            raise InvalidInput(f"ip-forward takes no parameters (got {sorted(params)})")
        change = "\n".join([
            "Commands:", "  sysctl -w net.ipv4.ip_forward=1", f"  write {DROP_IN}:", "", DROP_IN_TEXT,
        ])
        return Plan(fix=self.id, node=self.node, params={},
                    summary=f"Enable IPv4 forwarding on {self.node} now and at boot ({DROP_IN}).",
                    change=change)

    async def _value(self) -> int:
        result = await self.run(READ)
        try:
            return integer(result.stdout.strip(), 0, 2, "ip_forward")
        except InvalidInput as exc:
            raise FixFailed(f"unexpected {READ} output: {exc}") from None

    async def is_applied(self, plan: Plan) -> bool:
        return await self._value() == 1 and await self.read_file(DROP_IN) == DROP_IN_TEXT

    async def snapshot(self, plan: Plan) -> dict[str, Any]:
        return {"ip_forward": await self._value(), "drop_in": await self.read_file(DROP_IN)}

    async def apply(self, plan: Plan, approval: Approval) -> dict[str, Any]:
        await self.write_file(DROP_IN, DROP_IN_TEXT)
        await self.run("sysctl -w net.ipv4.ip_forward=1")
        return {"ip_forward": await self._value(), "drop_in": DROP_IN_TEXT}

    async def boot_value(self) -> tuple[str | None, str | None]:
        """(value, file) `sysctl --system` would leave for ip_forward at the next boot (read-only)."""
        found = await self.run(PERSISTED_COMMAND, check=False)  # grep exits 1 when nothing matches
        return persisted_values(found.stdout).get(KEY, (None, None))

    async def check_applied(self, plan: Plan) -> list[str]:
        value = await self._value()
        problems = [] if value == 1 else [f"{KEY} is {value} after sysctl -w"]
        at_boot, source = await self.boot_value()
        if at_boot != "1":
            problems.append(f"after a reboot `sysctl --system` would leave {KEY}={at_boot or 'unset (0)'}"
                            + (f" (last set in {source})" if source else ""))
        return problems

    async def rollback(self, plan: Plan, before: dict[str, Any]) -> dict[str, Any]:
        await self.restore_file(DROP_IN, before.get("drop_in"))
        previous = Arg(str(integer(before["ip_forward"], 0, 2, "ip_forward")))
        await self.run(render("sysctl -w net.ipv4.ip_forward={value}", value=previous))
        return {"ip_forward": await self._value(), "drop_in": await self.read_file(DROP_IN)}
