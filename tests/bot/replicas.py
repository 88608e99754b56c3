"""The harness of the `netcheck serve` process tests (tests/bot/test_serve_ops.py,
test_serve_hostile_http.py, test_serve_socket_replicas.py): the in-process API stand-in enforcing the
shipped RBAC for the bot's ServiceAccount token (`Cluster`; the `cluster` fixture in
tests/bot/conftest.py starts it), a `netcheck serve` replica process, and what the tests wait for.
"""


from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml
from kubernetes import client, watch

from lab.slack.driver import SlackDriver
from lab.slack.webapi import SlackStandIn
from tests import waiting

ROOT = Path(__file__).resolve().parents[2]
RBAC_MANIFEST = ROOT / "deploy" / "kubernetes" / "rbac.yaml"
BOT_TOKEN = "netcheck-sa-token"
CHANNEL = "C0NETCHECK"
SECRET = "lab-signing-secret"
WAIT_S = 20.0
"""Upper bound for any one condition the tests wait for (startup, election, a check)."""
POLL_S = 0.1
until = functools.partial(waiting.until, timeout=WAIT_S, poll=POLL_S)
OPS = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.2, "shutdown_grace": 5.0,
       "cleanup_timeout": 3.0, "readiness_timeout": 2.0, "health_host": "127.0.0.1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    url: str
    ca: str
    admin: client.ApiClient
    kubeconfig: Path
    stop: contextlib.AbstractAsyncContextManager

    def lease_holder(self) -> str | None:
        api = client.CoordinationV1Api(self.admin)
        try:
            lease = api.read_namespaced_lease("netcheck-leader", "netcheck")
        except client.ApiException:
            return None
        return lease.spec.holder_identity or None

    def lease_holders(self, until: str, watching: threading.Event) -> list[str]:
        return lease_holders(self.admin, "netcheck", until, watching, WAIT_S)


def lease_holders(api: client.ApiClient, namespace: str, until: str, watching: threading.Event,
                  timeout_s: float) -> list[str]:
    """The Lease's holderIdentity at every write, in order ("" when released), from its state when
    the watch starts until `until` holds it: a watch misses no write, however fast the next one
    follows, so a handover is told by the order of writes, not by how fast this machine is."""
    holders: list[str] = []
    leases = client.CoordinationV1Api(api)
    writes = watch.Watch().stream(leases.list_namespaced_lease, namespace, timeout_seconds=int(timeout_s))
    for event in writes:
        holders.append(event["object"].spec.holder_identity or "")
        watching.set()
        if holders[-1] == until:
            break
    watching.set()
    return holders


class Replica:
    """One `netcheck serve` process with its own ports and identity."""

    def __init__(self, tmp: Path, cluster: Cluster, slack: SlackStandIn, identity: str) -> None:
        self.identity = identity
        self.port, self.health_port = free_port(), free_port()
        self.config = tmp / f"netcheck-{identity}.yaml"
        self.config.write_text(yaml.safe_dump({
            "kubeconfig": str(cluster.kubeconfig),
            "ssh": {"port": free_port(), "connect_timeout": 2.0},  # closed loopback port: refused at once
            "slack": {"probes": ["node-address"]},
            "ops": {**OPS, "health_port": self.health_port},
        }))
        self.env = {**os.environ, "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": SECRET,
                    "SLACK_API_URL": slack.api_url, "POD_NAME": identity}
        self.env.pop("SLACK_APP_TOKEN", None)
        self.log = tmp / f"serve-{identity}.log"
        self.driver = SlackDriver(f"http://127.0.0.1:{self.port}/slack/events", SECRET, slack)
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--config", str(self.config), cwd=ROOT, env=self.env, stdout=log, stderr=log,
            )
        await until(self.healthy, f"{self.identity} /healthz")

    async def get(self, path: str) -> tuple[int, str]:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                async with session.get(f"http://127.0.0.1:{self.health_port}{path}") as resp:
                    return resp.status, await resp.text()
        except aiohttp.ClientError:
            return 0, ""

    async def healthy(self) -> bool:
        assert self.process is not None
        assert self.process.returncode is None, f"{self.identity} exited: {self.log.read_text()[-2000:]}"
        return (await self.get("/healthz"))[0] == 200

    async def command(self, text: str) -> int:
        reply = await self.driver.command(text, user="UALICE", channel=CHANNEL)
        return reply.status

    async def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), WAIT_S)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def parents(slack: SlackStandIn) -> list[dict]:
    """Top-level messages the bot posted (a check's parent message), not thread replies."""
    return [call.params for call in slack.calls_to("chat.postMessage")
            if call.status == 200 and not call.params.get("thread_ts")]


def metric(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))



async def holder_is(cluster: Cluster, identity: str) -> bool:
    return await asyncio.to_thread(cluster.lease_holder) == identity
