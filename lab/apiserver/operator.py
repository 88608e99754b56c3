"""The Tigera operator and the DaemonSet controller, as far as an Installation MTU change goes.

With an Installation in the config, the stand-in serves what the operator maintains: the
`calico-system/calico-node` DaemonSet (apps/v1), one calico-node pod per node, and the `calico`
TigeraStatus. The shapes follow the real ones (docs/calico.md#how-netcheck-follows-an-mtu-rollout):
- `installation_changed` re-renders the DaemonSet as tigera/operator's render/node.go does (the MTU
  in the FELIX_IPINIPMTU/FELIX_VXLANMTU/FELIX_WIREGUARDMTU env, absent when the MTU is auto),
  bumping `metadata.generation` and the `deprecated.daemonset.template.generation` annotation,
  and starts a rollout; a newer change replaces a running rollout, as the controller always works
  toward the newest template.
- The rollout is the DaemonSet controller's RollingUpdate with maxUnavailable 1, maxSurge 0: an old
  pod that is not available is replaced at once, any other old pod only while no pod is
  unavailable. Nodes go in name order. A new pod (label `pod-template-generation`) starts, its
  install-cni step writes the new MTU into the node's CNI config (pods created on the node from then
  on get it on their veth), and it turns Ready after CALICO_NODE_READY_SECONDS, when Felix sets the
  node's tunnel device MTU. Pods created earlier keep their MTU.
- A node marked stalled (`set_stalled`, the lab's `calico-node-stall` fault) never gets a Ready
  calico-node pod started after the mark: the rollout stops there, as a real one would.
- DaemonSet status and the TigeraStatus conditions are recomputed after every step, with the
  operator's status manager's messages (tigera/operator pkg/controller/status/status.go).
The node side (veth and tunnel MTUs) is changed only for nodes whose config names their namespaces.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from typing import Any

from . import objects
from .config import NodeConfig
from .state import CalicoState, State, spawn
from .store import now_timestamp

NAMESPACE = "calico-system"
DAEMONSET = "calico-node"
TIGERASTATUS = "calico"
SELECTOR = {"k8s-app": "calico-node"}
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
REVISION_HASH_LABEL = "controller-revision-hash"
MTU_ENV = ("FELIX_IPINIPMTU", "FELIX_VXLANMTU", "FELIX_WIREGUARDMTU")
IMAGE = "docker.io/calico/node:v3.29.1"
CALICO_NODE_START_SECONDS = 0.3
CALICO_NODE_READY_SECONDS = 0.4
ROLLOUT_POLL_SECONDS = 0.1
IP_COMMAND_SECONDS = 10.0
DEFAULT_AUTO_MTU = 1450
"""What Calico's auto-detection gives when the Installation's status says nothing else."""


def _calico(state: State) -> CalicoState:
    return state.calico


def rendered_mtu(installation: dict[str, Any]) -> int | None:
    return ((installation.get("spec") or {}).get("calicoNetwork") or {}).get("mtu")


def _template(mtu: int | None) -> dict[str, Any]:
    env = [{"name": "DATASTORE_TYPE", "value": "kubernetes"}, {"name": "CALICO_NETWORKING_BACKEND",
                                                                "value": "bird"}]
    if mtu is not None:
        env += [{"name": name, "value": str(mtu)} for name in MTU_ENV]
    return {
        "metadata": {"labels": dict(SELECTOR), "annotations": {"tigera-operator.hash.operator.tigera.io/"
                                                                 "tigera-ca-private": "0"}},
        "spec": {
            "hostNetwork": True, "serviceAccountName": "calico-node",
            "priorityClassName": "system-node-critical",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "calico-node", "image": IMAGE, "env": env,
                            "readinessProbe": {"exec": {"command": ["/bin/calico-node", "-felix-ready",
                                                                    "-bird-ready"]}}}],
        },
    }


def _revision_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(repr(template).encode()).hexdigest()[:10]


def daemonset_object(mtu: int | None) -> dict[str, Any]:
    template = _template(mtu)
    return {
        "metadata": {"name": DAEMONSET, "labels": dict(SELECTOR), "generation": 1,
                     "annotations": {TEMPLATE_GENERATION_ANNOTATION: "1"}},
        "spec": {
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": template,
            "updateStrategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "revisionHistoryLimit": 10,
            "minReadySeconds": 0,
        },
        "status": {},
    }


def _daemonset(state: State) -> dict[str, Any]:
    return state.store.get(objects.DAEMONSETS, NAMESPACE, DAEMONSET)


def _generation(ds: dict[str, Any]) -> int:
    return int(ds["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION])


def _pods(state: State) -> dict[str, dict[str, Any]]:
    """calico-node pods by node name."""
    found = state.store.list(objects.PODS, NAMESPACE, "k8s-app=calico-node")
    return {p["spec"]["nodeName"]: p for p in found if p.get("spec", {}).get("nodeName")}


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _updated(pod: dict[str, Any], generation: int) -> bool:
    return (pod["metadata"].get("labels") or {}).get(TEMPLATE_GENERATION_LABEL) == str(generation)


def _pod_object(ds: dict[str, Any], node: str) -> dict[str, Any]:
    generation = _generation(ds)
    labels = {**SELECTOR, TEMPLATE_GENERATION_LABEL: str(generation),
              REVISION_HASH_LABEL: _revision_hash(ds["spec"]["template"])}
    return {
        "metadata": {
            "generateName": f"{DAEMONSET}-", "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": DAEMONSET,
                                 "uid": ds["metadata"]["uid"], "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": {**ds["spec"]["template"]["spec"], "nodeName": node},
        "status": objects.pending_pod_status(),
    }


def _pod_status(pod: dict[str, Any], host_ip: str, ready: bool) -> dict[str, Any]:
    now = now_timestamp()
    conditions = [
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now,
         **({} if ready else {"reason": "ContainersNotReady",
                              "message": "containers with unready status: [calico-node]"})},
        {"type": "ContainersReady", "status": "True" if ready else "False", "lastTransitionTime": now,
         **({} if ready else {"reason": "ContainersNotReady",
                              "message": "containers with unready status: [calico-node]"})},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
    ]
    started = (pod.get("status") or {}).get("startTime") or now
    return {
        "phase": "Running", "conditions": conditions, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": host_ip, "podIPs": [{"ip": host_ip}], "startTime": started, "qosClass": "Burstable",
        "containerStatuses": [{
            "name": "calico-node", "image": IMAGE, "imageID": "", "ready": ready, "started": True,
            "restartCount": 0, "containerID": "containerd://" + hashlib.sha256(
                pod["metadata"]["uid"].encode()).hexdigest(),
            "state": {"running": {"startedAt": started}}, "lastState": {},
        }],
    }


def _host_ip(state: State, node: str) -> str:
    if not state.store.exists(objects.NODES, "", node):
        return ""
    addresses = state.store.get(objects.NODES, "", node).get("status", {}).get("addresses", [])
    return next((a["address"] for a in addresses if a["type"] == "InternalIP"), "")


# -- seeding and node changes -------------------------------------------------------------------


def seed(state: State) -> None:
    """The operator's objects for the configured Installation, every node's calico-node Ready."""
    installation = state.config.installation
    if installation is None:
        return
    calico = _calico(state)
    mtu = rendered_mtu(installation)
    calico.auto_mtu = int((installation.get("status") or {}).get("mtu") or mtu or DEFAULT_AUTO_MTU)
    state.store.create(objects.DAEMONSETS, NAMESPACE, daemonset_object(mtu))
    state.store.create(objects.TIGERASTATUSES, "", {"metadata": {"name": TIGERASTATUS}, "spec": {},
                                                    "status": {"conditions": []}})
    for node in sorted(state.nodes):
        node_added(state, node)


def node_added(state: State, node: str) -> None:
    """A new node gets a calico-node pod of the current template, Ready at once (it joined healthy)."""
    if not state.store.exists(objects.DAEMONSETS, NAMESPACE, DAEMONSET):
        return
    ds = _daemonset(state)
    created = state.store.create(objects.PODS, NAMESPACE, _pod_object(ds, node))
    created["status"] = _pod_status(created, _host_ip(state, node), ready=True)
    state.store.replace(objects.PODS, NAMESPACE, created)
    mtu = _effective_mtu(state, ds)
    calico = _calico(state)
    calico.cni_mtu[node] = mtu
    calico.veth_mtu.setdefault(node, mtu)
    refresh_status(state)


def node_removed(state: State, node: str) -> None:
    pod = _pods(state).get(node)
    if pod is not None:
        state.store.delete(objects.PODS, NAMESPACE, pod["metadata"]["name"])
    refresh_status(state)


def _effective_mtu(state: State, ds: dict[str, Any]) -> int:
    env = ds["spec"]["template"]["spec"]["containers"][0].get("env") or []
    value = next((e["value"] for e in env if e["name"] == "FELIX_VXLANMTU"), None)
    return int(value) if value is not None else _calico(state).auto_mtu


# -- the MTU change and the rollout -------------------------------------------------------------


def installation_changed(state: State, installation: dict[str, Any]) -> None:
    """The operator renders the new MTU into the DaemonSet; the controller rolls it out."""
    if not state.store.exists(objects.DAEMONSETS, NAMESPACE, DAEMONSET):
        return
    ds = _daemonset(state)
    generation = _generation(ds) + 1
    ds["spec"]["template"] = _template(rendered_mtu(installation))
    ds["metadata"]["generation"] = int(ds["metadata"].get("generation", 1)) + 1
    ds["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION] = str(generation)
    state.store.replace(objects.DAEMONSETS, NAMESPACE, ds)
    refresh_status(state)
    calico = _calico(state)
    if calico.rollout is not None and not calico.rollout.done():
        calico.rollout.cancel()
    calico.rollout = asyncio.ensure_future(_rollout(state))
    state.tasks.add(calico.rollout)
    calico.rollout.add_done_callback(state.tasks.discard)


async def _rollout(state: State) -> None:
    while True:
        ds = _daemonset(state)
        generation = _generation(ds)
        pods = _pods(state)
        nodes = sorted(n for n in pods)
        old = [n for n in nodes if not _updated(pods[n], generation)]
        unavailable = [n for n in nodes if not _ready(pods[n])]
        if not old:
            if not unavailable:
                return
            await asyncio.sleep(ROLLOUT_POLL_SECONDS)  # a stalled new pod: wait for its node to recover
            _recheck_stalled(state)
            continue
        old_unavailable = [n for n in old if n in unavailable]
        if old_unavailable:
            await _replace(state, old_unavailable[0])
        elif not unavailable:
            await _replace(state, old[0])
        else:
            await asyncio.sleep(ROLLOUT_POLL_SECONDS)
            _recheck_stalled(state)


async def _replace(state: State, node: str) -> None:
    """Delete the node's calico-node pod and run a new one of the current template."""
    pod = _pods(state).get(node)
    if pod is not None:
        state.store.delete(objects.PODS, NAMESPACE, pod["metadata"]["name"])
    ds = _daemonset(state)
    created = state.store.create(objects.PODS, NAMESPACE, _pod_object(ds, node))
    refresh_status(state)
    await asyncio.sleep(CALICO_NODE_START_SECONDS)
    name = created["metadata"]["name"]
    if not state.store.exists(objects.PODS, NAMESPACE, name):
        return
    mtu = _effective_mtu(state, ds)
    _calico(state).cni_mtu[node] = mtu  # install-cni wrote the new MTU into the node's CNI config
    running = state.store.get(objects.PODS, NAMESPACE, name)
    running["status"] = _pod_status(running, _host_ip(state, node), ready=False)
    state.store.replace(objects.PODS, NAMESPACE, running)
    refresh_status(state)
    if node in _calico(state).stalled:
        return  # readiness keeps failing; the rollout waits (or replaces this pod when it is old)
    await _become_ready(state, node, name, mtu)


async def _become_ready(state: State, node: str, name: str, mtu: int) -> None:
    """After the readiness delay, the pod is Ready and Felix has set the node's tunnel MTU."""
    calico = _calico(state)
    calico.readying.add(name)
    try:
        await asyncio.sleep(CALICO_NODE_READY_SECONDS)
        if not state.store.exists(objects.PODS, NAMESPACE, name) or node in calico.stalled:
            return
        config = state.nodes.get(node)
        if config is not None and config.host_netns and config.tunnel_device:
            await _ip(config.host_netns, "link", "set", config.tunnel_device, "mtu", str(mtu))  # Felix
        ready = state.store.get(objects.PODS, NAMESPACE, name)
        ready["status"] = _pod_status(ready, _host_ip(state, node), ready=True)
        state.store.replace(objects.PODS, NAMESPACE, ready)
        refresh_status(state)
    finally:
        calico.readying.discard(name)


def _recheck_stalled(state: State) -> None:
    """A node no longer stalled: its not-Ready calico-node pod passes its readiness probe now."""
    calico = _calico(state)
    for node, pod in _pods(state).items():
        name = pod["metadata"]["name"]
        running = (pod.get("status") or {}).get("phase") == "Running"
        if node not in calico.stalled and running and not _ready(pod) and name not in calico.readying:
            spawn(state, _become_ready(state, node, name, calico.cni_mtu.get(node, calico.auto_mtu)))


def set_stalled(state: State, node: str, stalled: bool) -> None:
    calico = _calico(state)
    (calico.stalled.add if stalled else calico.stalled.discard)(node)
    if not stalled:
        _recheck_stalled(state)


async def pod_network_started(state: State, node: NodeConfig) -> None:
    """A pod starts on `node`: the CNI gives its veth the MTU of the node's CNI config now."""
    calico = _calico(state)
    mtu = calico.cni_mtu.get(node.name)
    if mtu is None or calico.veth_mtu.get(node.name) == mtu or not node.pod_netns:
        return
    if node.host_netns and node.pod_veth:
        await _ip(node.host_netns, "link", "set", node.pod_veth, "mtu", str(mtu))
    await _ip(node.pod_netns, "link", "set", "eth0", "mtu", str(mtu))
    calico.veth_mtu[node.name] = mtu


async def _ip(netns: str, *args: str) -> None:
    """`ip -n NETNS ...`, bounded; a failure is logged (the API object change already happened)."""
    process = await asyncio.create_subprocess_exec(
        "ip", "-n", netns, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), IP_COMMAND_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        output = b"timed out"
    if process.returncode:
        print(f"apiserver: ip -n {netns} {' '.join(args)}: {output.decode(errors='replace')}",
              file=sys.stderr)


# -- status ---------------------------------------------------------------------------------------


def refresh_status(state: State) -> None:
    """DaemonSet status as the controller reports it, then the TigeraStatus the operator derives."""
    if not state.store.exists(objects.DAEMONSETS, NAMESPACE, DAEMONSET):
        return
    ds = _daemonset(state)
    generation = _generation(ds)
    pods = _pods(state)
    desired = len(state.store.list(objects.NODES, ""))
    ready = sum(1 for p in pods.values() if _ready(p))
    status = {
        "currentNumberScheduled": len(pods), "numberMisscheduled": 0, "desiredNumberScheduled": desired,
        "numberReady": ready, "observedGeneration": int(ds["metadata"].get("generation", 1)),
        "updatedNumberScheduled": sum(1 for p in pods.values() if _updated(p, generation)),
        "numberAvailable": ready,
    }
    if desired - ready > 0:
        status["numberUnavailable"] = desired - ready
    if ds.get("status") != status:
        ds["status"] = status
        state.store.replace(objects.DAEMONSETS, NAMESPACE, ds)
    _tigera_status(state, ds, status, pods)


def _tigera_status(state: State, ds: dict[str, Any], status: dict[str, Any],
                   pods: dict[str, dict[str, Any]]) -> None:
    name = f"{NAMESPACE}/{DAEMONSET}"
    desired, updated = status["desiredNumberScheduled"], status["updatedNumberScheduled"]
    if updated < desired:
        progressing = f'DaemonSet "{name}" update is rolling out ({updated} out of {desired} updated)'
    elif status.get("numberUnavailable", 0) > 0:
        progressing = f'DaemonSet "{name}" is not available (awaiting {status["numberUnavailable"]} nodes)'
    elif status["numberAvailable"] == 0 and desired:
        progressing = f'DaemonSet "{name}" is not yet scheduled on any nodes'
    else:
        progressing = ""
    wanted = {
        "Available": ("False", "NotApplicable", "Not Applicable") if progressing
        else ("True", "AllObjectsAvailable", "All objects available"),
        "Progressing": ("True", "ResourceNotReady", progressing) if progressing
        else ("False", "NotApplicable", "Not Applicable"),
        "Degraded": ("False", "NotApplicable", "Not Applicable"),
    }
    ts = state.store.get(objects.TIGERASTATUSES, "", TIGERASTATUS)
    current = {c["type"]: c for c in (ts.get("status") or {}).get("conditions") or []}
    conditions = []
    for kind, (value, reason, message) in wanted.items():
        before = current.get(kind, {})
        since = before.get("lastTransitionTime") if before.get("status") == value else now_timestamp()
        conditions.append({"type": kind, "status": value, "reason": reason, "message": message,
                           "lastTransitionTime": since,
                           "observedGeneration": int(ds["metadata"].get("generation", 1))})
    if [(c["type"], c["status"], c["message"]) for c in conditions] != [
            (c.get("type"), c.get("status"), c.get("message")) for c in current.values()]:
        ts["status"] = {"conditions": conditions}
        state.store.replace(objects.TIGERASTATUSES, "", ts)
