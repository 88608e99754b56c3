"""Following the calico-node rollout the Tigera operator starts after an Installation MTU change.

Used by fixes/catalog/calico_mtu.py. Read-only, through the cluster API (docs/calico.md#how-netcheck-
follows-an-mtu-rollout):
- the `calico-system/calico-node` DaemonSet: its template carries the MTU (FELIX_*MTU env, absent for
  auto-detection) once the operator rendered it; its status says what `kubectl rollout status`
  says (observedGeneration, updated/available/desired);
- its pods: a node runs the new config when its pod's `pod-template-generation` label equals the
  DaemonSet's `deprecated.daemonset.template.generation` annotation and the pod is Ready; the Ready
  condition's lastTransitionTime is when the new MTU reached that node;
- TigeraStatus `calico`: the operator's own Available/Progressing/Degraded conditions, quoted in
  progress and in the "did not finish" outcome.
`pods_on_old_mtu` lists the pods on a node created before that moment: they keep their old eth0 MTU
until they are recreated, which netcheck never does itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fixes.base import Progress
from probes.transports.base import ClusterAPI

NAMESPACE = "calico-system"
DAEMONSET = "calico-node"
POD_SELECTOR = "k8s-app=calico-node"
TIGERASTATUS = "calico"
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
MTU_ENV = ("FELIX_IPINIPMTU", "FELIX_VXLANMTU", "FELIX_WIREGUARDMTU")
NETCHECK_POD_LABEL = ("app.kubernetes.io/managed-by", "netcheck")
OLD_PODS_SHOWN = 20
"""Pods named one by one in the outcome; more are counted (a Slack section holds 3000 characters)."""


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


@dataclass(frozen=True)
class NodeRollout:
    """One node's calico-node pod as the rollout sees it."""

    node: str
    pod: str
    updated: bool
    ready: bool
    ready_since: datetime | None
    why_not_ready: str

    @property
    def done(self) -> bool:
        return self.updated and self.ready


@dataclass(frozen=True)
class RolloutState:
    rendered: bool
    """The DaemonSet template carries the wanted MTU (the operator re-rendered it)."""
    generation: int
    observed_generation: int
    desired: int
    updated: int
    available: int
    nodes: dict[str, NodeRollout]
    tigera: str
    """TigeraStatus calico in one line ("" when the operator publishes none)."""

    def node_done(self, node: str) -> bool:
        found = self.nodes.get(node)
        return self.rendered and self.observed_generation >= self.generation and found is not None \
            and found.done

    @property
    def complete(self) -> bool:
        """`kubectl rollout status` would say "successfully rolled out" (and the template is ours)."""
        return (self.rendered and self.observed_generation >= self.generation
                and self.updated >= self.desired and self.available >= self.desired
                and all(n.done for n in self.nodes.values()))

    def progress_line(self) -> str:
        if not self.rendered:
            return "waiting for the operator to render the new MTU into the calico-node DaemonSet"
        return f"calico-node {self.updated}/{self.desired} updated, {self.available}/{self.desired} available"

    def stuck(self, node: str) -> str:
        """Which nodes did not roll and why, for the outcome when the time is up."""
        if not self.rendered:
            return ("the operator did not render the new MTU into calico-system/calico-node "
                    f"(TigeraStatus calico: {self.tigera or 'none'})")
        stalled = [n for n in self.nodes.values() if n.updated and not n.ready]
        waiting = sorted(n.node for n in self.nodes.values() if not n.updated)
        parts = [f"{self.progress_line()}"]
        parts += [f"stalled at {n.node}: {n.pod} not Ready ({n.why_not_ready})" for n in stalled]
        if waiting:
            parts.append("not reached: " + ", ".join(waiting))
        if node not in self.nodes:
            parts.append(f"no calico-node pod on {node}")
        elif not self.nodes[node].done:
            parts.append(f"{node} does not run this MTU yet")
        if self.tigera:
            parts.append(f"TigeraStatus calico: {self.tigera}")
        return "; ".join(parts)


def template_mtu_matches(ds: dict[str, Any], mtu: int | None, since_generation: int = 0) -> bool:
    """The operator rendered the MTU: an explicit one is in every FELIX_*MTU variable it sets; for
    auto-detection current operators set none, older ones their defaults, so then a new generation
    of the DaemonSet since the patch is the sign."""
    containers = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    env = {e.get("name"): e.get("value") for c in containers for e in c.get("env") or []}
    values = {env[name] for name in MTU_ENV if name in env}
    if mtu is not None:
        return values == {str(mtu)}
    return not values or int((ds.get("metadata") or {}).get("generation") or 0) > since_generation


def tigera_line(status: dict[str, Any] | None) -> str:
    if not status:
        return ""
    parts = []
    for kind in ("Available", "Progressing", "Degraded"):
        found = _condition(status, kind)
        if found:
            message = found.get("message") or ""
            said = found.get("status") == "True" and message and kind != "Available"
            shown = f": {message}" if said else ""
            parts.append(f"{kind}={found.get('status')}{shown}")
    return ", ".join(parts)


def rollout_state(ds: dict[str, Any], pods: list[dict[str, Any]], tigera: dict[str, Any] | None,
                  mtu: int | None, since_generation: int = 0) -> RolloutState:
    """Pure: the rollout from the DaemonSet, its pods and TigeraStatus (unit-tested on real shapes)."""
    meta, status = ds.get("metadata") or {}, ds.get("status") or {}
    template_generation = str((meta.get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION, ""))
    nodes: dict[str, NodeRollout] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            continue
        ready = _condition(pod, "Ready")
        labels = (pod.get("metadata") or {}).get("labels") or {}
        nodes[node] = NodeRollout(
            node=node, pod=(pod.get("metadata") or {}).get("name", "?"),
            updated=bool(template_generation)
            and labels.get(TEMPLATE_GENERATION_LABEL) == template_generation,
            ready=ready.get("status") == "True",
            ready_since=_time(ready.get("lastTransitionTime")) if ready.get("status") == "True" else None,
            why_not_ready=ready.get("message") or ready.get("reason") or (pod.get("status") or {}).get(
                "phase", "unknown"),
        )
    return RolloutState(
        rendered=template_mtu_matches(ds, mtu, since_generation),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        desired=int(status.get("desiredNumberScheduled") or 0),
        updated=int(status.get("updatedNumberScheduled") or 0),
        available=int(status.get("numberAvailable") or 0),
        nodes=nodes,
        tigera=tigera_line(tigera),
    )


async def generation(cluster: ClusterAPI) -> int:
    """The DaemonSet's generation now (before a patch: what "re-rendered since" is measured from)."""
    ds = await cluster.get_daemonset(NAMESPACE, DAEMONSET)
    return int((ds.get("metadata") or {}).get("generation") or 0)


async def read_rollout(cluster: ClusterAPI, mtu: int | None, since_generation: int = 0) -> RolloutState:
    ds = await cluster.get_daemonset(NAMESPACE, DAEMONSET)
    pods = await cluster.list_pods(namespace=NAMESPACE, label_selector=POD_SELECTOR)
    return rollout_state(ds, pods, await cluster.get_tigerastatus(TIGERASTATUS), mtu, since_generation)


async def follow(cluster: ClusterAPI, mtu: int | None, *, until: Callable[[RolloutState], bool],
                 deadline: float, poll: float, say: Progress, since_generation: int = 0) -> RolloutState:
    """Read the rollout every `poll` seconds until `until(state)` or the monotonic `deadline`;
    report each change of the counts through `say`. Returns the last state read."""
    last = ""
    while True:
        state = await read_rollout(cluster, mtu, since_generation)
        line = state.progress_line()
        if line != last:
            await say(line)
            last = line
        if until(state) or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(min(poll, max(0.0, deadline - time.monotonic())))


@dataclass(frozen=True)
class OldPod:
    namespace: str
    name: str
    created: datetime
    owner: str
    remediation: str

    def line(self) -> str:
        when = f"{self.created:%H:%M:%S}"
        return f"{self.namespace}/{self.name} ({self.owner}, created {when}): {self.remediation}"


def _remediation(pod: dict[str, Any]) -> tuple[str, str]:
    """(owner, the command that recreates the pod) for a pod listed on the old MTU."""
    meta = pod.get("metadata") or {}
    ns, name = meta.get("namespace", "default"), meta.get("name", "?")
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")] or \
        meta.get("ownerReferences") or []
    if not owners:
        return "no owner", f"recreate it: kubectl get pod {name} -n {ns} -o yaml > pod.yaml, " \
                           f"kubectl delete pod {name} -n {ns}, kubectl apply -f pod.yaml"
    kind, owner = owners[0].get("kind", "?"), owners[0].get("name", "?")
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and owner.endswith(f"-{template_hash}"):
        deployment = owner[: -len(template_hash) - 1]
        return f"Deployment {deployment}", f"kubectl rollout restart deployment/{deployment} -n {ns}"
    if kind in ("DaemonSet", "StatefulSet"):
        return f"{kind} {owner}", f"kubectl rollout restart {kind.lower()}/{owner} -n {ns}"
    return f"{kind} {owner}", f"kubectl delete pod {name} -n {ns}   # its {kind} creates a new one"


async def pods_on_old_mtu(cluster: ClusterAPI, node: str, since: datetime) -> list[OldPod]:
    """Pods on `node` created before `since` (the moment its calico-node ran the new MTU): they keep
    their old eth0 MTU. Host-network pods (the node's own MTU) and netcheck's debug pods are left out."""
    pods = await cluster.list_pods(field_selector=f"spec.nodeName={node}")
    found = []
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        labels = meta.get("labels") or {}
        created = _time(meta.get("creationTimestamp"))
        if spec.get("hostNetwork") or labels.get(NETCHECK_POD_LABEL[0]) == NETCHECK_POD_LABEL[1]:
            continue
        if (pod.get("status") or {}).get("phase") not in ("Running", "Pending") or created is None:
            continue
        if created < since:
            owner, command = _remediation(pod)
            found.append(OldPod(meta.get("namespace", ""), meta.get("name", "?"), created, owner, command))
    return sorted(found, key=lambda p: (p.namespace, p.name))


def old_pods_text(node: str, pods: list[OldPod]) -> str:
    if not pods:
        return f"No pod on {node} predates the new MTU: nothing to recreate."
    lines = [f"{len(pods)} pod(s) on {node} were created before its calico-node ran the new MTU and keep "
             "the old eth0 MTU until recreated (netcheck does not touch them):"]
    lines += [f"  {p.line()}" for p in pods[:OLD_PODS_SHOWN]]
    if len(pods) > OLD_PODS_SHOWN:
        lines.append(f"  … and {len(pods) - OLD_PODS_SHOWN} more: kubectl get pods -A -o wide "
                     f"--field-selector spec.nodeName={node}")
    return "\n".join(lines)
