"""The API stand-in's Pod Security admission and its host pods where none can run, in process over TLS.

Covers: namespaces from shipped manifests carry their labels (the bot's namespace `baseline`, the host
pods' `privileged`); in a baseline namespace a host pod is refused with the API server's 403 message
naming every violation (capabilities, host namespaces, hostPath, privileged), while the same pod is
admitted in the privileged namespace and in an unlabelled one (the default level is privileged); a
host pod on a node that has no PID namespace of its own never runs: it stays Pending with the
container waiting for `RunContainerError` and that reason, and exec answers "container not found";
a pod asking for the host network alone is refused the same way (the lab runs host namespaces only
together). The host pods that do run (in a node's own namespaces) are covered by the lab tests
test_node_access_pod.py and test_rbac_node_access.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from lab.apiconfig import NODE_ACCESS_COMPONENT, SHIPPED_NAMESPACE
from probes.transports.hostpod import host_pod_manifest
from tests.lab.test_apiserver_support import Lab, running_lab

WAIT_S = 5.0


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    manifests = [str(SHIPPED_NAMESPACE), str(NODE_ACCESS_COMPONENT / "namespace.yaml")]
    async with running_lab(tmp_path, namespace_manifests=manifests, namespaces=["plain"],
                           containers_dir=str(tmp_path)) as running:
        yield running


async def test_shipped_namespaces_carry_their_pod_security_level(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    levels = {}
    for name in ("netcheck", "netcheck-host", "plain"):
        labels = (await asyncio.to_thread(core.read_namespace, name)).metadata.labels
        levels[name] = labels.get("pod-security.kubernetes.io/enforce")
        assert labels["kubernetes.io/metadata.name"] == name
    assert levels == {"netcheck": "baseline", "netcheck-host": "privileged", "plain": None}


async def test_baseline_refuses_host_pods_with_the_api_servers_message(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    for privileged in (False, True):
        manifest = host_pod_manifest("worker2", "busybox", "netcheck", privileged=privileged)
        with pytest.raises(ApiException) as refused:
            await asyncio.to_thread(core.create_namespaced_pod, "netcheck", manifest)
        body = json.loads(refused.value.body)
        assert (refused.value.status, body["reason"]) == (403, "Forbidden")
        name = manifest["metadata"]["name"]
        caps = ('non-default capabilities (container "host" must not include "NET_ADMIN", "NET_RAW", '
                '"SYS_PTRACE" in securityContext.capabilities.add), ')
        expected = (f'pods "{name}" is forbidden: violates PodSecurity "baseline:latest": '
                    + ("" if privileged else caps)
                    + 'host namespaces (hostNetwork=true, hostPID=true, hostIPC=true), '
                    'hostPath volumes (volume "host-root")'
                    + (', privileged (container "host" must not set securityContext.privileged=true)'
                       if privileged else ""))
        assert body["message"] == expected
    for namespace in ("netcheck-host", "plain"):
        manifest = host_pod_manifest("worker2", "busybox", namespace, privileged=True)
        await asyncio.to_thread(core.create_namespaced_pod, namespace, manifest)


async def _waiting(core: client.CoreV1Api, namespace: str, name: str) -> client.V1ContainerStateWaiting:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
        statuses = pod.status.container_statuses or []
        if statuses and statuses[0].state.waiting is not None:
            assert pod.status.phase == "Pending"
            return statuses[0].state.waiting
        await asyncio.sleep(0.05)
    raise AssertionError(f"pod {name} never reported a waiting container")


async def test_a_host_pod_never_runs_on_a_node_without_its_own_pid_namespace(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    manifest = host_pod_manifest("worker2", "busybox", "netcheck-host", privileged=True)
    name = manifest["metadata"]["name"]
    await asyncio.to_thread(core.create_namespaced_pod, "netcheck-host", manifest)
    waiting = await _waiting(core, "netcheck-host", name)
    assert waiting.reason == "RunContainerError"
    assert waiting.message == "node worker2 has no PID namespace of its own: host pods cannot run there"
    with pytest.raises(ApiException) as refused:
        await asyncio.to_thread(
            stream, core.connect_get_namespaced_pod_exec, name, "netcheck-host",
            command=["nsenter", "-t", "1", "-m", "true"], stderr=True, stdin=False, stdout=True, tty=False)
    assert "Handshake status 400" in str(refused.value) and "container not found" in str(refused.value)

    network_only = host_pod_manifest("worker2", "busybox", "netcheck-host", privileged=False)
    network_only["spec"]["hostPID"] = network_only["spec"]["hostIPC"] = False
    await asyncio.to_thread(core.create_namespaced_pod, "netcheck-host", network_only)
    waiting = await _waiting(core, "netcheck-host", network_only["metadata"]["name"])
    assert waiting.message == "the lab runs host namespaces only together: hostNetwork and hostPID"
