"""Cluster, discovery and debug-pod transports against H2's API stand-in (lab/apiserver, in-process on
127.0.0.1 over TLS), through the official kubernetes package's asyncio client (`kubernetes.aio`) and a
real kubeconfig file.

Covers: kubeconfig/context loading (a missing kubeconfig -> ConfigMissing; an
unusable CA file or an unknown context -> ConfigError); discovery of the API
service, endpoints, nodes (InternalIP, podCIDR, Ready, annotations), Installation and
IPPools; config overrides win; Calico absent -> None/[]; ApiException translation (404, 403 with the
message, unreachable); merge and JSON patch of the Installation; debug pods: missing namespace
reported, pinned pod with labels/tolerations, exec stdout/stderr/exit code (also of a batch in one
exec), command timeout, a pod
shared by two users is deleted by the last; owned pods: owner label and expiry annotation, renewed
while in use, leftovers deleted only when this process made them and no longer uses them or their
expiry passed (another live process's pod survives: two processes probe one node side by side); a
pod that never runs -> PodUnavailable and deleted; a warm pod handed to the node's next check within
`keep_warm`, never across images, deleted when the window ends or on close, none handed over after
`retire_warm` (a busy one deleted by its last user); a NotReady node gets no
attempt; the whole engine wired by `bot.wiring.build_transports`; execs and other calls share the
event loop (no threads).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes.aio import client

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
from probes.transports.cluster import ClusterSettings, KubeCluster, load_configuration
from probes.transports.discovery import ClusterOverrides, discover
from probes.transports.owner import process_owner
from probes.transports.pod import DebugPods, KubePodExec, pod_manifest
from tests.kubeaccess import WORKER2, admin_cluster, create_namespace, pod_settings, write_kubeconfig
from tests.lab.test_apiserver_support import ADMIN_TOKEN, READONLY_TOKEN, running_lab


@pytest.fixture
async def lab(tmp_path):
    async with running_lab(tmp_path) as lab:
        yield lab


@pytest.fixture
async def kube(lab, tmp_path):
    async with admin_cluster(lab.url, lab.ca, tmp_path) as cluster:
        yield cluster


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
        kube = KubeCluster(ClusterSettings(kubeconfig=kubeconfig, request_timeout=5))
        facts = await discover(kube)
        await kube.aclose()
    assert facts.installation is None and facts.ippools == []


async def test_errors_are_translated(kube, lab, tmp_path) -> None:
    with pytest.raises(ClusterNotFound, match=r"get service default/nope: .*\(HTTP 404\)"):
        await kube.get_service("default", "nope")
    readonly = write_kubeconfig(tmp_path / "ro", lab.url, lab.ca, READONLY_TOKEN)
    ro = KubeCluster(ClusterSettings(kubeconfig=readonly, request_timeout=5))
    with pytest.raises(ClusterForbidden, match=r"patch Installation default: .*forbidden.*\(HTTP 403\)"):
        await ro.patch_installation({"spec": {"calicoNetwork": {"mtu": 1400}}})
    await ro.aclose()


async def test_unreachable_api(lab, tmp_path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:1", lab.ca, ADMIN_TOKEN)
    kube = KubeCluster(ClusterSettings(kubeconfig=kubeconfig, request_timeout=2))
    refused = r"^cannot reach the Kubernetes API at https://127\.0\.0\.1:1: connection refused$"
    with pytest.raises(ClusterUnreachable, match=refused):
        await kube.list_nodes()
    await kube.aclose()


async def test_bad_kubeconfig(tmp_path) -> None:
    with pytest.raises(ConfigMissing, match=r"kubeconfig .*missing does not exist"):
        await load_configuration(ClusterSettings(kubeconfig=tmp_path / "missing"))
    empty_ca = tmp_path / "empty-ca.crt"
    empty_ca.write_text("")
    cluster = KubeCluster(ClusterSettings(
        kubeconfig=write_kubeconfig(tmp_path / "kc-empty-ca", "https://127.0.0.1:1", empty_ca, "t")))
    with pytest.raises(ConfigError, match=rf"^kubeconfig: cannot use the TLS files {empty_ca}: "):
        await cluster.list_nodes()
    path = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:1", tmp_path / "ca", "t")
    with pytest.raises(ConfigError, match="nope"):
        await load_configuration(ClusterSettings(kubeconfig=path, context="nope"))


async def test_patch_installation_merge_and_json(kube) -> None:
    await kube.patch_installation({"spec": {"calicoNetwork": {"mtu": 1400}}})
    assert (await kube.get_installation())["spec"]["calicoNetwork"]["mtu"] == 1400
    await kube.patch_installation(
        [{"op": "replace", "path": "/spec/calicoNetwork/mtu", "value": 1380}], json_patch=True
    )
    assert (await kube.get_installation())["spec"]["calicoNetwork"]["mtu"] == 1380


async def test_missing_namespace_is_reported(kube) -> None:
    pods = DebugPods(kube, pod_settings())
    with pytest.raises(PodUnavailable, match="namespace 'netcheck' does not exist"):
        await pods.get(WORKER2)


async def test_debug_pod_lifecycle_and_exec(kube) -> None:
    await create_namespace(kube)
    pods = DebugPods(kube, pod_settings())
    pod = await pods.get(WORKER2)
    raw = await kube.get_pod("netcheck", pod.name)
    assert raw["spec"]["nodeName"] == "worker2" and raw["spec"].get("hostNetwork") in (False, None)
    assert raw["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "netcheck",
                                         "netcheck/node": "worker2", "netcheck/owner": pods.owner}
    assert pods.owner == process_owner() and "netcheck/expires-at" in raw["metadata"]["annotations"]
    assert [t["operator"] for t in raw["spec"]["tolerations"]] == ["Exists"]
    assert pod.ip == "192.168.88.5"
    result = await pod.run("echo $NETCHECK_POD; echo oops >&2; exit 3")
    assert (result.stdout, result.stderr, result.exit_status) == ("worker2\n", "oops\n", 3)
    assert (await pod.run("true")).exit_status == 0
    batch = await pod.run_batch(["echo $NETCHECK_POD; echo oops >&2; exit 3", "printf x", "exit 0"])
    assert [(r.stdout, r.stderr, r.exit_status) for r in batch] == [
        ("worker2\n", "oops\n", 3), ("x", "", 0), ("", "", 0)]  # one exec, each command's own result
    with pytest.raises(CommandTimeout, match="timed out after 0.5 s"):
        await pod.run("sleep 1", timeout=0.5)
    await pods.release("worker2")
    with pytest.raises(ClusterNotFound):
        await kube.get_pod("netcheck", pod.name)



async def test_pod_commands_take_turns_in_one_resident_shell(kube) -> None:
    """Commands one after another share one exec WebSocket's `sh` (its PID stays), each as if alone;
    one past its timeout or one that kills the shell leaves a new shell for the next command."""
    await create_namespace(kube)
    pods = DebugPods(kube, pod_settings())
    pod = await pods.get(WORKER2)
    first = await pod.run("echo $$; LEFT=over; cd /; exit 5")
    second = await pod.run('echo $$; echo "${LEFT:-unset}"; pwd')
    shell_pid, left, cwd = second.stdout.splitlines()
    assert (first.exit_status, first.stdout.strip()) == (5, shell_pid)
    assert (left, cwd != "/") == ("unset", True)
    with pytest.raises(CommandTimeout):
        await pod.run("sleep 2", timeout=0.3)
    after_timeout = await pod.run("echo $$")
    killed = await pod.run("kill -9 $$")
    assert killed.exit_status == 128 + 9
    assert len({shell_pid, after_timeout.stdout.strip(), (await pod.run("echo $$")).stdout.strip()}) == 3
    one_off = KubePodExec(kube, pod.name, pod.namespace, pod.ip, pod_settings(), keep_shells=False)
    assert (await one_off.run("echo $$")).stdout != (await one_off.run("echo $$")).stdout  # `kubectl exec`
    await pods.release("worker2")


async def test_an_idle_pod_shell_that_ended_is_replaced_and_the_command_runs_once(kube, tmp_path) -> None:
    """As over SSH: the stand-in runs the pod's shell on this machine, killed here by the PID it
    reported; the next command runs in a new shell, once."""
    await create_namespace(kube)
    pods = DebugPods(kube, pod_settings())
    pod = await pods.get(WORKER2)
    ran = tmp_path / "ran"
    os.kill(int((await pod.run("echo $$")).stdout), signal.SIGKILL)
    result = await pod.run(f"echo once >> {ran}; echo done")  # no await in between: still idle
    assert (result.exit_status, result.stdout, ran.read_text()) == (0, "done\n", "once\n")
    await pods.release("worker2")

async def test_concurrent_execs_and_calls_share_the_event_loop(kube) -> None:
    """Execs (WebSocket) and plain calls run at once on this thread: no worker threads appear."""
    await create_namespace(kube)
    pods = DebugPods(kube, pod_settings())
    pod = await pods.get(WORKER2)
    before = {t.ident for t in threading.enumerate()}
    execs = [pod.run(f"sleep 0.3; echo {i}") for i in range(4)]
    reads = [kube.list_nodes() for _ in range(4)]
    results = await asyncio.gather(*execs, *reads)
    assert [r.stdout for r in results[:4]] == [f"{i}\n" for i in range(4)]
    assert all(len(nodes) == 3 for nodes in results[4:])
    # the in-process stand-in's subprocess watchers ("asyncio-waitpid-N", alive while the resident
    # shells run) are its own; the client made none
    new = [t.name for t in threading.enumerate() if t.ident not in before and "waitpid" not in t.name]
    assert new == []
    await pods.release("worker2")  # a plain DELETE, not over WebSocket
    assert await kube.list_pods(namespace="netcheck") == []


async def _pod_names(kube: KubeCluster) -> set[str]:
    return {p["metadata"]["name"] for p in await kube.list_pods(namespace="netcheck")}


async def test_only_leftovers_nobody_owns_are_deleted_first(kube) -> None:
    await create_namespace(kube)
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
        await kube.create_pod("netcheck", manifest)
    pods = DebugPods(kube, settings, owner="me")
    pod = await pods.get(WORKER2)
    kept = {m["metadata"]["name"] for m in (live, legacy, other_node)}
    assert await _pod_names(kube) == kept | {pod.name}  # the live owner's pod survives
    await pods.aclose()


async def test_two_processes_probe_one_node_without_deleting_each_others_pod(kube) -> None:
    await create_namespace(kube)
    cli, bot = DebugPods(kube, pod_settings(), owner="cli-1"), DebugPods(kube, pod_settings(), owner="bot-2")
    cli_pod = await cli.get(WORKER2)
    bot_pod = await bot.get(WORKER2)  # looks for leftovers on worker2: the CLI's pod is not one
    assert cli_pod.name != bot_pod.name and await _pod_names(kube) == {cli_pod.name, bot_pod.name}
    assert (await cli_pod.run("echo still here")).stdout == "still here\n"
    await cli.aclose()
    assert await _pod_names(kube) == {bot_pod.name}
    await bot.aclose()


async def test_a_pod_in_use_is_renewed(kube) -> None:
    await create_namespace(kube)
    pods = DebugPods(kube, pod_settings(lease_duration=3))

    async def expiry(name: str) -> str:
        raw = await kube.get_pod("netcheck", name)
        return raw["metadata"]["annotations"]["netcheck/expires-at"]

    pod = await pods.get(WORKER2)
    first = await expiry(pod.name)
    await asyncio.sleep(1.5)  # renewed every lease_duration / 3 = 1 s
    renewed = await expiry(pod.name)
    assert renewed != first and datetime.fromisoformat(renewed) > datetime.now(UTC)
    await pods.aclose()


async def test_shared_pod_deleted_by_last_user(kube) -> None:
    await create_namespace(kube)
    pods = DebugPods(kube, pod_settings())
    pod = await pods.get(WORKER2)
    assert await pods.get(WORKER2) is pod  # e.g. worker2's own check and another node's peer check
    await pods.release("worker2")
    await kube.get_pod("netcheck", pod.name)  # still there
    await pods.release("worker2")
    with pytest.raises(ClusterNotFound):
        await kube.get_pod("netcheck", pod.name)


async def test_a_warm_pod_is_handed_over_then_deleted(kube) -> None:
    await create_namespace(kube)
    pods = DebugPods(kube, pod_settings(keep_warm=0.6))
    first = await pods.get(WORKER2)
    assert first.reused is False
    await pods.release("worker2")
    again = await pods.get(WORKER2)  # the next check of the node: no new pod, no start
    assert again is first and again.reused is True and await _pod_names(kube) == {first.name}
    await pods.release("worker2")
    await asyncio.sleep(1.0)  # the window ends: deleted
    assert await _pod_names(kube) == set()
    fresh = await pods.get(WORKER2)
    assert fresh.name != first.name and fresh.reused is False
    await pods.release("worker2")
    pods.settings = pods.settings.model_copy(update={"image": "another/image:1"})
    other = await pods.get(WORKER2)  # never across images: a new pod, the warm one deleted first
    assert other.name != fresh.name and other.image == "another/image:1"
    assert await _pod_names(kube) == {other.name}
    await pods.release("worker2")
    await pods.aclose()  # netcheck stops: warm pods go at once
    assert await _pod_names(kube) == set()


async def test_retired_pods_are_not_handed_over(kube) -> None:
    await create_namespace(kube)
    pods = DebugPods(kube, pod_settings(keep_warm=30))
    busy = await pods.get(WORKER2)
    await pods.retire_warm()  # e.g. the pod MTU changed: pods started before do not show it
    assert await _pod_names(kube) == {busy.name}  # in use: it stays until its last user is done
    await pods.release("worker2")  # then it is deleted, not kept warm
    assert await _pod_names(kube) == set()
    warm = await pods.get(WORKER2)
    assert warm.name != busy.name and warm.reused is False
    await pods.release("worker2")
    assert await _pod_names(kube) == {warm.name}  # pods started after it are kept warm again
    await pods.retire_warm()
    assert await _pod_names(kube) == set()  # a warm one goes at once
    fresh = await pods.get(WORKER2)
    assert fresh.name != warm.name and fresh.reused is False
    await pods.aclose()


async def test_pod_that_never_runs(kube) -> None:
    await create_namespace(kube)
    pods = DebugPods(kube, pod_settings(start_timeout=0.6))
    with pytest.raises(PodUnavailable, match=r"not Running after 0.6 s \(Pending\)"):
        await pods.get(NodeFacts(name="ghost", ready=True))
    await pods.aclose()  # the pod that did not start is deleted in the background; aclose waits for it
    assert await kube.list_pods(namespace="netcheck") == []


async def test_not_ready_node_gets_no_pod_attempt(kube) -> None:
    await create_namespace(kube)
    pods = DebugPods(kube, pod_settings())
    with pytest.raises(PodUnavailable, match="node worker2 is NotReady"):
        await pods.get(WORKER2.model_copy(update={"ready": False}))
    assert await kube.list_pods(namespace="netcheck") == []


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
        await create_namespace(engine.cluster)
        assert await engine.node_names() == ["ghost", "master", "worker2"]
        report = await engine.check("worker2")
        assert report.finding("in-pod").summary == "worker2"
        assert report.finding("on-host").status is Status.SKIP
        assert "known_hosts file" in report.finding("ssh").summary
        with pytest.raises(UnknownNode, match="did you mean worker2"):
            await engine.check("worker3")
        assert await engine.cluster.list_pods(namespace="netcheck") == []  # released after the check
    finally:
        await engine.aclose()
    await asyncio.sleep(0)


async def test_client_is_official(kube) -> None:
    assert isinstance(await kube.api(), client.ApiClient)


def test_exec_handshake_error_is_translated_by_its_status() -> None:
    from aiohttp import WSServerHandshakeError

    exc = WSServerHandshakeError(None, (), status=403, message="Invalid response status")
    cluster = KubeCluster(ClusterSettings())
    error = cluster.translate(exc, "exec in pod netcheck/x")
    assert isinstance(error, ClusterForbidden) and error.status == 403
    assert str(error) == "exec in pod netcheck/x: Invalid response status (HTTP 403)"


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
