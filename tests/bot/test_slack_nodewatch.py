"""Node joins through the real cluster transport: the official kubernetes client (KubeCluster) over
TLS against the lab API stand-in (lab/apiserver), `ClusterNodeSource` and the bot's node watcher
posting to the Slack Web API stand-in.

Covers: nodes existing at start post nothing; a node added not Ready, then Ready, gets one summary
(with its thread); Ready flapping posts nothing more; the watch resumes after the server ends it
(short watch timeout); a too-old resourceVersion surfaces as WatchExpired (410 → re-list); watches
broken by the API stand-in (cut, then 500s) are retried and the join still posts once.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.slack.app import build_app
from bot.slack.nodesource import ClusterNodeSource
from bot.slack.ports import WatchExpired
from bot.slack.settings import SlackSettings
from lab.slack.webapi import SlackStandIn
from probes.transports.cluster import ClusterSettings, KubeCluster, load_api_client
from tests.bot.fakes import (
    FakeRunner,
    start_node_watch,
)
from tests.fakes.engine import FakeEngine
from tests.lab.test_apiserver_support import ADMIN_TOKEN, running_lab
from tests.probes.test_cluster import write_kubeconfig

JOIN = "C0JOINS"


@pytest.fixture
async def kube(tmp_path):
    async with running_lab(tmp_path) as lab:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", lab.url, lab.ca, ADMIN_TOKEN)
        executor = ThreadPoolExecutor(max_workers=4)
        cluster = KubeCluster(load_api_client(ClusterSettings(kubeconfig=kubeconfig, context="lab")),
                              executor, request_timeout=5)
        yield lab, cluster
        cluster.close()
        executor.shutdown(wait=False, cancel_futures=True)


async def wait_for(predicate, timeout: float = 10.0) -> None:
    """Poll: the stand-in records calls and has no event to wait on."""
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_node_join_through_api_standin(kube):
    lab, cluster = kube
    standin = SlackStandIn(channels=(JOIN,))
    await standin.start()
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": "s",
                                             "api_url": standin.api_url, "join_channel": JOIN})
    existing = [n["metadata"]["name"] for n in await cluster.list_nodes()]
    engine = FakeEngine([*existing, "worker9"])
    app, rt = build_app(settings, engine, FakeRunner(engine), probe_count=4)
    source = ClusterNodeSource(cluster, watch_timeout_s=1)
    watcher = start_node_watch(rt, source)
    try:
        await asyncio.wait_for(watcher.ready.wait(), 10)
        await asyncio.sleep(1.5)  # outlive one server-side watch timeout: the watch resumes
        await lab.control("PUT", f"/lab/v1/nodes/{existing[0]}/ready", {"ready": True})
        await lab.control("POST", "/lab/v1/nodes", {"name": "worker9", "internal_ip": "127.0.0.9",
                                                    "pod_cidr": "10.244.99.0/24", "ready": False})
        await asyncio.sleep(0.5)
        assert standin.messages(JOIN) == []
        await lab.control("PUT", "/lab/v1/nodes/worker9/ready", {"ready": True})
        await wait_for(lambda: standin.messages(JOIN) and standin.messages(JOIN)[0].replies)
        await wait_for(lambda: standin.messages(JOIN)[0].edits == 1)
        assert standin.messages(JOIN)[0].text.splitlines()[0] == ":white_check_mark: worker9: all 4 probes ok"
        await lab.control("PUT", "/lab/v1/nodes/worker9/ready", {"ready": False})
        await lab.control("PUT", "/lab/v1/nodes/worker9/ready", {"ready": True})
        await asyncio.sleep(1.0)
        assert len(standin.messages(JOIN)) == 1 and engine.checks.count("worker9") == 1  # (+ the reference)
    finally:
        await rt.tasks.close(0.1)
        await standin.stop()


async def test_too_old_resource_version_is_watch_expired(kube):
    _, cluster = kube
    source = ClusterNodeSource(cluster, watch_timeout_s=2)
    with pytest.raises(WatchExpired):
        async for _ in source.watch_nodes("1"):
            pass


async def test_node_join_survives_broken_watches(kube):
    """The API stand-in cuts the open node watch and fails the next watches with 500 (an API server
    restarting): the watcher retries, resumes from its resourceVersion, and the join still posts once."""
    lab, cluster = kube
    standin = SlackStandIn(channels=(JOIN,))
    await standin.start()
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": "s",
                                             "api_url": standin.api_url, "join_channel": JOIN,
                                             "watch_retry_s": 0.1})
    existing = [n["metadata"]["name"] for n in await cluster.list_nodes()]
    engine = FakeEngine([*existing, "worker8"])
    app, rt = build_app(settings, engine, FakeRunner(engine), probe_count=4)
    watcher = start_node_watch(rt, ClusterNodeSource(cluster, watch_timeout_s=30))
    try:
        await asyncio.wait_for(watcher.ready.wait(), 10)
        await asyncio.sleep(0.3)  # the watch is open
        answer = await lab.control("POST", "/lab/v1/watches/break",
                                   {"resource": "nodes", "fail_next": 3, "status": 500})
        assert answer["broken"] == 1
        await lab.control("POST", "/lab/v1/nodes", {"name": "worker8", "internal_ip": "127.0.0.8",
                                                    "pod_cidr": "10.244.98.0/24", "ready": True})
        await wait_for(lambda: standin.messages(JOIN) and standin.messages(JOIN)[0].edits == 1)
        assert [m.text.splitlines()[0] for m in standin.messages(JOIN)] == [
            ":white_check_mark: worker8: all 4 probes ok"]
        assert engine.checks.count("worker8") == 1  # (and its reference, for the diff)
    finally:
        await rt.tasks.close(0.1)
        await standin.stop()
