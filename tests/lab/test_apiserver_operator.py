"""The API stand-in's operator model through the official kubernetes client (in-process, over TLS).

Covers: the seeded calico-node DaemonSet in calico-system (RollingUpdate maxUnavailable 1, status
counts, the template-generation annotation), one Ready calico-node pod per node (owner reference,
pod-template-generation label) and the `calico` TigeraStatus (Available/Progressing/Degraded); an
Installation MTU change re-renders the DaemonSet (FELIX_*MTU env, generation + 1) and rolls it one
node at a time in name order, never more than one pod unavailable, while TigeraStatus says
"update is rolling out (k out of N updated)" and ends Available; removing the MTU (auto) removes
the env; a node whose calico-node is stalled (control API) stops the rollout there (its new pod
Running but not Ready, the other nodes still on the old template, TigeraStatus not Available) until
it is released, then the rollout finishes; a node joining through the control API gets a pod.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from tests.lab.test_apiserver_support import Lab, running_lab

NAMESPACE, DAEMONSET = "calico-system", "calico-node"
INSTALLATION = ("operator.tigera.io", "v1", "installations", "default")
TIGERASTATUS = ("operator.tigera.io", "v1", "tigerastatuses", "calico")
ROLLOUT_S = 20.0


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with running_lab(tmp_path) as running:
        yield running


def apps(lab: Lab) -> client.AppsV1Api:
    return client.AppsV1Api(lab.api_client())


async def daemonset(lab: Lab) -> client.V1DaemonSet:
    return await asyncio.to_thread(apps(lab).read_namespaced_daemon_set, DAEMONSET, NAMESPACE)


async def calico_pods(lab: Lab) -> dict[str, client.V1Pod]:
    pods = await asyncio.to_thread(client.CoreV1Api(lab.api_client()).list_namespaced_pod, NAMESPACE,
                                   label_selector="k8s-app=calico-node")
    return {p.spec.node_name: p for p in pods.items}


async def conditions(lab: Lab) -> dict[str, dict[str, Any]]:
    status = await asyncio.to_thread(client.CustomObjectsApi(lab.api_client()).get_cluster_custom_object,
                                     *TIGERASTATUS)
    return {c["type"]: c for c in status["status"]["conditions"]}


def ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


async def patch_mtu(lab: Lab, mtu: int | None) -> None:
    await asyncio.to_thread(client.CustomObjectsApi(lab.api_client()).patch_cluster_custom_object,
                            *INSTALLATION, {"spec": {"calicoNetwork": {"mtu": mtu}}})


def rolled_out(ds: client.V1DaemonSet) -> bool:
    """`kubectl rollout status`'s test for a DaemonSet."""
    status = ds.status
    return (ds.metadata.generation <= (status.observed_generation or 0)
            and (status.updated_number_scheduled or 0) >= status.desired_number_scheduled
            and (status.number_available or 0) >= status.desired_number_scheduled)


async def wait_rolled_out(lab: Lab) -> client.V1DaemonSet:
    deadline = time.monotonic() + ROLLOUT_S
    while time.monotonic() < deadline:
        ds = await daemonset(lab)
        if rolled_out(ds):
            return ds
        await asyncio.sleep(0.05)
    raise AssertionError(f"rollout did not finish: {ds.status}")


async def test_seeded_operator_objects(lab: Lab) -> None:
    ds = await daemonset(lab)
    assert ds.spec.update_strategy.type == "RollingUpdate"
    assert ds.spec.update_strategy.rolling_update.max_unavailable == 1
    assert ds.metadata.annotations["deprecated.daemonset.template.generation"] == "1"
    assert (ds.status.desired_number_scheduled, ds.status.updated_number_scheduled,
            ds.status.number_available, ds.status.number_unavailable) == (3, 3, 3, None)
    env = {e.name: e.value for e in ds.spec.template.spec.containers[0].env}
    assert env["FELIX_VXLANMTU"] == env["FELIX_IPINIPMTU"] == "1450"
    pods = await calico_pods(lab)
    assert sorted(pods) == ["ghost", "master", "worker2"]
    for pod in pods.values():
        assert ready(pod) and pod.metadata.labels["pod-template-generation"] == "1"
        assert pod.metadata.owner_references[0].kind == "DaemonSet" and pod.spec.host_network
    found = await conditions(lab)
    assert (found["Available"]["status"], found["Progressing"]["status"], found["Degraded"]["status"]) == (
        "True", "False", "False")
    assert found["Available"]["reason"] == "AllObjectsAvailable"


async def test_mtu_change_rolls_one_node_at_a_time(lab: Lab) -> None:
    seen: list[tuple[int, int, int]] = []
    messages: set[str] = set()

    watching_started = threading.Event()

    def collect() -> None:
        stream = watch.Watch()
        for event in stream.stream(apps(lab).list_namespaced_daemon_set, NAMESPACE, timeout_seconds=15):
            watching_started.set()  # the first event is the DaemonSet as it is: the watch is open
            ds = event["object"]
            status = ds.status
            seen.append((status.updated_number_scheduled or 0, status.number_unavailable or 0,
                         status.observed_generation or 0))
            if ds.metadata.generation == 2 and rolled_out(ds):
                stream.stop()

    watching = asyncio.create_task(asyncio.to_thread(collect))
    assert await asyncio.to_thread(watching_started.wait, 15)  # no status written before it is open
    started = time.monotonic()
    await patch_mtu(lab, 1400)
    while not watching.done() and time.monotonic() - started < ROLLOUT_S:
        messages.add((await conditions(lab))["Progressing"]["message"])
        await asyncio.sleep(0.05)
    await watching
    ds = await daemonset(lab)
    assert ds.metadata.generation == 2 and ds.status.observed_generation == 2
    env = {e.name: e.value for e in ds.spec.template.spec.containers[0].env}
    assert env["FELIX_VXLANMTU"] == env["FELIX_WIREGUARDMTU"] == "1400"
    after_patch = [s for s in seen if s[2] == 2]  # statuses the controller wrote for the new template
    assert max(unavailable for _, unavailable, _ in after_patch) == 1  # maxUnavailable 1, never more
    updated = [u for u, _, _ in after_patch]
    assert updated == sorted(updated) and {0, 1, 2, 3} <= set(updated)  # one node after the other
    assert any("update is rolling out (1 out of 3 updated)" in m for m in messages), messages
    assert 'DaemonSet "calico-system/calico-node" update is rolling out (2 out of 3 updated)' in messages
    pods = await calico_pods(lab)
    assert all(ready(p) and p.metadata.labels["pod-template-generation"] == "2" for p in pods.values())
    # name order: start times (one-second resolution) never go down from one node to the next
    starts = [pods[n].status.start_time for n in sorted(pods)]
    assert starts == sorted(starts), starts
    found = await conditions(lab)
    assert found["Available"]["status"] == "True" and found["Progressing"]["status"] == "False"
    await patch_mtu(lab, None)  # auto-detection: the operator sets no MTU env at all
    env = {e.name for e in (await daemonset(lab)).spec.template.spec.containers[0].env}
    assert not env & {"FELIX_VXLANMTU", "FELIX_IPINIPMTU", "FELIX_WIREGUARDMTU"}
    await wait_rolled_out(lab)


async def test_a_stalled_node_stops_the_rollout_until_released(lab: Lab) -> None:
    first, *others = sorted(await calico_pods(lab))  # the rollout's first node
    await lab.control("PUT", f"/lab/v1/nodes/{first}/calico-node", {"ready": False})
    await patch_mtu(lab, 1400)
    deadline = time.monotonic() + ROLLOUT_S
    while time.monotonic() < deadline:
        stalled = (await calico_pods(lab))[first]
        if stalled.metadata.labels["pod-template-generation"] == "2" and stalled.status.phase == "Running":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # several readiness periods: it stays unready, nothing else moves
    pods = await calico_pods(lab)
    assert not ready(pods[first])
    assert next(c for c in pods[first].status.conditions if c.type == "Ready").reason == "ContainersNotReady"
    assert {n: p.metadata.labels["pod-template-generation"] for n, p in pods.items()} == {
        first: "2", **{n: "1" for n in others}}
    ds = await daemonset(lab)
    assert (ds.status.updated_number_scheduled, ds.status.number_unavailable) == (1, 1)
    found = await conditions(lab)
    assert found["Available"]["status"] == "False" and found["Degraded"]["status"] == "False"
    assert found["Progressing"]["message"] == (
        'DaemonSet "calico-system/calico-node" update is rolling out (1 out of 3 updated)')
    await lab.control("PUT", f"/lab/v1/nodes/{first}/calico-node", {"ready": True})
    ds = await wait_rolled_out(lab)
    assert ds.status.updated_number_scheduled == 3
    assert (await conditions(lab))["Available"]["status"] == "True"


async def test_a_joining_node_gets_a_calico_node_pod(lab: Lab) -> None:
    await lab.control("POST", "/lab/v1/nodes", {"name": "worker9", "internal_ip": "127.0.0.9",
                                                  "pod_cidr": "10.244.9.0/24"})
    pods = await calico_pods(lab)
    assert ready(pods["worker9"])
    assert (await daemonset(lab)).status.desired_number_scheduled == 4
    await lab.control("DELETE", "/lab/v1/nodes/worker9", None)
    assert "worker9" not in await calico_pods(lab)
