"""`netcheck serve` as real processes (HTTP mode) with its operational runtime, against the in-process
API stand-in enforcing the shipped RBAC (deploy/kubernetes/rbac.yaml via `rbac_manifests`) for the
bot's ServiceAccount token, and the Slack stand-in (lab/slack/webapi.py).

Covers:
- health: /healthz 200; /readyz 200 when Slack (auth.test) and the cluster (Lease read, RBAC'd)
  answer, 503 naming the cluster once the API stand-in is stopped; /metrics has
  netcheck_checks_total and findings by probe after a signed /netcheck (the real engine's discovery
  runs through RBAC; SSH goes to a closed loopback port, so the check ends with a finding);
- two replicas, one Lease: a signed command to each — the standby acks with the ephemeral failover
  answer (a click: the same through its response_url; an Events API delivery: 503; unsigned: 401)
  and posts nothing, exactly one parent message reaches Slack; SIGTERM to the leader: it exits 0 and
  releases the Lease (the other takes over sooner than the lease duration), then answers the next
  command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml
from kubernetes import client

from lab.apiserver import ApiServerConfig, serve
from lab.apiserver.rbac import service_account_groups, service_account_user
from lab.slack.driver import SlackDriver
from lab.slack.webapi import Message, SlackStandIn
from tests.lab.test_apiserver_support import ADMIN_TOKEN, kubelet_standin, make_tls
from tests.lab.test_apiserver_support import base_config as stand_in_config

ROOT = Path(__file__).resolve().parents[2]
RBAC_MANIFEST = ROOT / "deploy" / "kubernetes" / "rbac.yaml"
BOT_TOKEN = "netcheck-sa-token"
CHANNEL = "C0NETCHECK"
SECRET = "lab-signing-secret"
WAIT_S = 20.0
"""Upper bound for any one condition the tests wait for (startup, election, a check)."""
POLL_S = 0.1
OPS = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.2, "shutdown_grace": 5.0,
       "cleanup_timeout": 3.0, "readiness_timeout": 2.0, "health_host": "127.0.0.1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(condition, what: str):  # noqa: ANN001, ANN201 (an async predicate returning truthy)
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        value = await condition()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_S)


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


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    ca, server = make_tls(tmp_path / "tls")
    async with kubelet_standin(server) as kubelet_port:
        data = stand_in_config(server, kubelet_port, tmp_path)
        data["tokens"][BOT_TOKEN] = {"user": service_account_user("netcheck", "netcheck"),
                                     "groups": list(service_account_groups("netcheck"))}
        data["rbac_manifests"] = [str(RBAC_MANIFEST)]
        running = serve(ApiServerConfig.model_validate(data))
        runner = await running.__aenter__()
        stopped = False
        try:
            url = f"https://127.0.0.1:{runner.addresses[0][1]}"
            configuration = client.Configuration(host=url)
            configuration.ssl_ca_cert = str(ca.cert)
            configuration.api_key = {"authorization": ADMIN_TOKEN}
            configuration.api_key_prefix = {"authorization": "Bearer"}
            admin = client.ApiClient(configuration)
            namespace = client.V1Namespace(metadata=client.V1ObjectMeta(name="netcheck"))
            await asyncio.to_thread(client.CoreV1Api(admin).create_namespace, namespace)
            kubeconfig = tmp_path / "kubeconfig-bot"
            kubeconfig.write_text(yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "bot",
                "clusters": [{"name": "lab",
                              "cluster": {"server": url, "certificate-authority": str(ca.cert)}}],
                "users": [{"name": "bot", "user": {"token": BOT_TOKEN}}],
                "contexts": [{"name": "bot", "context": {"cluster": "lab", "user": "bot"}}],
            }))

            class Stopper(contextlib.AbstractAsyncContextManager):
                async def __aexit__(self, *exc: object) -> None:
                    nonlocal stopped
                    if not stopped:
                        stopped = True
                        await running.__aexit__(None, None, None)

            yield Cluster(url, str(ca.cert), admin, kubeconfig, Stopper())
        finally:
            if not stopped:
                await running.__aexit__(None, None, None)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    web = SlackStandIn(channels=(CHANNEL,))
    await web.start()
    yield web
    await web.stop()


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


async def test_health_readiness_metrics(tmp_path: Path, cluster: Cluster, slack: SlackStandIn) -> None:
    replica = Replica(tmp_path, cluster, slack, "solo")
    await replica.start()
    try:
        assert await until(lambda: asyncio.to_thread(cluster.lease_holder), "leader") == "solo"
        assert (await replica.get("/healthz"))[0] == 200
        status, body = await replica.get("/readyz")
        assert status == 200, body
        assert metric((await replica.get("/metrics"))[1], "netcheck_checks_total") == 0

        assert await replica.command("worker2") == 200

        async def checked() -> str | None:
            text = (await replica.get("/metrics"))[1]
            return text if metric(text, "netcheck_checks_total") >= 1 else None

        exposition = await until(checked, "netcheck_checks_total after /netcheck worker2")
        assert 'netcheck_findings_total{probe="node-address"' in exposition
        assert metric(exposition, "netcheck_check_duration_seconds_count") == 1
        assert len(parents(slack)) == 1

        await cluster.stop.__aexit__(None, None, None)  # the API stand-in goes away
        status, body = await until(
            lambda: _ready_status(replica, 503), "/readyz 503 with the API stand-in stopped"
        )
        assert "cluster" in body
        assert (await replica.get("/healthz"))[0] == 200  # alive, just not ready
        assert await replica.terminate() == 0
    finally:
        await replica.kill()


async def _ready_status(replica: Replica, wanted: int) -> tuple[int, str] | None:
    status, body = await replica.get("/readyz")
    return (status, body) if status == wanted else None


async def test_two_replicas_one_answers_then_takeover(
    tmp_path: Path, cluster: Cluster, slack: SlackStandIn
) -> None:
    a = Replica(tmp_path, cluster, slack, "replica-a")
    b = Replica(tmp_path, cluster, slack, "replica-b")
    await a.start()
    try:
        await until(lambda: _holder_is(cluster, "replica-a"), "replica-a leads")
        await b.start()
        assert (await b.get("/readyz"))[0] == 200  # a standby is Ready (rollouts must not stall)

        assert await a.command("worker2") == 200
        standby = await b.driver.command("worker2", user="UALICE", channel=CHANNEL)
        assert standby.status == 200 and standby.elapsed_s < 3  # acked, not a bare 503
        answer = json.loads(standby.text)
        assert answer == {"response_type": "ephemeral", "text": "`/netcheck worker2` was not run: netcheck "
                          "is failing over to another replica. Try again in a few seconds."}
        message = Message(ts="1.000001", channel=CHANNEL, text="x", blocks=[
            {"type": "actions", "block_id": "fix-1", "elements": [
                {"type": "button", "action_id": "apply_fix", "value": "anything",
                 "text": {"type": "plain_text", "text": "Apply fix: masquerade"}}]}])
        click = await b.driver.click(message, user="UBOB")
        assert click.status == 200

        async def click_answered() -> list[dict]:
            return [w for w in slack.webhooks if w["name"] == "click-UBOB"]

        (notice,) = await until(click_answered, "the standby's answer to the click")
        assert notice["response_type"] == "ephemeral" and notice["replace_original"] is False
        assert notice["text"].startswith("Your click was not processed: netcheck is failing over")
        event = await _post_event(b)
        assert event.status == 503  # Events API deliveries: Slack retries them
        unsigned = await b.driver.post(b.driver.command_body("worker2", user="UALICE", channel=CHANNEL),
                                       signature="v0=" + "0" * 64)
        assert unsigned.status == 401
        await until(lambda: _count(slack, 1), "the leader's parent message")
        await asyncio.sleep(1.0)  # anything a second replica would post has had time to arrive
        assert len(parents(slack)) == 1, parents(slack)

        assert await a.terminate() == 0
        exited = asyncio.get_running_loop().time()
        await until(lambda: _holder_is(cluster, "replica-b"), "replica-b takes over")
        # a released the Lease on SIGTERM: b did not have to wait out a's lease duration (a renewed
        # until just before exiting, so without the release b would need about lease_duration here)
        assert asyncio.get_running_loop().time() - exited < OPS["lease_duration"] / 2
        assert "lease_release_failed" not in a.log.read_text()

        async def b_answers() -> bool:
            return await b.command("master") == 200

        await until(b_answers, "replica-b answers")
        await until(lambda: _count(slack, 2), "replica-b's parent message")
        assert "master" in json.dumps(parents(slack)[1])
    finally:
        await a.kill()
        await b.kill()


async def _post_event(replica: Replica):  # noqa: ANN202 (SignedReply)
    """A signed Events API delivery (JSON), as Slack sends app_home_opened."""
    body = json.dumps({"type": "event_callback", "team_id": "T0LAB", "api_app_id": "A0NETCHECK",
                       "event": {"type": "app_home_opened", "user": "UALICE", "tab": "home"},
                       "event_id": "Ev1", "event_time": 1})
    ts = str(int(time.time()))
    headers = {"content-type": "application/json", "x-slack-request-timestamp": ts,
               "x-slack-signature": replica.driver.signer.generate_signature(timestamp=ts, body=body)}
    async with aiohttp.ClientSession() as session:
        async with session.post(replica.driver.events_url, data=body.encode(), headers=headers) as resp:
            return resp


async def _holder_is(cluster: Cluster, identity: str) -> bool:
    return await asyncio.to_thread(cluster.lease_holder) == identity


async def _count(slack: SlackStandIn, n: int) -> bool:
    return len(parents(slack)) >= n
