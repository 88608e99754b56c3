"""Pods on the API stand-in through the official kubernetes client over TLS.

Covers: namespace create/get; pod create pinned to a node -> Running with the node's pod IP and host IP; a
pod for an unknown node stays Pending; exec with stdin (channel 0, v5's close frame); list with label and
field selectors (spec.nodeName, metadata.name);
delete returns the pod; a pod watch sees ADDED Pending then MODIFIED Running; the exec'd process is killed
when the client leaves; exec over WebSocket (v5 chosen when offered, v4 alone works) really runs the command
(exec_prefix ["env"] + the node's "netns", an env assignment here) with stdout, stderr and exit codes 0 and
non-zero; refused exec upgrades (403 read-only, 404 missing pod, 400 unscheduled pod); a pluggable
authorizer receives the RBAC attributes and can deny pods/exec; logs relayed from a real TLS kubelet stand-
in, and the exact 500 "dial tcp ...: connect: connection refused" Status when none listens, "i/o timeout"
when the dial hangs.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from lab.apiserver.auth import Request, User
from tests.lab.test_apiserver_support import ADMIN_TOKEN, KUBELET_LOG_TEXT, READONLY_TOKEN, Lab, running_lab

RUNNING_WAIT_SECONDS = 5.0
EXEC_WAIT_SECONDS = 10


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with running_lab(tmp_path) as running:
        yield running


def _pod(name: str, node: str | None, labels: dict[str, str] | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {"app": "netcheck-debug"}),
        spec=client.V1PodSpec(
            node_name=node,
            host_network=False,
            restart_policy="Never",
            containers=[client.V1Container(name="debug", image="busybox", command=["sleep", "3600"])],
        ),
    )


async def _create_running(core: client.CoreV1Api, namespace: str, name: str, node: str) -> client.V1Pod:
    await asyncio.to_thread(core.create_namespaced_pod, namespace, _pod(name, node))
    deadline = time.monotonic() + RUNNING_WAIT_SECONDS
    while time.monotonic() < deadline:
        pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
        if pod.status.phase == "Running":
            return pod
        await asyncio.sleep(0.1)
    raise AssertionError(f"pod {name} did not become Running")


async def test_namespace_and_pod_lifecycle(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    with pytest.raises(ApiException) as missing:
        await asyncio.to_thread(core.read_namespace, "netcheck")
    assert missing.value.status == 404
    with pytest.raises(ApiException) as no_namespace:
        await asyncio.to_thread(core.create_namespaced_pod, "netcheck", _pod("early", "worker2"))
    assert json.loads(no_namespace.value.body)["message"] == 'namespaces "netcheck" not found'
    await asyncio.to_thread(
        core.create_namespace, client.V1Namespace(metadata=client.V1ObjectMeta(name="netcheck"))
    )
    assert (await asyncio.to_thread(core.read_namespace, "netcheck")).metadata.name == "netcheck"

    pod = await _create_running(core, "netcheck", "probe-worker2", "worker2")
    assert (pod.status.pod_ip, pod.status.host_ip) == ("192.168.88.5", "127.0.0.2")
    assert [c.status for c in pod.status.conditions if c.type == "Ready"] == ["True"]
    assert pod.status.container_statuses[0].ready and pod.status.container_statuses[0].state.running
    await asyncio.to_thread(
        core.create_namespaced_pod, "netcheck", _pod("stuck", "nowhere", {"app": "other"})
    )
    await asyncio.sleep(0.6)
    stuck = await asyncio.to_thread(core.read_namespaced_pod, "stuck", "netcheck")
    assert stuck.status.phase == "Pending"

    by_node = await asyncio.to_thread(
        core.list_namespaced_pod, "netcheck", field_selector="spec.nodeName=worker2"
    )
    assert [p.metadata.name for p in by_node.items] == ["probe-worker2"]
    by_label = await asyncio.to_thread(core.list_pod_for_all_namespaces, label_selector="app=other")
    assert [p.metadata.name for p in by_label.items] == ["stuck"]
    by_name = await asyncio.to_thread(
        core.list_namespaced_pod, "netcheck", field_selector="metadata.name=stuck,status.phase=Pending"
    )
    assert [p.metadata.name for p in by_name.items] == ["stuck"]

    deleted = await asyncio.to_thread(core.delete_namespaced_pod, "probe-worker2", "netcheck")
    assert deleted.metadata.name == "probe-worker2"
    with pytest.raises(ApiException) as gone:
        await asyncio.to_thread(core.read_namespaced_pod, "probe-worker2", "netcheck")
    assert json.loads(gone.value.body)["message"] == 'pods "probe-worker2" not found'


def _exec(core: client.CoreV1Api, name: str, command: list[str]) -> tuple[str, str, int]:
    response = stream(
        core.connect_get_namespaced_pod_exec,
        name,
        "default",
        command=command,
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
        _preload_content=False,
    )
    response.run_forever(timeout=EXEC_WAIT_SECONDS)
    out, err, code = response.read_stdout(), response.read_stderr(), response.returncode
    response.close()
    return out, err, code


async def test_exec_runs_for_real_with_exit_codes(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    await _create_running(core, "default", "debug-worker2", "worker2")
    out, err, code = await asyncio.to_thread(
        _exec, core, "debug-worker2", ["sh", "-c", 'echo "pod=$NETCHECK_POD"; echo oops >&2']
    )
    assert (out, err, code) == ("pod=worker2\n", "oops\n", 0)
    out, err, code = await asyncio.to_thread(
        _exec, core, "debug-worker2", ["sh", "-c", "echo partial; exit 7"]
    )
    assert (out, err, code) == ("partial\n", "", 7)



def _exec_with_stdin(core: client.CoreV1Api, name: str, command: list[str], stdin: str) -> tuple[str, int]:
    response = stream(core.connect_get_namespaced_pod_exec, name, "default", command=command, stdout=True,
                      stderr=True, stdin=True, tty=False, _preload_content=False)
    response.write_stdin(stdin)
    response.run_forever(timeout=EXEC_WAIT_SECONDS)
    out, code = response.read_stdout(), response.returncode
    response.close()
    return out, code


async def test_exec_stdin_reaches_the_command(lab: Lab) -> None:
    """stdin=true: the client's channel-0 frames are the command's stdin (the official client's
    write_stdin); on v5 the close frame (255, 0) is its end of file."""
    core = client.CoreV1Api(lab.api_client())
    await _create_running(core, "default", "reader", "worker2")
    out, code = await asyncio.to_thread(_exec_with_stdin, core, "reader", ["sh"],
                                        'echo "read by $NETCHECK_POD"; exit 4\n')
    assert (out, code) == ("read by worker2\n", 4)
    tls = ssl.create_default_context(cafile=str(lab.ca))
    url = (f"{lab.url}/api/v1/namespaces/default/pods/reader/exec?command=cat&stdout=true&stderr=true"
           "&stdin=true&tty=false")
    channels: dict[int, bytes] = {}
    async with aiohttp.ClientSession() as session, session.ws_connect(
            url, protocols=("v5.channel.k8s.io",), ssl=tls,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as ws:
        await ws.send_bytes(b"\x00line one\n")
        await ws.send_bytes(bytes([255, 0]))  # stdin closed: cat ends
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                channels[message.data[0]] = channels.get(message.data[0], b"") + message.data[1:]
    assert channels[1] == b"line one\n" and json.loads(channels[3])["status"] == "Success"

async def test_exec_refusals(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    await _create_running(core, "default", "debug-master", "master")
    readonly = client.CoreV1Api(lab.api_client(token=READONLY_TOKEN))
    with pytest.raises(ApiException) as forbidden:
        await asyncio.to_thread(_exec, readonly, "debug-master", ["true"])
    assert forbidden.value.status == 0 and "403" in str(forbidden.value.reason)
    with pytest.raises(ApiException) as missing:
        await asyncio.to_thread(_exec, core, "no-such-pod", ["true"])
    assert "404" in str(missing.value.reason)
    await asyncio.to_thread(core.create_namespaced_pod, "default", _pod("unscheduled", "nowhere"))
    with pytest.raises(ApiException) as pending:
        await asyncio.to_thread(_exec, core, "unscheduled", ["true"])
    assert "400" in str(pending.value.reason)


async def test_pluggable_authorizer_decides_exec(tmp_path: Path) -> None:
    """The authorizer sees RBAC's attributes; this one denies only the pods/exec subresource."""
    asked: list[Request] = []

    def no_exec(user: User, request: Request) -> bool:
        asked.append(request)
        return request.subresource != "exec"

    async with running_lab(tmp_path, authorizer=no_exec) as lab:
        core = client.CoreV1Api(lab.api_client())
        await _create_running(core, "default", "guarded", "master")
        with pytest.raises(ApiException) as denied:
            await asyncio.to_thread(_exec, core, "guarded", ["true"])
    assert "403" in str(denied.value.reason)
    assert Request("create", "", "pods", "exec", "default", "guarded") in asked
    assert Request("create", "", "pods", "", "default", "") in asked


async def test_logs_relayed_from_kubelet(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    await asyncio.to_thread(core.create_namespaced_pod, "default", _pod("logs-master", "master"))
    text = await asyncio.to_thread(core.read_namespaced_pod_log, "logs-master", "default")
    assert text == f"default/logs-master/debug: {KUBELET_LOG_TEXT}"


async def test_logs_when_kubelet_refuses(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    await asyncio.to_thread(core.create_namespaced_pod, "default", _pod("logs-worker2", "worker2"))
    with pytest.raises(ApiException) as refused:
        await asyncio.to_thread(core.read_namespaced_pod_log, "logs-worker2", "default", tail_lines=5)
    port = lab.config.kubelet_port
    body = json.loads(refused.value.body)
    assert refused.value.status == 500
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'Get "https://127.0.0.2:{port}/containerLogs/default/logs-worker2/debug?tailLines=5": '
        f"dial tcp 127.0.0.2:{port}: connect: connection refused",
        "code": 500,
    }


async def _raw_exec(lab: Lab, protocols: tuple[str, ...]) -> tuple[str | None, dict[int, bytes]]:
    tls = ssl.create_default_context(cafile=str(lab.ca))
    url = (
        f"{lab.url}/api/v1/namespaces/default/pods/raw/exec?command=sh&command=-c&command=echo+hi%3B+exit+3"
        "&stdout=true&stderr=true&stdin=false&tty=false"
    )
    channels: dict[int, bytes] = {}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(
            url, protocols=protocols, ssl=tls, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as ws:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    channels[message.data[0]] = channels.get(message.data[0], b"") + message.data[1:]
            return ws.protocol, channels


async def test_exec_protocol_negotiation(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    await _create_running(core, "default", "raw", "master")
    for offered, chosen in (
        (("v5.channel.k8s.io", "v4.channel.k8s.io"), "v5.channel.k8s.io"),
        (("v4.channel.k8s.io",), "v4.channel.k8s.io"),
    ):
        protocol, channels = await _raw_exec(lab, offered)
        assert protocol == chosen
        assert channels[1] == b"hi\n"
        status = json.loads(channels[3])
        assert (status["status"], status["reason"], status["details"]["causes"]) == (
            "Failure",
            "NonZeroExitCode",
            [{"reason": "ExitCode", "message": "3"}],
        )


def _watch_pod_until_running(lab: Lab, name: str, resource_version: str) -> list[tuple[str, str]]:
    core = client.CoreV1Api(lab.api_client())
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_pod,
        "default",
        field_selector=f"metadata.name={name}",
        resource_version=resource_version,
        timeout_seconds=EXEC_WAIT_SECONDS,
    ):
        seen.append((event["type"], event["object"].status.phase))
        if event["object"].status.phase == "Running":
            w.stop()
    return seen


async def test_watch_pod_until_running(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    listed = await asyncio.to_thread(core.list_namespaced_pod, "default")
    await asyncio.to_thread(core.create_namespaced_pod, "default", _pod("watched", "master"))
    await asyncio.to_thread(core.create_namespaced_pod, "default", _pod("other", "master"))
    seen = await asyncio.to_thread(_watch_pod_until_running, lab, "watched", listed.metadata.resource_version)
    assert seen == [("ADDED", "Pending"), ("MODIFIED", "Running")]


async def test_exec_process_killed_when_client_leaves(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    await _create_running(core, "default", "sleeper", "master")
    pid_file = lab.tmp / "exec.pid"

    def start_and_leave() -> None:
        response = stream(
            core.connect_get_namespaced_pod_exec,
            "sleeper",
            "default",
            command=["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"],
            stdout=True,
            stderr=True,
            stdin=False,
            tty=False,
            _preload_content=False,
        )
        deadline = time.monotonic() + EXEC_WAIT_SECONDS
        while not pid_file.exists() and time.monotonic() < deadline:
            response.update(timeout=0.1)
        response.close()

    await asyncio.to_thread(start_and_leave)
    assert await asyncio.to_thread(_process_gone, int(pid_file.read_text())), (
        "the command outlived its client"
    )


def _process_gone(pid: int) -> bool:
    deadline = time.monotonic() + EXEC_WAIT_SECONDS
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not Path(f"/proc/{pid}").exists()


async def test_logs_when_kubelet_dial_times_out(lab: Lab) -> None:
    """A listener whose accept queue is full drops SYNs, so the dial to node "ghost" (127.0.0.3) hangs."""
    port = lab.config.kubelet_port
    with socket.socket() as full:
        full.bind(("127.0.0.3", port))
        full.listen(0)
        fillers = [socket.create_connection(("127.0.0.3", port), timeout=1)]  # backlog 0 holds one
        try:
            core = client.CoreV1Api(lab.api_client())
            await asyncio.to_thread(core.create_namespaced_pod, "default", _pod("logs-ghost", "ghost"))
            with pytest.raises(ApiException) as timed_out:
                await asyncio.to_thread(core.read_namespaced_pod_log, "logs-ghost", "default")
        finally:
            for filler in fillers:
                filler.close()
    assert timed_out.value.status == 500
    assert json.loads(timed_out.value.body)["message"] == (
        f'Get "https://127.0.0.3:{port}/containerLogs/default/logs-ghost/debug": '
        f"dial tcp 127.0.0.3:{port}: i/o timeout"
    )
