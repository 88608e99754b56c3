"""Fix `calico-mtu`: merge-patch the Calico Installation `default` spec.calicoNetwork.mtu.

Proposed by the `mtu` probe with {"mtu": N}. The value is the tunnel/pod MTU (docs/calico.md#mtu),
so it must fit the MTU of the node interface toward the API endpoint minus the encapsulation
overhead of the enabled pool. The operator then rolls calico-node one node at a time, and existing
pods keep their old MTU until they are recreated
(docs/calico.md#mtu-changes-and-the-operator-rollout).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fixes.base import Fix, FixFailed
from fixes.model import Approval, Plan
from fixes.registry import fix
from probes.errors import InvalidInput
from probes.facts import ENCAP_OVERHEAD_V4, ClusterFacts
from probes.transports.commands import iface, integer, ip, render

POD_MTU_MIN, POD_MTU_MAX = 576, 9000

_ROUTE_DEV = re.compile(r"\bdev\s+(\S+)")
_LINK_MTU = re.compile(r"\bmtu\s+(\d+)")


def _spec_mtu(installation: dict[str, Any] | None) -> int | None:
    network = ((installation or {}).get("spec") or {}).get("calicoNetwork") or {}
    value = network.get("mtu")
    return int(value) if value is not None else None


def _overhead(facts: ClusterFacts) -> tuple[str | None, int]:
    """The largest overhead among the enabled pools' encapsulations (None: no encapsulation)."""
    encaps = [p.encapsulation for p in facts.ippools if not p.disabled and p.encapsulation]
    if not encaps:
        return None, 0
    worst = max(encaps, key=lambda e: ENCAP_OVERHEAD_V4[e])
    return worst, ENCAP_OVERHEAD_V4[worst]


@fix(id="calico-mtu", addresses="mtu", verify=("mtu",))
class CalicoMtu(Fix):
    async def plan(self, params: dict[str, str | int]) -> Plan:
        unknown = set(params) - {"mtu"}
        if unknown or "mtu" not in params:
            raise InvalidInput(f"calico-mtu takes exactly one parameter mtu=N (got {sorted(params)})")
        mtu = integer(params["mtu"], POD_MTU_MIN, POD_MTU_MAX, "MTU")
        installation = await self.engine.cluster.get_installation()
        if installation is None:
            raise InvalidInput("no operator.tigera.io/v1 Installation 'default': "
                               "calico-mtu needs the Tigera operator")
        facts = await self.engine.facts()
        endpoint = facts.api_endpoint
        target = endpoint.ip if endpoint else facts.api_service_ip
        device, link_mtu = await self._interface_toward(target)
        encap, overhead = _overhead(facts)
        if mtu > link_mtu - overhead:
            raise InvalidInput(
                f"MTU {mtu} does not fit: {device} has MTU {link_mtu}, minus {overhead} bytes of "
                f"{encap or 'no'} encapsulation leaves {link_mtu - overhead}"
            )
        before = _spec_mtu(installation)
        tunnel = {"ipip": "tunl0", "vxlan": "vxlan.calico"}.get(encap or "", "tunl0")
        change = "\n".join([
            "kubectl patch installation.operator.tigera.io default --type merge "
            f"-p '{json.dumps(self._patch(mtu))}'",
            "",
            "--- Installation default (before)",
            "+++ Installation default (after)",
            " spec:",
            "   calicoNetwork:",
            f"-    mtu: {before}" if before is not None else "-    (mtu not set: Calico auto-detects)",
            f"+    mtu: {mtu}",
            "",
            f"Checked against {device} (MTU {link_mtu}, the route toward {target}) minus {overhead} "
            f"bytes for {encap or 'no'} encapsulation.",
        ])
        fallback = "\n".join([
            f"ip link set {device} mtu {link_mtu}   # on {self.node}, only if the link MTU itself is wrong",
            f"ip link set {tunnel} mtu {mtu}",
            f"kubectl delete pod -n calico-system <calico-node pod on {self.node}>",
        ])
        return Plan(
            fix=self.id, node=self.node, params={"mtu": mtu},
            summary=f"Set the Calico pod network MTU to {mtu} (now {before or 'auto-detected'}) in "
                    "Installation default; the operator restarts calico-node one node at a time.",
            change=change, fallback=fallback,
        )

    @staticmethod
    def _patch(mtu: int | None) -> dict[str, Any]:
        return {"spec": {"calicoNetwork": {"mtu": mtu}}}

    async def _interface_toward(self, target: str) -> tuple[str, int]:
        route = await self.run(render("ip -o route get {ip}", ip=ip(target)))
        found = _ROUTE_DEV.search(route.stdout)
        if not found:
            raise FixFailed(f"no route toward {target} on {self.node}: {route.output[:200]}")
        device = iface(found.group(1))
        link = await self.run(render("ip -o link show dev {dev}", dev=device))
        link_mtu = _LINK_MTU.search(link.stdout)
        if not link_mtu:
            raise FixFailed(f"cannot read the MTU of {device} on {self.node}: {link.output[:200]}")
        return device.value, int(link_mtu.group(1))

    async def is_applied(self, plan: Plan) -> bool:
        return _spec_mtu(await self.engine.cluster.get_installation()) == plan.params["mtu"]

    async def snapshot(self, plan: Plan) -> dict[str, Any]:
        return {"mtu": _spec_mtu(await self.engine.cluster.get_installation())}

    async def apply(self, plan: Plan, approval: Approval) -> dict[str, Any]:
        patched = await self.engine.cluster.patch_installation(self._patch(int(plan.params["mtu"])))
        return {"mtu": _spec_mtu(patched)}

    async def check_applied(self, plan: Plan) -> list[str]:
        now = _spec_mtu(await self.engine.cluster.get_installation())
        if now != plan.params["mtu"]:
            return [f"Installation spec.calicoNetwork.mtu is {now}, expected {plan.params['mtu']}"]
        return []

    async def rollback(self, plan: Plan, before: dict[str, Any]) -> dict[str, Any]:
        # A merge patch with null removes the field: auto-detection comes back if it was unset.
        patched = await self.engine.cluster.patch_installation(self._patch(before.get("mtu")))
        return {"mtu": _spec_mtu(patched)}

    def applied_message(self, plan: Plan) -> str:
        return (
            f"Installation default now has spec.calicoNetwork.mtu={plan.params['mtu']}. The Tigera operator "
            "rolls the calico-node DaemonSet itself, one node at a time (watch `kubectl rollout status "
            "ds/calico-node -n calico-system`); existing pods keep their old MTU until they are recreated."
        )
