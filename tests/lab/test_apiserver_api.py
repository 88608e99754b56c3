"""API stand-in through the official kubernetes client over TLS with CA verification.

Covers: /version, discovery (/api, /apis incl. Calico and coordination groups), /healthz; nodes list with
label/field selectors and get; Service, Endpoints and EndpointSlice default/kubernetes; watch (ADDED for a
node added via the control API, MODIFIED for Ready, 410 Expired for a too-old resourceVersion); 401 without
a token; 403 with the real message for a read-only token's write; Installation get/merge patch/JSON patch
(status.mtu follows, the operator re-renders the calico-node DaemonSet), a JSON-patch list sent as
merge patch rejected, NotFound shape; IPPool
patch; Lease create/update/409 conflict/delete.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.lab.test_apiserver_support import READONLY_TOKEN, Lab, running_lab

WATCH_SECONDS = 10


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with running_lab(tmp_path) as running:
        yield running


async def test_version_discovery_and_health(lab: Lab) -> None:
    api = lab.api_client()
    version = await asyncio.to_thread(client.VersionApi(api).get_code)
    assert version.git_version == "v1.31.0"
    core = await asyncio.to_thread(client.CoreApi(api).get_api_versions)
    assert core.versions == ["v1"]
    groups = await asyncio.to_thread(client.ApisApi(api).get_api_versions)
    names = {g.name: g.preferred_version.group_version for g in groups.groups}
    assert names["operator.tigera.io"] == "operator.tigera.io/v1"
    assert names["crd.projectcalico.org"] == "crd.projectcalico.org/v1"
    assert names["coordination.k8s.io"] == "coordination.k8s.io/v1"
    resources = await asyncio.to_thread(client.CoreV1Api(api).get_api_resources)
    assert {"nodes", "pods", "pods/exec", "services"} <= {r.name for r in resources.resources}
    tls = ssl.create_default_context(cafile=str(lab.ca))
    async with aiohttp.ClientSession() as session:
        for path in ("/healthz", "/readyz"):
            async with session.get(lab.url + path, ssl=tls) as response:
                assert (response.status, await response.text()) == (200, "ok")


async def test_nodes_list_get_and_selectors(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    nodes = await asyncio.to_thread(core.list_node)
    assert [n.metadata.name for n in nodes.items] == ["ghost", "master", "worker2"]
    assert int(nodes.metadata.resource_version) > 0
    worker2 = await asyncio.to_thread(core.read_node, "worker2")
    assert worker2.spec.pod_cidr == "192.168.88.0/24" and worker2.spec.pod_cidrs == ["192.168.88.0/24"]
    assert {a.type: a.address for a in worker2.status.addresses} == {
        "InternalIP": "127.0.0.2",
        "Hostname": "worker2",
    }
    assert worker2.metadata.annotations["projectcalico.org/IPv4Address"] == "192.168.1.105/24"
    assert worker2.metadata.uid and worker2.metadata.creation_timestamp
    ready = {
        n.metadata.name: [c.status for c in n.status.conditions if c.type == "Ready"][0] for n in nodes.items
    }
    assert ready == {"ghost": "Unknown", "master": "True", "worker2": "True"}
    by_label = await asyncio.to_thread(core.list_node, label_selector="node-role.kubernetes.io/control-plane")
    assert [n.metadata.name for n in by_label.items] == ["master"]
    by_field = await asyncio.to_thread(core.list_node, field_selector="metadata.name=worker2")
    assert [n.metadata.name for n in by_field.items] == ["worker2"]
    with pytest.raises(ApiException) as missing:
        await asyncio.to_thread(core.read_node, "nope")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'nodes "nope" not found'


async def test_kubernetes_service_and_endpoints(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    service = await asyncio.to_thread(core.read_namespaced_service, "kubernetes", "default")
    assert service.spec.cluster_ip == "10.96.0.1"
    assert [(p.name, p.port) for p in service.spec.ports] == [("https", 443)]
    endpoints = await asyncio.to_thread(core.read_namespaced_endpoints, "kubernetes", "default")
    assert [(a.ip, endpoints.subsets[0].ports[0].port) for a in endpoints.subsets[0].addresses] == [
        ("192.168.1.10", 6443)
    ]
    slices = await asyncio.to_thread(
        client.DiscoveryV1Api(lab.api_client()).list_namespaced_endpoint_slice,
        "default",
        label_selector="kubernetes.io/service-name=kubernetes",
    )
    assert [e.addresses for e in slices.items[0].endpoints] == [["192.168.1.10"]]


def _watch_until(lab: Lab, resource_version: str, wanted: set[tuple[str, str]]) -> list[tuple[str, str]]:
    core = client.CoreV1Api(lab.api_client())
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    for event in w.stream(core.list_node, resource_version=resource_version, timeout_seconds=WATCH_SECONDS):
        seen.append((event["type"], event["object"].metadata.name))
        if wanted <= set(seen):
            w.stop()
    return seen


async def test_watch_sees_node_join_and_ready(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    listed = await asyncio.to_thread(core.list_node)
    wanted = {("ADDED", "worker9"), ("MODIFIED", "worker9"), ("DELETED", "ghost")}
    watching = asyncio.create_task(
        asyncio.to_thread(_watch_until, lab, listed.metadata.resource_version, wanted)
    )
    await asyncio.sleep(0.3)
    await lab.control(
        "POST",
        "/lab/v1/nodes",
        {"name": "worker9", "internal_ip": "127.0.0.9", "pod_cidr": "10.244.99.0/24", "ready": False},
    )
    await lab.control("PUT", "/lab/v1/nodes/worker9/ready", {"ready": True})
    await lab.control("DELETE", "/lab/v1/nodes/ghost", None)
    seen = await asyncio.wait_for(watching, WATCH_SECONDS + 5)
    assert seen == [("ADDED", "worker9"), ("MODIFIED", "worker9"), ("DELETED", "ghost")]
    node = await asyncio.to_thread(core.read_node, "worker9")
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
    assert int(node.metadata.resource_version) > int(listed.metadata.resource_version)


async def test_watch_replays_from_resource_version(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    listed = await asyncio.to_thread(core.list_node)
    await lab.control("PATCH", "/lab/v1/nodes/master/annotations", {"netcheck/probe": "x"})
    seen = await asyncio.to_thread(
        _watch_until, lab, listed.metadata.resource_version, {("MODIFIED", "master")}
    )
    assert seen == [("MODIFIED", "master")]


async def test_watch_too_old_resource_version_is_410(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())

    def too_old() -> None:
        for _ in watch.Watch().stream(core.list_node, resource_version="1", timeout_seconds=WATCH_SECONDS):
            pass

    with pytest.raises(ApiException) as expired:
        await asyncio.to_thread(too_old)
    assert expired.value.status == 410
    assert "too old resource version: 1 (" in str(expired.value)


async def test_no_token_is_401(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client(token=None))
    with pytest.raises(ApiException) as denied:
        await asyncio.to_thread(core.list_node)
    assert denied.value.status == 401
    assert json.loads(denied.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    bad = client.CoreV1Api(lab.api_client(token="wrong"))
    with pytest.raises(ApiException) as wrong:
        await asyncio.to_thread(bad.list_node)
    assert wrong.value.status == 401


async def test_readonly_token_reads_but_cannot_write(lab: Lab) -> None:
    api = lab.api_client(token=READONLY_TOKEN)
    assert len((await asyncio.to_thread(client.CoreV1Api(api).list_node)).items) == 3
    custom = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as denied:
        await asyncio.to_thread(
            custom.patch_cluster_custom_object,
            "operator.tigera.io",
            "v1",
            "installations",
            "default",
            {"spec": {"calicoNetwork": {"mtu": 1400}}},
        )
    assert denied.value.status == 403
    body = json.loads(denied.value.body)
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'installations.operator.tigera.io "default" is forbidden: User "viewer" cannot '
        'patch resource "installations" in API group "operator.tigera.io" at the '
        "cluster scope"
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )
    with pytest.raises(ApiException) as create:
        await asyncio.to_thread(client.CoreV1Api(api).create_namespaced_pod, "default", pod)
    assert json.loads(create.value.body)["message"] == (
        'pods is forbidden: User "viewer" cannot create resource "pods" in API group "" '
        'in the namespace "default"'
    )


async def rendered_mtu(lab: Lab) -> str | None:
    """FELIX_VXLANMTU in the calico-node DaemonSet template, as the operator renders the Installation."""
    ds = await asyncio.to_thread(client.AppsV1Api(lab.api_client()).read_namespaced_daemon_set,
                                 "calico-node", "calico-system")
    env = {e.name: e.value for e in ds.spec.template.spec.containers[0].env or []}
    return env.get("FELIX_VXLANMTU")


async def test_installation_merge_and_json_patch(lab: Lab) -> None:
    custom = client.CustomObjectsApi(lab.api_client())
    group = ("operator.tigera.io", "v1", "installations")
    installation = await asyncio.to_thread(custom.get_cluster_custom_object, *group, "default")
    assert installation["spec"]["calicoNetwork"]["mtu"] == 1450
    patched = await asyncio.to_thread(
        custom.patch_cluster_custom_object, *group, "default", {"spec": {"calicoNetwork": {"mtu": 1400}}}
    )
    assert patched["spec"]["calicoNetwork"]["mtu"] == 1400 and patched["status"]["mtu"] == 1400
    assert patched["spec"]["calicoNetwork"]["bgp"] == "Enabled"
    assert await rendered_mtu(lab) == "1400"
    ops = [
        {"op": "replace", "path": "/spec/calicoNetwork/mtu", "value": 1380},
        {"op": "remove", "path": "/spec/calicoNetwork/nodeAddressAutodetectionV4/firstFound"},
        {"op": "add", "path": "/spec/calicoNetwork/nodeAddressAutodetectionV4/interface", "value": "wl.*"},
    ]
    patched = await asyncio.to_thread(
        custom.patch_cluster_custom_object,
        *group,
        "default",
        ops,
        _content_type="application/json-patch+json",
    )
    assert patched["spec"]["calicoNetwork"]["nodeAddressAutodetectionV4"] == {"interface": "wl.*"}
    assert patched["status"]["mtu"] == 1380
    assert await rendered_mtu(lab) == "1380"
    with pytest.raises(ApiException) as strategic:
        await asyncio.to_thread(
            custom.patch_cluster_custom_object,
            *group,
            "default",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert strategic.value.status == 415
    with pytest.raises(ApiException) as not_a_number:
        await asyncio.to_thread(
            custom.patch_cluster_custom_object,
            *group,
            "default",
            {"spec": {"calicoNetwork": {"mtu": "1300"}}},
        )
    assert not_a_number.value.status == 422
    assert json.loads(not_a_number.value.body)["message"].endswith('must be of type integer: "1300"')
    assert await rendered_mtu(lab) == "1380"  # a rejected patch renders nothing
    with pytest.raises(ApiException) as as_merge:
        await asyncio.to_thread(custom.patch_cluster_custom_object, *group, "default", ops)
    assert as_merge.value.status == 400
    assert "cannot unmarshal array" in json.loads(as_merge.value.body)["message"]
    with pytest.raises(ApiException) as bad_path:
        await asyncio.to_thread(
            custom.patch_cluster_custom_object,
            *group,
            "default",
            [{"op": "replace", "path": "/spec/nothing/here", "value": 1}],
            _content_type="application/json-patch+json",
        )
    assert bad_path.value.status == 400
    with pytest.raises(ApiException) as missing:
        await asyncio.to_thread(custom.get_cluster_custom_object, *group, "other")
    body = json.loads(missing.value.body)
    assert (missing.value.status, body["reason"], body["message"]) == (
        404,
        "NotFound",
        'installations.operator.tigera.io "other" not found',
    )
    assert body["details"] == {"name": "other", "group": "operator.tigera.io", "kind": "installations"}


async def test_ippool_list_and_patch(lab: Lab) -> None:
    custom = client.CustomObjectsApi(lab.api_client())
    group = ("crd.projectcalico.org", "v1", "ippools")
    pools = await asyncio.to_thread(custom.list_cluster_custom_object, *group)
    assert pools["kind"] == "IPPoolList" and [p["metadata"]["name"] for p in pools["items"]] == [
        "default-ipv4-ippool"
    ]
    patched = await asyncio.to_thread(
        custom.patch_cluster_custom_object,
        *group,
        "default-ipv4-ippool",
        {"spec": {"ipipMode": "Never", "vxlanMode": "Always"}},
    )
    assert (patched["spec"]["ipipMode"], patched["spec"]["vxlanMode"], patched["spec"]["cidr"]) == (
        "Never",
        "Always",
        "10.244.0.0/16",
    )


async def test_lease_lifecycle_and_conflict(lab: Lab) -> None:
    leases = client.CoordinationV1Api(lab.api_client())
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="netcheck-leader"),
        spec=client.V1LeaseSpec(holder_identity="bot-a", lease_duration_seconds=15),
    )
    created = await asyncio.to_thread(leases.create_namespaced_lease, "kube-system", lease)
    assert created.spec.holder_identity == "bot-a"
    with pytest.raises(ApiException) as exists:
        await asyncio.to_thread(leases.create_namespaced_lease, "kube-system", lease)
    assert exists.value.status == 409 and json.loads(exists.value.body)["reason"] == "AlreadyExists"
    created.spec.holder_identity = "bot-b"
    updated = await asyncio.to_thread(
        leases.replace_namespaced_lease, "netcheck-leader", "kube-system", created
    )
    assert updated.spec.holder_identity == "bot-b"
    assert updated.metadata.resource_version != created.metadata.resource_version
    created.spec.holder_identity = "bot-c"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        await asyncio.to_thread(leases.replace_namespaced_lease, "netcheck-leader", "kube-system", created)
    assert stale.value.status == 409
    assert json.loads(stale.value.body)["message"].startswith(
        'Operation cannot be fulfilled on leases.coordination.k8s.io "netcheck-leader": '
        "the object has been modified"
    )
    patched = await asyncio.to_thread(
        leases.patch_namespaced_lease, "netcheck-leader", "kube-system", {"spec": {"leaseTransitions": 2}}
    )
    assert patched.spec.lease_transitions == 2 and patched.spec.holder_identity == "bot-b"
    await asyncio.to_thread(leases.delete_namespaced_lease, "netcheck-leader", "kube-system")
    with pytest.raises(ApiException) as gone:
        await asyncio.to_thread(leases.read_namespaced_lease, "netcheck-leader", "kube-system")
    assert gone.value.status == 404
