"""Fix `kernel-modules`: load the encapsulation module now (`modprobe`) and at boot (modules-load.d).

Proposed by the `kernel-modules` probe with {"module": "ipip" | "vxlan"}
(docs/troubleshooting.md#missing-kernel-modules).
Rollback removes the modules-load.d entry; it does not unload a module (something may use it).
Where the kernel cannot load modules (the lab), verification fails and the runner rolls back.
"""

from __future__ import annotations

from typing import Any

from fixes.base import Fix
from fixes.model import Approval, Plan
from fixes.registry import fix
from probes.catalog.kernel_modules import modules_load_file
from probes.errors import InvalidInput
from probes.transports.commands import render, word

MODULES = ("ipip", "vxlan")


def entry_path(module: str) -> str:
    """The probe's `modules_load_file`: the remediation and the fix name the same file."""
    return modules_load_file(module)


@fix(id="kernel-modules", addresses="kernel-modules", verify=("kernel-modules",))
class KernelModules(Fix):
    """Writes `/etc/modules-load.d/netcheck-MODULE.conf` and runs `modprobe MODULE`.

    Proposed only where `modprobe -n` finds the module.

    Verified when the module is loaded.

    Rollback: removes the entry (a loaded module stays loaded: something may use it).
    """

    async def plan(self, params: dict[str, str | int]) -> Plan:
        if set(params) != {"module"} or params["module"] not in MODULES:
            raise InvalidInput(f"kernel-modules takes module=ipip or module=vxlan (got {params!r})"[:200])
        module = str(params["module"])
        change = "\n".join([f"write {entry_path(module)}:", f"  {module}", f"modprobe {module}"])
        return Plan(fix=self.id, node=self.node, params={"module": module},
                    summary=f"Load kernel module {module} on {self.node} now and at boot.", change=change)

    async def _loaded(self, module: str) -> bool:
        return (await self.run(render("test -d /sys/module/{m}", m=word(module)), check=False)).ok

    async def is_applied(self, plan: Plan) -> bool:
        module = str(plan.params["module"])
        return await self._loaded(module) and await self.read_file(entry_path(module)) == f"{module}\n"

    async def snapshot(self, plan: Plan) -> dict[str, Any]:
        module = str(plan.params["module"])
        return {"entry": await self.read_file(entry_path(module)), "loaded": await self._loaded(module)}

    async def apply(self, plan: Plan, approval: Approval) -> dict[str, Any]:
        module = str(plan.params["module"])
        await self.write_file(entry_path(module), f"{module}\n")
        await self.run(render("modprobe {m}", m=word(module)))
        return {"entry": f"{module}\n", "loaded": await self._loaded(module)}

    async def check_applied(self, plan: Plan) -> list[str]:
        module = str(plan.params["module"])
        return [] if await self._loaded(module) else [f"module {module} is not loaded (/sys/module/{module})"]

    async def rollback(self, plan: Plan, before: dict[str, Any]) -> dict[str, Any]:
        module = str(plan.params["module"])
        await self.restore_file(entry_path(module), before.get("entry"))
        return {"entry": await self.read_file(entry_path(module)), "loaded": await self._loaded(module)}
