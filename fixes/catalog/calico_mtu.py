"""Fix `calico-mtu`: merge-patch the Calico Installation `default` spec.calicoNetwork.mtu.

Proposed by the `mtu` probe with {"mtu": N}. The value is the tunnel/pod MTU (docs/calico.md#mtu),
so it must fit the MTU of the node interface toward the API endpoint minus the encapsulation
overhead of the enabled pool. The operator then rolls calico-node one node at a time, and existing
pods keep their old MTU until they are recreated
(docs/calico.md#mtu-changes-and-the-operator-rollout), so after the patch the fix follows the
operator (fixes/rollout.py): `settle` waits until calico-node on this node runs the new MTU, the
`mtu` probe then measures a new debug pod, `check_applied` waits for the whole rollout and lists the
pods on the node that keep the old MTU (listed, never recreated). Rollback patches the previous
value back and follows that rollout the same way. Progress goes through `say` ("calico-node 2/3
updated"); the time limit is `fixes.rollout_timeout`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fixes import rollout
from fixes.base import Fix, FixFailed
from fixes.model import Approval, Plan
from fixes.registry import fix
from fixes.settings import FixSettings
from probes.api import EngineAPI
from probes.errors import ClusterError, InvalidInput
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


@dataclass
class RolloutWatch:
    """What one apply (or rollback) learns while it follows the operator's rollout, for its later
    steps: the plan is made before the patch, so it cannot carry these."""

    since_generation: int = 0
    """The DaemonSet generation before the patch: older rollout states are not this one."""
    deadline: float | None = None
    """Monotonic time the apply's rollout must finish by (`fixes.rollout_timeout` after the patch)."""
    last_progress: str | None = None
    """The last progress line said (one line per change)."""
    node_ready_since: datetime | None = None
    """When calico-node on the node came up with the new MTU: older pods there keep the old one."""
    old_pods: str | None = None
    """The operator's note on those pods, for the applied message."""


@fix(id="calico-mtu", addresses="mtu", verify=("mtu",))
class CalicoMtu(Fix):
    """Sets Installation `default` `spec.calicoNetwork.mtu` (a merge patch) to an MTU the link fits.

    The MTU (576..9000) must be no larger than the node interface MTU minus the encapsulation
    overhead. The guide's manual `ip link set … mtu` steps are shown as a fallback, never run.

    Verified when calico-node on the node runs the new MTU (DaemonSet rollout, its pods, TigeraStatus
    `calico`, within `fixes.rollout_timeout`), a debug pod created afterwards measures it (eth0 and DF
    pings), and the whole rollout finished; then the pods on the node created before are listed with
    how to recreate them (never recreated).

    Rollback: patches the previous value back (or removes the field) and follows that rollout the
    same way.
    """

    seen_by_new_pods_only = True  # pods keep the MTU their interface got when they started

    def __init__(self, engine: EngineAPI, node: str, settings: FixSettings | None = None) -> None:
        super().__init__(engine, node, settings)
        self.watch = RolloutWatch()

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
        mtu = int(plan.params["mtu"])
        self.watch.since_generation = await self._generation()
        patched = await self.engine.cluster.patch_installation(self._patch(mtu))
        self.watch.deadline = time.monotonic() + self.settings.rollout_timeout
        await self.say(f"applied, rolling out: Installation default spec.calicoNetwork.mtu={mtu}; the "
                       "operator restarts calico-node one node at a time")
        return {"mtu": _spec_mtu(patched)}

    async def _generation(self) -> int:
        try:
            return await rollout.generation(self.engine.cluster)
        except ClusterError:  # followed anyway: the rollout read then says what is missing
            return 0

    def _apply_deadline(self) -> float:
        if self.watch.deadline is None:  # verifying a change applied before (a second apply)
            self.watch.deadline = time.monotonic() + self.settings.rollout_timeout
        return self.watch.deadline

    async def _follow(self, mtu: int | None, until: Callable[[rollout.RolloutState], bool],
                      deadline: float) -> rollout.RolloutState:
        async def say_changes(line: str) -> None:  # one line per change, across settle and check_applied
            if line != self.watch.last_progress:
                self.watch.last_progress = line
                await self.say(line)

        return await rollout.follow(self.engine.cluster, mtu, until=until, deadline=deadline,
                                    poll=self.settings.rollout_poll_interval, say=say_changes,
                                    since_generation=self.watch.since_generation)

    async def settle(self, plan: Plan) -> list[str]:
        """Until calico-node on this node runs the new MTU: only pods created after that get it, so
        verifying earlier would measure the old MTU (docs/calico.md#how-netcheck-follows-an-mtu-rollout)."""
        mtu = int(plan.params["mtu"])
        state = await self._follow(mtu, lambda s: s.node_done(self.node), self._apply_deadline())
        if not state.node_done(self.node):
            return [f"the calico-node rollout did not reach {self.node} within "
                    f"{self.settings.rollout_timeout:g} s: {state.stuck(self.node)}"]
        reached = state.nodes[self.node]
        self.watch.node_ready_since = reached.ready_since
        await self.say(f"calico-node on {self.node} runs MTU {mtu} ({reached.pod} Ready); verifying with a "
                       "new debug pod")
        return []

    async def check_applied(self, plan: Plan) -> list[str]:
        now = _spec_mtu(await self.engine.cluster.get_installation())
        if now != plan.params["mtu"]:
            return [f"Installation spec.calicoNetwork.mtu is {now}, expected {plan.params['mtu']}"]
        state = await self._follow(int(plan.params["mtu"]), lambda s: s.complete, self._apply_deadline())
        if not state.complete:
            return [f"the calico-node rollout did not finish within {self.settings.rollout_timeout:g} s: "
                    f"{state.stuck(self.node)}"]
        await self.say(f"calico-node rolled out on all {state.desired} nodes"
                       + (f" (TigeraStatus calico: {state.tigera})" if state.tigera else ""))
        self.watch.old_pods = await self._old_pods_text()
        return []

    async def _old_pods_text(self) -> str:
        since = self.watch.node_ready_since
        if since is None:
            return f"Pods on {self.node} created before its calico-node restarted keep their old MTU."
        try:
            return rollout.old_pods_text(self.node, await rollout.pods_on_old_mtu(self.engine.cluster,
                                                                                   self.node, since))
        except ClusterError as exc:  # the verdict stands; only the list is missing
            return f"Could not list the pods on {self.node} that keep the old MTU: {exc}"

    async def rollback(self, plan: Plan, before: dict[str, Any]) -> dict[str, Any]:
        """Patch the previous value back and follow that rollout the same way; a rollout that does not
        finish is a failed rollback (the runner reports both)."""
        previous = before.get("mtu")
        self.watch.since_generation = await self._generation()
        # A merge patch with null removes the field: auto-detection comes back if it was unset.
        patched = await self.engine.cluster.patch_installation(self._patch(previous))
        shown = previous if previous is not None else "auto-detected"
        await self.say(f"rolling back: Installation mtu back to {shown}; following the calico-node rollout")
        deadline = time.monotonic() + self.settings.rollout_timeout
        self.watch.last_progress = None  # a new rollout: its first count is news again
        state = await self._follow(previous, lambda s: s.complete, deadline)
        if not state.complete:
            raise FixFailed(f"the calico-node rollout back to MTU {shown} did not finish within "
                            f"{self.settings.rollout_timeout:g} s: {state.stuck(self.node)}")
        await self.say(f"rolled back: calico-node runs MTU {shown} on all {state.desired} nodes")
        return {"mtu": _spec_mtu(patched)}

    def applied_message(self, plan: Plan) -> str:
        return "\n".join([
            f"Installation default has spec.calicoNetwork.mtu={plan.params['mtu']}, the calico-node rollout "
            f"finished, and a debug pod created on {plan.node} afterwards measured the new MTU (verified).",
            self.watch.old_pods or f"Pods on {plan.node} created before its calico-node restarted keep "
                                   "their old MTU until recreated.",
        ])
