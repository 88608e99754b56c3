"""How a debug pod's start is seen and how its first execs connect, against the API stand-in
(lab/apiserver, in-process over TLS) through the official client's asyncio package.

Covers: the start is seen by a watch from the create's resourceVersion (a poll interval longer than
the start timeout would fail the start otherwise); a refused watch falls back to polling; a pod
deleted while it starts fails the start at once and leaves no pod behind; the watch itself (events,
a refused request as ClusterError with its status); `preconnect` leaves connections that the next
execs take instead of opening their own, and is harmless when the API cannot be reached.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from probes.errors import ClusterError, PodUnavailable
from probes.transports.cluster import KubeCluster
from probes.transports.pod import DebugPods, pod_manifest
from tests.kubeaccess import WORKER2, admin_cluster, create_namespace, pod_settings
from tests.lab.test_apiserver_support import ADMIN_TOKEN, running_lab

NEVER_POLLED = 3600.0
"""A poll interval no start waits out: a pod seen Running within the start timeout was seen by the watch."""


@pytest.fixture
async def lab(tmp_path):
    async with running_lab(tmp_path) as lab:
        yield lab


@pytest.fixture
async def kube(lab, tmp_path):
    async with admin_cluster(lab.url, lab.ca, tmp_path) as cluster:
        yield cluster


async def _pod_names(kube: KubeCluster) -> set[str]:
    return {p["metadata"]["name"] for p in await kube.list_pods(namespace="netcheck")}


async def test_the_start_is_seen_by_the_watch(kube) -> None:
    await create_namespace(kube)
    pods = DebugPods(kube, pod_settings(poll_interval=NEVER_POLLED))
    pod = await pods.get(WORKER2)
    raw = await kube.get_pod("netcheck", pod.name)
    assert raw["status"]["phase"] == "Running" and raw["status"]["podIP"] == pod.ip
    assert (await pod.run("echo up")).stdout == "up\n"
    await pods.aclose()
    assert await _pod_names(kube) == set()


async def test_a_refused_watch_falls_back_to_polling(lab, kube) -> None:
    await create_namespace(kube)
    await lab.control("POST", "/lab/v1/watches/break", {"resource": "pods", "fail_next": 1, "status": 503})
    pods = DebugPods(kube, pod_settings(poll_interval=0.05))
    pod = await pods.get(WORKER2)  # its watch got the 503; polling saw it Running
    assert (await kube.get_pod("netcheck", pod.name))["status"]["phase"] == "Running"
    # the one failing watch request was the pod start's: the next watch is served
    events = kube.watch_pod("netcheck", pod.name, "0", timeout_s=1)
    first = await anext(events)
    await events.aclose()
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == pod.name
    await pods.aclose()


async def test_a_pod_deleted_while_it_starts_fails_the_start(lab, kube) -> None:
    await create_namespace(kube)
    await lab.control("PUT", "/lab/v1/nodes/worker2/pods", {"hold": "ContainerCreating"})
    pods = DebugPods(kube, pod_settings(poll_interval=NEVER_POLLED, start_timeout=30))
    start = asyncio.ensure_future(pods.get(WORKER2))
    for _ in range(200):  # until the start has created it (10 s at most)
        if names := await _pod_names(kube):
            break
        await asyncio.sleep(0.05)
    (name,) = names
    await kube.delete_pod("netcheck", name)
    with pytest.raises(PodUnavailable, match=f"debug pod netcheck/{name} was deleted before it ran"):
        await start
    await pods.aclose()
    assert await _pod_names(kube) == set()


async def test_the_pod_watch(lab, kube) -> None:
    await create_namespace(kube)
    created = await kube.create_pod("netcheck", pod_manifest("worker2", pod_settings()))
    name, version = created["metadata"]["name"], created["metadata"]["resourceVersion"]
    seen: list[tuple[str, Any]] = []
    events = kube.watch_pod("netcheck", name, version, timeout_s=5)
    async for event in events:
        seen.append((event["type"], event["object"]["status"].get("phase")))
        if seen[-1][1] == "Running":
            break
    await events.aclose()
    assert seen[-1] == ("MODIFIED", "Running") and all(kind == "MODIFIED" for kind, _ in seen)
    await lab.control("POST", "/lab/v1/watches/break", {"resource": "pods", "fail_next": 1, "status": 503})
    with pytest.raises(ClusterError, match=f"watch pod netcheck/{name}") as refused:
        await anext(kube.watch_pod("netcheck", name, version, timeout_s=5))
    assert refused.value.status == 503


async def _counting(lab) -> tuple[KubeCluster, Counter[str]]:
    """A cluster client whose aiohttp session counts new and reused connections (aiohttp tracing)."""
    counts: Counter[str] = Counter()
    trace = aiohttp.TraceConfig()

    async def created(session: Any, context: SimpleNamespace, params: Any) -> None:
        counts["created"] += 1

    async def reused(session: Any, context: SimpleNamespace, params: Any) -> None:
        counts["reused"] += 1

    trace.on_connection_create_end.append(created)
    trace.on_connection_reuseconn.append(reused)
    cluster = lab.cluster(ADMIN_TOKEN)
    (await cluster.configuration()).trace_configs = [trace]  # read when the session is made
    return cluster, counts


async def test_execs_take_the_connections_preconnect_opened(lab, kube) -> None:
    await create_namespace(kube)
    cluster, counts = await _counting(lab)
    try:
        pods = DebugPods(cluster, pod_settings(keep_warm=0))
        pod = await pods.get(WORKER2)  # its start preconnects
        await cluster.preconnect(3)
        counts.clear()
        results = await asyncio.gather(*(pod.run(f"echo {i}") for i in range(3)))
        assert [r.stdout for r in results] == ["0\n", "1\n", "2\n"]
        assert counts == Counter(reused=3)  # no exec opened a connection of its own
        await pods.aclose()
    finally:
        await cluster.aclose()


async def test_preconnect_is_best_effort(lab) -> None:
    unreachable = KubeCluster.for_token("https://127.0.0.1:1", lab.ca, ADMIN_TOKEN, request_timeout=1)
    try:
        await unreachable.preconnect(2)  # nothing to open: the exec will say why
    finally:
        await unreachable.aclose()


async def test_on_client_runs_once_before_the_first_request_goes_out(lab) -> None:
    """The engine starts the SSH client's import there: after the client's own imports and
    configuration, before the first request is answered, once."""
    seen: list[int] = []
    answered: list[int] = []
    configuration = await lab.cluster(ADMIN_TOKEN).configuration()
    cluster = KubeCluster(KubeCluster.for_token(lab.url, lab.ca, ADMIN_TOKEN).settings,
                          configuration=configuration, on_client=lambda: seen.append(len(answered)))
    try:
        await cluster.get_node(WORKER2.name)
        answered.append(1)
        await asyncio.gather(*(cluster.get_node(WORKER2.name) for _ in range(3)))
        assert seen == [0]  # once, and before the first answer
    finally:
        await cluster.aclose()
