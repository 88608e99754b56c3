"""probes/transports/kubeaio.py: the kubernetes package's asyncio client loaded without the package's
own `__init__` (nor `kubernetes.aio`'s), proven in a fresh interpreter — this test process imports
the synchronous client first, which leaves the trick idle here — against the API stand-in
(lab/apiserver, in-process over TLS) through a real kubeconfig.

Covers, in the child: kubeconfig loading, a list, a 404 translated, a debug pod created, exec'd in
over WebSocket (stdout, stderr, exit status) and deleted, a node watch's events and its 410 Expired
translated; none of the synchronous side (its config loader, oauthlib, requests, urllib3,
websocket-client, the dynamic client) imported by any of it; then the package completes on first
use (`kubernetes.__version__`, `from kubernetes import client, config`) and the synchronous client
works in the same process. A kubernetes release that breaks any of this fails here.
"""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.metadata import version

from tests.kubeaccess import WORKER2, admin_cluster, write_kubeconfig
from tests.lab.test_apiserver_support import ADMIN_TOKEN, running_lab

CHILD_TIMEOUT_S = 60.0
SYNC_SIDE = ("kubernetes.client", "kubernetes.config", "kubernetes.dynamic", "kubernetes.stream",
             "kubernetes.watch", "kubernetes.aio.dynamic", "kubernetes.aio.leaderelection", "oauthlib",
             "requests_oauthlib", "requests", "urllib3", "websocket")
"""What `import kubernetes` / `import kubernetes.aio` would load and the asyncio client never uses."""

CHILD = r'''
import asyncio, contextlib, json, sys
from pathlib import Path

from probes.errors import ClusterError, ClusterNotFound
from probes.facts import NodeFacts
from probes.transports.cluster import ClusterSettings, KubeCluster
from probes.transports.pod import DebugPods, DebugPodSettings

kubeconfig, node, node_ip, sync_side = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])


async def main():
    cluster = KubeCluster(ClusterSettings(kubeconfig=Path(kubeconfig), request_timeout=5))
    out = {}
    try:
        out["nodes"] = sorted(n["metadata"]["name"] for n in await cluster.list_nodes())
        try:
            await cluster.get_pod("netcheck", "no-such-pod")
        except ClusterNotFound as exc:
            out["not_found"] = str(exc)
        await cluster.create_namespace("netcheck")
        pods = DebugPods(cluster, DebugPodSettings.model_validate(
            {"start_timeout": 5, "poll_interval": 0.1, "command_timeout": 5, "keep_warm": 0}))
        pod = await pods.get(NodeFacts(name=node, internal_ip=node_ip, ready=True))
        result = await pod.run("printf out; printf err >&2; exit 3")
        out["exec"] = [result.stdout, result.stderr, result.exit_status]
        await pods.release(node)
        out["pods_left"] = await cluster.list_pods(namespace="netcheck")
        watched = set()
        async with contextlib.aclosing(cluster.watch_nodes("0", timeout_s=2)) as events:
            async for event in events:
                watched.add((event["type"], event["object"]["metadata"]["name"]))
                if len(watched) == len(out["nodes"]):
                    break
        out["watched"] = sorted(watched)
        try:
            async for _ in cluster.watch_nodes("1", timeout_s=2):
                pass
        except ClusterError as exc:
            out["watch_expired"] = exc.status
    finally:
        await cluster.aclose()
    out["sync_side_loaded"] = [m for m in sync_side if m in sys.modules]
    import kubernetes
    import kubernetes.aio
    out["versions"] = [kubernetes.__version__, kubernetes.aio.__version__]
    from kubernetes import client, config
    configuration = client.Configuration(host="https://api.example:6443")
    out["sync_client"] = [client.ApiClient(configuration).configuration.host,
                          callable(config.load_kube_config)]
    print(json.dumps(out))


asyncio.run(main())
'''


async def test_asyncio_client_alone_in_a_fresh_process(tmp_path) -> None:
    async with running_lab(tmp_path) as lab:
        async with admin_cluster(lab.url, lab.ca, tmp_path) as cluster:
            nodes = sorted(n["metadata"]["name"] for n in await cluster.list_nodes())
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig-child", lab.url, lab.ca, ADMIN_TOKEN)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, str(kubeconfig), WORKER2.name, str(WORKER2.internal_ip),
            json.dumps(SYNC_SIDE), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(CHILD_TIMEOUT_S):
            out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    result = json.loads(out.decode().splitlines()[-1])  # after the log lines (structlog on stdout)
    assert result["nodes"] == nodes and WORKER2.name in nodes
    assert result["not_found"].startswith("read pod netcheck/no-such-pod: ")
    assert result["not_found"].endswith("(HTTP 404)")
    assert result["exec"] == ["out", "err", 3]
    assert result["pods_left"] == []
    assert result["watched"] == [["ADDED", name] for name in nodes]
    assert result["watch_expired"] == 410
    assert result["sync_side_loaded"] == [], "the asyncio client now imports the synchronous side"
    assert result["versions"] == [version("kubernetes")] * 2
    assert result["sync_client"] == ["https://api.example:6443", True]
