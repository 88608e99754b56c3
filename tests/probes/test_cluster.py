"""Cluster, discovery and debug-pod transports against H2's API stand-in (lab/apiserver, in-process on
127.0.0.1 over TLS), through the official kubernetes client and a real kubeconfig file.

Covers: kubeconfig/context loading (and a bad kubeconfig -> ConfigError); discovery of the API
service, endpoints, nodes (InternalIP, podCIDR, Ready, annotations), Installation and
IPPools; config overrides win; Calico absent -> None/[]; ApiException translation (404, 403 with the
message, unreachable); merge and JSON patch of the Installation; debug pods: missing namespace
reported, pinned pod with labels/tolerations, exec stdout/stderr/exit code, command timeout, a pod
shared by two users is deleted by the last; owned pods: owner label and expiry annotation, renewed
while in use, leftovers deleted only when this process made them and no longer uses them or their
expiry passed (another live process's pod survives: two processes probe one node side by side); a
pod that never runs -> PodUnavailable and deleted; a NotReady node gets no attempt; the whole engine
wired by `bot.wiring.build_transports`.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from bot.config import Config
from bot.wiring import build_engine, build_transports
from probes.engine import UnknownNode
from probes.errors import (
    ClusterForbidden,
    ClusterNotFound,
    ClusterUnreachable,
    CommandTimeout,
    ConfigError,
    ConfigMissing,
    PodUnavailable,
)
from probes.facts import NodeFacts
from probes.model import Layer, Status, ok
from probes.registry import Registry, probe
from probes.transports.cluster import ClusterSettings, KubeCluster, load_api_client
from probes.transports.discovery import ClusterOverrides, discover
from probes.transports.owner import process_owner
from probes.transports.pod import DebugPods, DebugPodSettings, pod_manifest
from tests.lab.test_apiserver_support import ADMIN_TOKEN, READONLY_TOKEN, running_lab

WORKER2 = NodeFacts(name="worker2", internal_ip="127.0.0.2", ready=True)


def write_kubeconfig(path: Path, url: str, ca: Path, token: str, context: str = "lab") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "lab", "cluster": {"server": url, "certificate-authority": str(ca)}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "lab", "user": "u"}},
                     {"name": "other", "context": {"cluster": "lab", "user": "u"}}],
    }))
    return path


@pytest.fixture
async def lab(tmp_path):
    async with running_lab(tmp_path) as lab:
        yield lab


@pytest.fixture
async def kube(lab, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", lab.url, lab.ca, ADMIN_TOKEN)
    executor = ThreadPoolExecutor(max_workers=4)
    cluster = KubeCluster(load_api_client(ClusterSettings(kubeconfig=kubeconfig, context="lab")), executor,
                          request_timeout=5)
    yield cluster
    cluster.close()
    executor.shutdown(wait=False)


async def test_discovery(kube) -> None:
    facts = await discover(kube)
    assert (facts.api_service_ip, facts.api_service_port) == ("10.96.0.1", 443)
    assert [(e.ip, e.port) for e in facts.api_endpoints] == [("192.168.1.10", 6443)]
    assert facts.dns_service_ip is None  # kube-system is not read (RBAC); the config can name it
    stated = await discover(kube, ClusterOverrides(dns_service_ip="10.96.0.10"))
    assert stated.dns_service_ip == "10.96.0.10"
    assert [n.name for n in facts.nodes] == ["ghost", "master", "worker2"]
    worker2 = facts.node("worker2")
    assert (worker2.internal_ip, worker2.pod_cidr, worker2.ready) == ("127.0.0.2", "192.168.88.0/24", True)
    assert worker2.calico_ipv4_address == "192.168.1.105/24"
    assert facts.node("ghost").ready is False
    assert facts.installation.pod_mtu == 1450
    assert facts.installation.node_address_autodetection_v4 == {"firstFound": True}
    [pool] = facts.ippools
    assert (pool.cidr, pool.encapsulation, pool.nat_outgoing) == ("10.244.0.0/16", "ipip", True)


async def test_overrides_win(kube) -> None:
    overrides = ClusterOverrides(service_cidr="10.96.0.0/12", pod_cidr="10.244.0.0/16",
                                 api_service_ip="10.96.0.2", api_service_port=8443)
    facts = await discover(kube, overrides)
    assert (facts.api_service_ip, facts.api_service_port) == ("10.96.0.2", 8443)
    assert (facts.service_cidr, facts.cluster_pod_cidr) == ("10.96.0.0/12", "10.244.0.0/16")


def test_override_values_validated() -> None:
    with pytest.raises(ValueError, match="invalid CIDR"):
        ClusterOverrides(pod_cidr="10.244.0.1/16")


async def test_calico_absent(tmp_path) -> None:
    async with running_lab(tmp_path, installation=None, ippools=[]) as lab:
        kubeconfig = write_kubeconfig(tmp_path / "kc", lab.url, lab.ca, ADMIN_TOKEN)
        with ThreadPoolExecutor(2) as executor:
            kube = KubeCluster(load_api_client(ClusterSettings(kubeconfig=kubeconfig)), executor,
                               request_timeout=5)
            facts = await discover(kube)
            kube.close()
    assert facts.installation is None and facts.ippools == []


async def test_errors_are_translated(kube, lab, tmp_path) -> None:
    with pytest.raises(ClusterNotFound, match=r"get service default/nope: .*\(HTTP 404\)"):
        await kube.get_service("default", "nope")
    readonly = write_kubeconfig(tmp_path / "ro", lab.url, lab.ca, READONLY_TOKEN)
    with ThreadPoolExecutor(1) as executor:
        ro = KubeCluster(load_api_client(ClusterSettings(kubeconfig=readonly)), executor, request_timeout=5)
        with pytest.raises(ClusterForbidden, match=r"patch Installation default: .*forbidden.*\(HTTP 403\)"):
            await ro.patch_installation({"spec": {"calicoNetwork": {"mtu": 1400}}})
        ro.close()


async def test_unreachable_api(lab, tmp_path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:1", lab.ca, ADMIN_TOKEN)
    with ThreadPoolExecutor(1) as executor:
        kube = KubeCluster(load_api_client(ClusterSettings(kubeconfig=kubeconfig)), executor,
                           request_timeout=2)
        kube.api.configuration.retries = 0
        refused = r"^cannot reach the Kubernetes API at https://127\.0\.0\.1:1: connection refused$"
        with pytest.raises(ClusterUnreachable, match=refused):
            await kube.list_nodes()
        kube.close()


def test_bad_kubeconfig(tmp_path) -> None:
    with pytest.raises(ConfigMissing, match=r"kubeconfig .*missing does not exist"):
        load_api_client(ClusterSettings(kubeconfig=tmp_path / "missing"))
    path = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:1", tmp_path / "ca", "t")
    with pytest.raises(ConfigError, match="nope"):
        load_api_client(ClusterSettings(kubeconfig=path, context="nope"))


async def test_patch_installation_merge_and_json(kube) -> None:
    await kube.patch_installation({"spec": {"calicoNetwork": {"mtu": 1400}}})
    assert (await kube.get_installation())["spec"]["calicoNetwork"]["mtu"] == 1400
    await kube.patch_installation(
        [{"op": "replace", "path": "/spec/calicoNetwork/mtu", "value": 1380}], json_patch=True
    )
    assert (await kube.get_installation())["spec"]["calicoNetwork"]["mtu"] == 1380


async def _create_namespace(kube: KubeCluster, name: str = "netcheck") -> None:
    await kube.call("create namespace", kube.core.create_namespace, {"metadata": {"name": name}})


def pod_settings(**over) -> DebugPodSettings:
    return DebugPodSettings(**{"start_timeout": 5, "poll_interval": 0.1, "command_timeout": 5, **over})


async def test_missing_namespace_is_reported(kube) -> None:
    pods = DebugPods(kube, pod_settings())
    with pytest.raises(PodUnavailable, match="namespace 'netcheck' does not exist"):
        await pods.get(WORKER2)


async def test_debug_pod_lifecycle_and_exec(kube) -> None:
    await _create_namespace(kube)
    pods = DebugPods(kube, pod_settings())
    pod = await pods.get(WORKER2)
    raw = await kube.call("read pod", kube.core.read_namespaced_pod, pod.name, "netcheck")
    assert raw.spec.node_name == "worker2" and raw.spec.host_network in (False, None)
    assert raw.metadata.labels == {"app.kubernetes.io/managed-by": "netcheck", "netcheck/node": "worker2",
                                   "netcheck/owner": pods.owner}
    assert pods.owner == process_owner() and "netcheck/expires-at" in raw.metadata.annotations
    assert [t.operator for t in raw.spec.tolerations] == ["Exists"]
    assert pod.ip == "192.168.88.5"
    result = await pod.run("echo $NETCHECK_POD; echo oops >&2; exit 3")
    assert (result.stdout, result.stderr, result.exit_status) == ("worker2\n", "oops\n", 3)
    assert (await pod.run("true")).exit_status == 0
    with pytest.raises(CommandTimeout, match="timed out after 0.5 s"):
        await pod.run("sleep 1", timeout=0.5)
    await pods.release("worker2")
    with pytest.raises(ClusterNotFound):
        await kube.call("read pod", kube.core.read_namespaced_pod, pod.name, "netcheck")


async def test_concurrent_execs_do_not_hijack_other_calls(kube) -> None:
    """kubernetes.stream swaps the client's request function while an exec runs (see cluster.py)."""
    await _create_namespace(kube)
    pods = DebugPods(kube, pod_settings())
    pod = await pods.get(WORKER2)
    execs = [pod.run(f"sleep 0.3; echo {i}") for i in range(4)]
    reads = [kube.list_nodes() for _ in range(4)]
    results = await asyncio.gather(*execs, *reads)
    assert [r.stdout for r in results[:4]] == [f"{i}\n" for i in range(4)]
    assert all(len(nodes) == 3 for nodes in results[4:])
    await pods.release("worker2")  # a plain DELETE, not over WebSocket
    assert (await kube.call("list", kube.core.list_namespaced_pod, "netcheck")).items == []


async def _pod_names(kube: KubeCluster) -> set[str]:
    listed = await kube.call("list", kube.core.list_namespaced_pod, "netcheck")
    return {p.metadata.name for p in listed.items}


async def test_only_leftovers_nobody_owns_are_deleted_first(kube) -> None:
    await _create_namespace(kube)
    settings = pod_settings()
    now = datetime.now(UTC)
    mine = pod_manifest("worker2", settings, owner="me")  # made by this process, not in use any more
    expired = pod_manifest("worker2", settings, owner="gone", expires_at=now - timedelta(seconds=1))
    live = pod_manifest("worker2", settings, owner="other-live", expires_at=now + timedelta(minutes=2))
    legacy = pod_manifest("worker2", settings)  # an older netcheck: no owner, no expiry, created now
    legacy["metadata"]["labels"].pop("netcheck/owner")
    legacy["metadata"].pop("annotations")
    other_node = pod_manifest("master", settings, owner="gone", expires_at=now - timedelta(seconds=1))
    for manifest in (mine, expired, live, legacy, other_node):
        await kube.call("create", kube.core.create_namespaced_pod, "netcheck", manifest)
    pods = DebugPods(kube, settings, owner="me")
    pod = await pods.get(WORKER2)
    kept = {m["metadata"]["name"] for m in (live, legacy, other_node)}
    assert await _pod_names(kube) == kept | {pod.name}  # the live owner's pod survives
    await pods.aclose()


async def test_two_processes_probe_one_node_without_deleting_each_others_pod(kube) -> None:
    await _create_namespace(kube)
    cli, bot = DebugPods(kube, pod_settings(), owner="cli-1"), DebugPods(kube, pod_settings(), owner="bot-2")
    cli_pod = await cli.get(WORKER2)
    bot_pod = await bot.get(WORKER2)  # looks for leftovers on worker2: the CLI's pod is not one
    assert cli_pod.name != bot_pod.name and await _pod_names(kube) == {cli_pod.name, bot_pod.name}
    assert (await cli_pod.run("echo still here")).stdout == "still here\n"
    await cli.aclose()
    assert await _pod_names(kube) == {bot_pod.name}
    await bot.aclose()


async def test_a_pod_in_use_is_renewed(kube) -> None:
    await _create_namespace(kube)
    pods = DebugPods(kube, pod_settings(lease_duration=3))

    async def expiry(name: str) -> str:
        raw = await kube.call("read pod", kube.core.read_namespaced_pod, name, "netcheck")
        return raw.metadata.annotations["netcheck/expires-at"]

    pod = await pods.get(WORKER2)
    first = await expiry(pod.name)
    await asyncio.sleep(1.5)  # renewed every lease_duration / 3 = 1 s
    renewed = await expiry(pod.name)
    assert renewed != first and datetime.fromisoformat(renewed) > datetime.now(UTC)
    await pods.aclose()


async def test_shared_pod_deleted_by_last_user(kube) -> None:
    await _create_namespace(kube)
    pods = DebugPods(kube, pod_settings())
    pod = await pods.get(WORKER2)
    assert await pods.get(WORKER2) is pod  # e.g. worker2's own check and another node's peer check
    await pods.release("worker2")
    await kube.call("read pod", kube.core.read_namespaced_pod, pod.name, "netcheck")  # still there
    await pods.release("worker2")
    with pytest.raises(ClusterNotFound):
        await kube.call("read pod", kube.core.read_namespaced_pod, pod.name, "netcheck")


async def test_pod_that_never_runs(kube) -> None:
    await _create_namespace(kube)
    pods = DebugPods(kube, pod_settings(start_timeout=0.6))
    with pytest.raises(PodUnavailable, match=r"not Running after 0.6 s \(Pending\)"):
        await pods.get(NodeFacts(name="ghost", ready=True))
    await pods.aclose()  # the pod that did not start is deleted in the background; aclose waits for it
    left = await kube.call("list", kube.core.list_namespaced_pod, "netcheck")
    assert left.items == []


async def test_not_ready_node_gets_no_pod_attempt(kube) -> None:
    await _create_namespace(kube)
    pods = DebugPods(kube, pod_settings())
    with pytest.raises(PodUnavailable, match="node worker2 is NotReady"):
        await pods.get(WORKER2.model_copy(update={"ready": False}))
    assert (await kube.call("list", kube.core.list_namespaced_pod, "netcheck")).items == []


async def test_engine_wired_from_config(lab, tmp_path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", lab.url, lab.ca, ADMIN_TOKEN)
    config = Config(kubeconfig=kubeconfig, debug_pod=pod_settings(), ssh={"known_hosts": tmp_path / "kh"})
    reg = Registry()

    @probe(id="in-pod", layer=Layer.POD_APP, needs={"pod"}, registry=reg)
    async def in_pod(ctx):
        return ok((await ctx.pod.run("echo $NETCHECK_POD")).stdout.strip())

    @probe(id="on-host", layer=Layer.HOST_ROUTE, needs={"host"}, registry=reg)
    async def on_host(ctx):
        raise AssertionError("no known_hosts: must be skipped")

    engine = build_engine(config, transports=build_transports(config), registry=reg)
    try:
        await _create_namespace(engine.cluster)
        assert await engine.node_names() == ["ghost", "master", "worker2"]
        report = await engine.check("worker2")
        assert report.finding("in-pod").summary == "worker2"
        assert report.finding("on-host").status is Status.SKIP
        assert "known_hosts file" in report.finding("ssh").summary
        with pytest.raises(UnknownNode, match="did you mean worker2"):
            await engine.check("worker3")
        pods_left = await engine.cluster.call("list", engine.cluster.core.list_namespaced_pod, "netcheck")
        assert pods_left.items == []  # released after the check
    finally:
        await engine.aclose()
    await asyncio.sleep(0)


def test_client_is_official(kube) -> None:
    assert isinstance(kube.api, client.ApiClient)


def test_exec_handshake_error_is_translated_by_its_reason() -> None:
    from kubernetes.client.rest import ApiException

    from probes.transports.cluster import api_error

    exc = ApiException(status=0, reason="Handshake status 403 Forbidden -+-+- {...} -+-+- b''")
    error = api_error(exc, "exec in pod netcheck/x")
    assert isinstance(error, ClusterForbidden) and error.status == 403
    assert str(error).startswith("exec in pod netcheck/x: Handshake status 403 Forbidden")


@pytest.mark.parametrize(
    ("status_text", "code"),
    [
        ('{"metadata":{},"status":"Success"}', 0),
        ('{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode",'
         '"message":"3"}]}}', 3),
        ('{"status":"Failure","message":"command not found"}', -1),  # no causes: do not crash
        ("", -1),
        ("{not yaml", -1),
    ],
)
def test_exit_status_read_defensively(status_text: str, code: int) -> None:
    from probes.transports.pod import exit_status_from

    assert exit_status_from(status_text) == code
