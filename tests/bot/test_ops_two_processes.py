"""Two replica processes (tests/bot/test_ops_replica_main.py: OpsRuntime + the real Lease store) elect
a leader through the lab's API stand-in over HTTPS, with the shipped RBAC enforced for their token.

Covers: exactly one process answers while both run; SIGTERM to the leader makes it stop answering,
release the Lease and exit cleanly, and the other process takes over well before the lease would
expire; SIGKILL (no release) makes the survivor wait out the lease, then take over.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from pathlib import Path

import pytest
from kubernetes import client

from lab.apiserver import ApiServerConfig, serve
from tests.bot import replicas
from tests.bot.test_ops_replica_main import SETTINGS
from tests.deploy.conftest import KUSTOMIZE_DIR, ROOT, load_all
from tests.deploy.rbac import RbacAuthorizer, service_account_groups, service_account_user
from tests.lab.test_apiserver_support import ADMIN_TOKEN, kubelet_standin, make_tls
from tests.lab.test_apiserver_support import base_config as stand_in_config

BOT_TOKEN = "netcheck-sa-token"
LINE_TIMEOUT = 15.0
"""Seconds to wait for a replica's next line."""


class Replica:
    def __init__(self, process: asyncio.subprocess.Process, identity: str) -> None:
        self.process, self.identity = process, identity

    async def expect(self, text: str) -> float:
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), LINE_TIMEOUT)
            assert line, f"{self.identity} exited before printing {text!r}"
            if line.decode().strip() == f"{self.identity} {text}":
                return asyncio.get_running_loop().time()


@pytest.fixture
async def stand_in(tmp_path: Path):
    ca, server = make_tls(tmp_path / "tls")
    async with kubelet_standin(server) as kubelet_port:
        data = stand_in_config(server, kubelet_port, tmp_path)
        user = service_account_user("netcheck", "netcheck")
        data["tokens"][BOT_TOKEN] = {"user": user, "groups": list(service_account_groups("netcheck"))}
        authorizer = RbacAuthorizer.from_manifests(load_all((KUSTOMIZE_DIR / "rbac.yaml").read_text()))
        async with serve(ApiServerConfig.model_validate(data), authorizer) as runner:
            url = f"https://127.0.0.1:{runner.addresses[0][1]}"
            configuration = client.Configuration(host=url)
            configuration.ssl_ca_cert = str(ca.cert)
            configuration.api_key = {"authorization": ADMIN_TOKEN}
            configuration.api_key_prefix = {"authorization": "Bearer"}
            namespace = client.V1Namespace(metadata=client.V1ObjectMeta(name="netcheck"))
            core = client.CoreV1Api(client.ApiClient(configuration))
            await asyncio.to_thread(core.create_namespace, namespace)
            yield url, str(ca.cert), authorizer


async def start(url: str, ca: str, identity: str) -> Replica:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bot.test_ops_replica_main", url, ca, BOT_TOKEN, identity,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )
    return Replica(process, identity)


async def stop(*replicas: Replica) -> None:
    for replica in replicas:
        if replica.process.returncode is None:
            replica.process.kill()
            await replica.process.wait()


def lease_holders(url: str, ca: str, until: str, watching: threading.Event) -> list[str]:
    """The Lease's holders at every write until `until` holds it (tests/bot/replicas.py)."""
    configuration = client.Configuration(host=url)
    configuration.ssl_ca_cert = ca
    configuration.api_key = {"authorization": ADMIN_TOKEN}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return replicas.lease_holders(client.ApiClient(configuration), SETTINGS.lease_namespace, until,
                                  watching, LINE_TIMEOUT)


async def test_one_answers_sigterm_hands_over(stand_in):
    url, ca, authorizer = stand_in
    a = await start(url, ca, "a")
    await a.expect("answering")
    b = await start(url, ca, "b")
    try:
        assert b.process.stdout is not None
        with pytest.raises(TimeoutError):  # b stays standby while a renews (> a lease duration)
            while True:
                line = await asyncio.wait_for(b.process.stdout.readline(), 3.0)
                assert line.decode().strip() != "b answering", "two replicas answer"
        watching = threading.Event()
        holders = asyncio.create_task(asyncio.to_thread(lease_holders, url, ca, "b", watching))
        assert await asyncio.to_thread(watching.wait, LINE_TIMEOUT)  # the watch sees a's Lease first
        a.process.send_signal(signal.SIGTERM)
        await a.expect("stopped answering")
        await a.expect("exited failed=[]")
        assert await asyncio.wait_for(a.process.wait(), LINE_TIMEOUT) == 0
        await b.expect("answering")
        written = await holders
        # released, then taken: b acquired the emptied Lease instead of waiting for a's to expire (an
        # expiry would show a straight a -> b); by the order of writes, not by how fast this machine is
        assert written[0] == "a" and written[-1] == "b" and written[-2] == "", written
        assert authorizer.denials == []  # everything the replicas did is allowed by the shipped RBAC
    finally:
        await stop(a, b)


async def test_killed_leader_is_replaced_after_the_lease_expires(stand_in):
    url, ca, _authorizer = stand_in
    a = await start(url, ca, "a")
    await a.expect("answering")
    b = await start(url, ca, "b")
    try:
        await asyncio.sleep(1.0)
        a.process.kill()  # no release
        killed_at = asyncio.get_running_loop().time()
        await a.process.wait()
        took_over_at = await b.expect("answering")
        assert took_over_at - killed_at >= 1.5  # waited out (most of) the 2 s lease
    finally:
        await stop(a, b)
