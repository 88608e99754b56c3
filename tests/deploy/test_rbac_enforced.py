"""The shipped RBAC, enforced: the API stand-in decides every request of the bot's ServiceAccount
token with `lab/apiserver/rbac.py` built from deploy/kubernetes/rbac.yaml (and, identically, from the
Helm rendering).

Covers: every API request netcheck makes (the table below, one line per call site kind) is allowed;
close neighbours are denied (other namespaces' pods, Secrets, other Lease/Installation names, node
writes); removing any single rule from the manifest denies at least one request of the table — so
every rule is needed; the matcher itself (subresources, resourceNames never matching a nameless
create/list, RoleBinding namespace scope, Group/User subjects); and over real HTTPS with the official
client: the leader Lease is acquired with the bot's token, a 403 comes back for a Secret read and for
a Lease in another namespace as `ClusterForbidden` naming the resource, and with the leases rules removed
leader election fails with that 403 instead of electing anyone.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bot.ops.leader import LeaderElector
from bot.ops.settings import OpsSettings
from lab.apiserver import ApiServerConfig, serve
from lab.apiserver.auth import Request, User
from lab.apiserver.rbac import RbacAuthorizer, rule_allows, service_account_groups, service_account_user
from probes.errors import ClusterForbidden
from probes.transports.cluster import KubeCluster
from probes.transports.leases import KubernetesLeaseStore
from tests.deploy.conftest import KUSTOMIZE_DIR, load_all
from tests.lab.test_apiserver_support import ADMIN_TOKEN, kubelet_standin, make_tls
from tests.lab.test_apiserver_support import base_config as stand_in_config

BOT_TOKEN = "netcheck-sa-token"
BOT = User(service_account_user("netcheck", "netcheck"), service_account_groups("netcheck"), False)


def req(verb: str, resource: str, namespace: str = "", name: str = "", *, group: str = "",
        sub: str = "") -> Request:
    return Request(verb, group, resource, sub, namespace, name)


BOT_REQUESTS = {
    "list nodes (facts, all, join watcher)": req("list", "nodes"),
    "watch nodes (join watcher)": req("watch", "nodes"),
    "read the Installation": req("get", "installations", name="default", group="operator.tigera.io"),
    "calico-mtu fix": req("patch", "installations", name="default", group="operator.tigera.io"),
    "list IP pools": req("list", "ippools", group="crd.projectcalico.org"),
    "API service IP": req("get", "services", "default", "kubernetes"),
    "API endpoints": req("get", "endpoints", "default", "kubernetes"),
    "create debug pod": req("create", "pods", "netcheck"),
    "wait for debug pod": req("get", "pods", "netcheck", "netcheck-debug-worker2"),
    "watch the debug pod start": req("watch", "pods", "netcheck"),
    "find leftover debug pods": req("list", "pods", "netcheck"),
    "delete debug pod": req("delete", "pods", "netcheck", "netcheck-debug-worker2"),
    "exec in debug pod": req("create", "pods", "netcheck", "netcheck-debug-worker2", sub="exec"),
    "exec over WebSocket (GET)": req("get", "pods", "netcheck", "netcheck-debug-worker2", sub="exec"),
    "kubelet-port probe (pod log)": req("get", "pods", "netcheck", "netcheck-debug-worker2", sub="log"),
    "create the Lease": req("create", "leases", "netcheck", group="coordination.k8s.io"),
    "read the Lease": req("get", "leases", "netcheck", "netcheck-leader", group="coordination.k8s.io"),
    "renew the Lease": req("update", "leases", "netcheck", "netcheck-leader", group="coordination.k8s.io"),
    "calico-mtu: the calico-node rollout": req("get", "daemonsets", "calico-system", "calico-node",
                                               group="apps"),
    "calico-mtu: TigeraStatus calico": req("get", "tigerastatuses", name="calico",
                                           group="operator.tigera.io"),
    "calico-mtu: calico-node pods and pods on the node": req("list", "pods"),
    "take a node's fix lock": req("get", "leases", "netcheck", "netcheck-fix-worker2",
                                  group="coordination.k8s.io"),
    "hold a node's fix lock": req("update", "leases", "netcheck", "netcheck-fix-worker2",
                                  group="coordination.k8s.io"),
}

DENIED = {
    "pods elsewhere": req("create", "pods", "kube-system"),
    "exec elsewhere": req("create", "pods", "kube-system", "calico-node-x", sub="exec"),
    "secrets": req("get", "secrets", "netcheck", "netcheck-slack"),
    "node writes": req("patch", "nodes", name="worker2"),
    "single node reads": req("get", "nodes", name="worker2"),
    "watch pods in other namespaces": req("watch", "pods", "default"),
    "other services in default": req("get", "services", "default", "my-app"),
    "list services": req("list", "services", "default"),
    "delete the Lease": req("delete", "leases", "netcheck", "netcheck-leader", group="coordination.k8s.io"),
    "Lease in kube-system": req(
        "get", "leases", "kube-system", "netcheck-leader", group="coordination.k8s.io"
    ),
    "other Installation": req("patch", "installations", name="other", group="operator.tigera.io"),
    "IP pool writes": req("patch", "ippools", name="default-ipv4-ippool", group="crd.projectcalico.org"),
    "pod status": req("update", "pods", "netcheck", "netcheck-debug-worker2", sub="status"),
    "read a pod elsewhere": req("get", "pods", "kube-system", "coredns-x"),
    "pod logs elsewhere": req("get", "pods", "kube-system", "coredns-x", sub="log"),
    "DaemonSet writes": req("patch", "daemonsets", "calico-system", "calico-node", group="apps"),
    "other DaemonSets": req("get", "daemonsets", "kube-system", "kube-proxy", group="apps"),
    "other TigeraStatus": req("get", "tigerastatuses", name="apiserver", group="operator.tigera.io"),
}


def shipped() -> list[dict]:
    return load_all((KUSTOMIZE_DIR / "rbac.yaml").read_text())


def without_rule(objects: list[dict], kind: str, name: str, index: int) -> list[dict]:
    changed = copy.deepcopy(objects)
    (role,) = [o for o in changed if o["kind"] == kind and o["metadata"]["name"] == name]
    del role["rules"][index]
    return changed


def all_rules() -> list[tuple[str, str, int]]:
    roles = [o for o in shipped() if "rules" in o]
    return [(o["kind"], o["metadata"]["name"], i) for o in roles for i in range(len(o["rules"]))]


def test_shipped_rules_allow_every_bot_request():
    authorizer = RbacAuthorizer.from_manifests(shipped())
    refused = [what for what, request in BOT_REQUESTS.items() if not authorizer.allows(BOT, request)]
    assert refused == []


def test_helm_rendering_authorizes_identically(helm):
    from tests.deploy.test_helm import render

    chart = RbacAuthorizer.from_manifests(render(helm))
    base = RbacAuthorizer.from_manifests(shipped())
    for request in [*BOT_REQUESTS.values(), *DENIED.values()]:
        assert chart.allows(BOT, request) == base.allows(BOT, request), request


def moved(request: Request, namespace: str, lease: str) -> Request:
    """The same request by the bot installed in `namespace` (its own namespace moves, default stays)."""
    own = request.namespace == "netcheck"
    return Request(request.verb, request.group, request.resource, request.subresource,
                   namespace if own else request.namespace,
                   lease if request.name == "netcheck-leader" else request.name)


def test_any_namespace_authorizes_the_same(helm, tmp_path):
    """Installed in "platform" (helm release "ops"; kustomize per its namespace.yaml): the bot's own
    ServiceAccount there gets every request, moved to that namespace, and none of the neighbours."""
    from tests.deploy.conftest import kustomize_in_namespace
    from tests.deploy.test_helm import render

    for objects, account, lease in (
        (render(helm, namespace="platform", release="ops"), "ops-netcheck", "ops-netcheck-leader"),
        (kustomize_in_namespace(tmp_path, "platform"), "netcheck", "netcheck-leader"),
    ):
        authorizer = RbacAuthorizer.from_manifests(objects)
        bot = User(service_account_user("platform", account), service_account_groups("platform"), False)
        refused = [what for what, request in BOT_REQUESTS.items()
                   if not authorizer.allows(bot, moved(request, "platform", lease))]
        assert refused == [], account
        allowed = [what for what, request in DENIED.items()
                   if authorizer.allows(bot, moved(request, "platform", lease))]
        assert allowed == [], account
        assert not authorizer.allows(BOT, BOT_REQUESTS["create debug pod"])  # netcheck:netcheck is nobody


def test_neighbours_are_denied():
    authorizer = RbacAuthorizer.from_manifests(shipped())
    allowed = [what for what, request in DENIED.items() if authorizer.allows(BOT, request)]
    assert allowed == []
    stranger = User(service_account_user("default", "default"), service_account_groups("default"), False)
    assert not authorizer.allows(stranger, BOT_REQUESTS["list nodes (facts, all, join watcher)"])


@pytest.mark.parametrize(("kind", "name", "index"), all_rules())
def test_every_rule_is_needed(kind, name, index):
    authorizer = RbacAuthorizer.from_manifests(without_rule(shipped(), kind, name, index))
    refused = [what for what, request in BOT_REQUESTS.items() if not authorizer.allows(BOT, request)]
    assert refused, f"rule {index} of {kind}/{name} is not needed by any bot request"


def test_matcher_follows_kubernetes_semantics():
    assert rule_allows({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]},
                       req("get", "pods", "ns", "p", sub="log"))
    assert not rule_allows({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
                           req("get", "pods", "ns", "p", sub="log"))
    assert rule_allows({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/exec"]},
                       req("create", "pods", "ns", "p", sub="exec"))
    named = {"verbs": ["create", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}
    assert not rule_allows(named, req("create", "pods", "ns"))  # create carries no name
    assert not rule_allows(named, req("list", "pods", "ns"))
    objects = [
        {"kind": "ClusterRole", "metadata": {"name": "reader"},
         "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]},
        {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "team"},
         "roleRef": {"kind": "ClusterRole", "name": "reader"},
         "subjects": [{"kind": "Group", "name": "devs"}]},
    ]
    authorizer = RbacAuthorizer.from_manifests(objects)
    dev = User("alice", ("devs",), False)
    assert authorizer.allows(dev, req("get", "configmaps", "team", "x"))
    # A RoleBinding grants in its own namespace only.
    assert not authorizer.allows(dev, req("get", "configmaps", "other", "x"))
    assert not authorizer.allows(User("bob", (), False), req("get", "configmaps", "team", "x"))


async def _stand_in(tmp: Path, rbac_objects: list[dict]):
    ca, server = make_tls(tmp / "tls")
    kubelet = kubelet_standin(server)
    kubelet_port = await kubelet.__aenter__()
    data = stand_in_config(server, kubelet_port, tmp)
    data["tokens"][BOT_TOKEN] = {"user": BOT.name, "groups": list(BOT.groups)}
    authorizer = RbacAuthorizer.from_manifests(rbac_objects)
    running = serve(ApiServerConfig.model_validate(data), authorizer)
    runner = await running.__aenter__()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}"

    def api(token: str) -> client.ApiClient:
        configuration = client.Configuration(host=url)
        configuration.ssl_ca_cert = str(ca.cert)
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(configuration)

    namespace = client.V1Namespace(metadata=client.V1ObjectMeta(name="netcheck"))
    await asyncio.to_thread(client.CoreV1Api(api(ADMIN_TOKEN)).create_namespace, namespace)

    async def close() -> None:
        await running.__aexit__(None, None, None)
        await kubelet.__aexit__(None, None, None)

    api.url, api.ca = url, ca.cert  # type: ignore[attr-defined]  (netcheck's own client, below)
    return api, authorizer, close


def bot_cluster(api, opened: list[KubeCluster]) -> KubeCluster:
    """netcheck's asyncio client with the bot's token (what its Lease store uses), added to `opened`
    for the test to close (its HTTP session would otherwise be left to the garbage collector)."""
    cluster = KubeCluster.for_token(api.url, api.ca, BOT_TOKEN)
    opened.append(cluster)
    return cluster


SETTINGS = OpsSettings(lease_duration=1.0, renew_deadline=0.6, retry_period=0.1)


async def test_over_https_with_the_bot_token(tmp_path):
    api, authorizer, close = await _stand_in(tmp_path, shipped())
    opened: list[KubeCluster] = []
    try:
        core = client.CoreV1Api(api(BOT_TOKEN))
        nodes = await asyncio.to_thread(core.list_node)
        assert {n.metadata.name for n in nodes.items} >= {"master", "worker2"}
        with pytest.raises(ApiException) as denied:
            await asyncio.to_thread(core.read_namespaced_pod, "calico-node-x", "kube-system")
        assert denied.value.status == 403
        message = json.loads(denied.value.body)["message"]
        assert 'cannot get resource "pods"' in message and '"kube-system"' in message
        assert BOT.name in message

        store = KubernetesLeaseStore(bot_cluster(api, opened), "netcheck")
        elector = LeaderElector(store, "replica-a", settings=SETTINGS)
        assert await elector.try_acquire_or_renew()
        assert await elector.try_acquire_or_renew()  # renewal: get + update on netcheck-leader
        elsewhere = LeaderElector(KubernetesLeaseStore(bot_cluster(api, opened), "kube-system"), "x",
                                  settings=SETTINGS)
        with pytest.raises(ClusterForbidden, match="leases"):
            await elsewhere.try_acquire_or_renew()
    finally:
        for cluster in opened:
            await cluster.aclose()
        await close()
    assert [(d.verb, d.resource, d.namespace, d.name) for d in authorizer.denials] == [
        ("get", "pods", "kube-system", "calico-node-x"), ("get", "leases", "kube-system", "netcheck-leader")
    ]


async def test_without_the_lease_rules_nobody_leads_and_the_403_is_clear(tmp_path):
    objects = shipped()
    (role,) = [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "netcheck"]
    role["rules"] = [r for r in role["rules"] if "leases" not in r["resources"]]
    api, _authorizer, close = await _stand_in(tmp_path, objects)
    opened: list[KubeCluster] = []
    try:
        elector = LeaderElector(KubernetesLeaseStore(bot_cluster(api, opened), "netcheck"), "a",
                                settings=SETTINGS)
        with pytest.raises(ClusterForbidden) as denied:
            await elector.try_acquire_or_renew()
        assert "403" in str(denied.value) and "leases" in str(denied.value)
        task = asyncio.create_task(elector.run())
        await asyncio.sleep(0.5)
        assert not elector.is_leader
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        for cluster in opened:
            await cluster.aclose()
        await close()
