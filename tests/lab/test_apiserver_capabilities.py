"""The API stand-in runs pod exec with the container's capabilities, as a container runtime would
(lab/apiserver/capabilities.py), so the debug pod's manifest is tested for what its commands need.

Covers, through the real DebugPods transport and exec over WebSocket: netcheck's debug pod holds
NET_RAW and nothing else (CapEff) and ping works in it; a pod whose manifest drops NET_RAW too cannot
ping ("Operation not permitted") — NET_RAW is the one capability ping needs; a pod without any
securityContext gets the runtime's default set. Needs root (the stand-in changes the bounding set).
"""

from __future__ import annotations

import asyncio
import copy

import pytest

from probes.transports.pod import DebugPods, KubePodExec, pod_manifest
from tests.kubeaccess import WORKER2, admin_cluster, create_namespace, pod_settings
from tests.lab.test_apiserver_support import running_lab

pytestmark = pytest.mark.lab


@pytest.fixture
async def kube(tmp_path):
    async with running_lab(tmp_path) as stand_in:
        async with admin_cluster(stand_in.url, stand_in.ca, tmp_path) as cluster:
            yield cluster


NET_RAW_ONLY = f"{1 << 13:016x}"  # CAP_NET_RAW is capability 13
PING = "ping -c 1 -W 2 127.0.0.1"  # the stand-in's pods share this namespace here: loopback only


async def cap_eff(pod: KubePodExec) -> str:
    result = await pod.run("grep CapEff /proc/self/status")
    return result.stdout.split()[-1]


async def test_debug_pod_holds_net_raw_only_and_pings(kube) -> None:
    await create_namespace(kube)
    pods = DebugPods(kube, pod_settings())
    pod = await pods.get(WORKER2)
    try:
        assert await cap_eff(pod) == NET_RAW_ONLY
        assert (await pod.run(PING)).exit_status == 0
    finally:
        await pods.aclose()


async def test_without_net_raw_ping_is_refused(kube) -> None:
    await create_namespace(kube)
    manifest = pod_manifest("worker2", pod_settings())
    no_raw = copy.deepcopy(manifest)
    no_raw["metadata"]["name"] += "-noraw"
    no_raw["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"].append("NET_RAW")
    plain = copy.deepcopy(manifest)
    plain["metadata"]["name"] += "-plain"
    del plain["spec"]["containers"][0]["securityContext"]
    settings = pod_settings()
    for body in (no_raw, plain):
        await kube.create_pod("netcheck", body)
    try:
        names = [body["metadata"]["name"] for body in (no_raw, plain)]
        ips = {name: await running(kube, name) for name in names}
        refused = KubePodExec(kube, no_raw["metadata"]["name"], "netcheck", ips[no_raw["metadata"]["name"]],
                              settings)
        assert await cap_eff(refused) == f"{0:016x}"
        result = await refused.run(PING)
        assert result.exit_status != 0 and "Operation not permitted" in result.stdout + result.stderr
        default = KubePodExec(kube, plain["metadata"]["name"], "netcheck", ips[plain["metadata"]["name"]],
                              settings)
        assert int(await cap_eff(default), 16) & (1 << 13)  # the runtime default set includes NET_RAW
        assert int(await cap_eff(default), 16) & (1 << 21) == 0  # but not SYS_ADMIN
    finally:
        for body in (no_raw, plain):
            await kube.delete_pod("netcheck", body["metadata"]["name"])


async def running(cluster, name: str) -> str:  # noqa: ANN001 (KubeCluster)
    """The pod's IP once the stand-in reports it Running."""
    for _ in range(100):
        status = (await cluster.get_pod("netcheck", name)).get("status") or {}
        if status.get("phase") == "Running" and status.get("podIP"):
            return status["podIP"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"pod {name} never Running")
