"""`netcheck serve` in Socket Mode as real processes: two replicas against the in-process API stand-in
enforcing the shipped RBAC for the bot's token (tests/bot/test_serve_ops.py's `cluster`), the Slack
Web API stand-in and the Socket Mode stand-in (lab/slack/socketmode.py), which counts connections.

Covers:
- two replicas, one Lease: only the leader opens a Socket Mode connection (apps.connections.open is
  called once, never two connections at a time); a slash command pushed over it is acked and
  answered once. SIGTERM to the leader: it exits 0 and releases the Lease (its writes go replica-a,
  empty, replica-b: no waiting for an expiry), and the standby connects and answers. SIGKILL of
  the leader: the standby waits the Lease out (no two connections), then connects and answers
  within the Lease duration plus a retry period and connection set-up;
- a Lease the bot may not use (the bot runs in namespace "platform", the shipped RBAC grants Leases
  in "netcheck"): one error line naming the Role to grant, /readyz 503 saying why, nobody connects;
  with `ops.leader_election: false` the single replica connects and answers without any Lease.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from lab.slack.socketmode import SocketModeStandIn
from lab.slack.webapi import SlackStandIn
from tests.bot.replicas import (
    CHANNEL,
    OPS,
    ROOT,
    WAIT_S,
    Cluster,
    Replica,
    parents,
    until,
)

LEASE_S = OPS["lease_duration"]
RETRY_S = OPS["retry_period"]
CONNECT_S = 1.0
"""Allowance for apps.connections.open + the WebSocket handshake + hello after taking the Lease."""


class SocketSlack:
    def __init__(self) -> None:
        self.web = SlackStandIn(channels=(CHANNEL,))
        self.sock = SocketModeStandIn()

    def slash(self, text: str) -> dict[str, str]:
        return {"token": "legacy", "team_id": self.web.team_id, "channel_id": CHANNEL, "user_id": "UALICE",
                "command": "/netcheck", "text": text, "api_app_id": "A0NETCHECK",
                "response_url": self.web.response_url("socket"), "trigger_id": "1.2.3"}

    async def command(self, text: str) -> dict:
        envelope = await self.sock.push("slash_commands", self.slash(text))
        return await self.sock.ack(envelope, timeout=WAIT_S)


@pytest.fixture
async def slack() -> AsyncIterator[SocketSlack]:
    side = SocketSlack()
    await side.web.start()
    side.web.socket_url = await side.sock.start()
    yield side
    await side.sock.stop()
    await side.web.stop()


class SocketReplica(Replica):
    """A `netcheck serve` with SLACK_APP_TOKEN: Socket Mode, no HTTP listener."""

    def __init__(self, tmp: Path, api: Cluster, slack: SocketSlack, identity: str,
                 ops: dict | None = None, namespace: str | None = None) -> None:
        super().__init__(tmp, api, slack.web, identity)
        config = yaml.safe_load(self.config.read_text())
        config["ops"].update(ops or {})
        config["log_level"] = "info"
        self.config.write_text(yaml.safe_dump(config))
        self.env["SLACK_APP_TOKEN"] = slack.web.app_token
        if namespace is not None:
            self.env["POD_NAMESPACE"] = namespace

    def log_events(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    async def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "serve", "--config", str(self.config),
                cwd=ROOT, env=self.env, stdout=log, stderr=log,
            )
        await until(self.healthy, f"{self.identity} /healthz")


def connections_opened(slack: SocketSlack) -> int:
    return len([c for c in slack.web.calls_to("apps.connections.open") if c.answer.get("ok")])


async def connected(slack: SocketSlack, hellos: int) -> bool:
    return len(slack.sock.hellos) >= hellos and slack.sock.open_connections == 1


async def answers(slack: SocketSlack, node: str, parent_count: int) -> None:
    ack = await slack.command(node)
    assert "envelope_id" in ack
    await until(lambda: _count(slack, parent_count), f"the parent message for {node}")


async def _count(slack: SocketSlack, n: int) -> bool:
    return len(parents(slack.web)) >= n


async def two_replicas(tmp_path: Path, cluster: Cluster, slack: SocketSlack) -> tuple[SocketReplica, ...]:  # noqa: F811
    a = SocketReplica(tmp_path, cluster, slack, "replica-a")
    b = SocketReplica(tmp_path, cluster, slack, "replica-b")
    await a.start()
    await until(lambda: connected(slack, 1), "replica-a connected")
    assert await asyncio.to_thread(cluster.lease_holder) == "replica-a"
    await b.start()
    await asyncio.sleep(LEASE_S / 2)  # many retry periods: b stays standby while a renews
    assert (await b.get("/readyz"))[0] == 200  # a standby is Ready
    assert connections_opened(slack) == 1 and slack.sock.open_connections == 1
    await answers(slack, "worker2", 1)
    return a, b


async def test_sigterm_hands_the_connection_over(
    tmp_path: Path, cluster: Cluster, slack: SocketSlack  # noqa: F811
) -> None:
    a, b = await two_replicas(tmp_path, cluster, slack)
    try:
        loop = asyncio.get_running_loop()
        watching = threading.Event()
        holders = asyncio.create_task(asyncio.to_thread(cluster.lease_holders, "replica-b", watching))
        assert await asyncio.to_thread(watching.wait, WAIT_S)  # the watch sees a's Lease first
        a.process.send_signal(signal.SIGTERM)
        signalled = loop.time()
        await until(lambda: connected(slack, 2), "replica-b connected")
        took_over = loop.time() - signalled
        assert await a.process.wait() == 0
        written = await holders
        # released, then taken: b acquired the emptied Lease instead of waiting for a's to expire (an
        # expiry would show replica-a straight to replica-b); told by the order of writes, not by time
        assert written[0] == "replica-a" and written[-1] == "replica-b" and written[-2] == "", written
        await answers(slack, "master", 2)
        answered = loop.time() - signalled
        assert slack.sock.max_open == 1  # never two replicas connected at once
        assert connections_opened(slack) == 2
        print(f"SIGTERM: Lease writes {written}, standby connected after {took_over:.2f} s, "
              f"answered after {answered:.2f} s")
    finally:
        await a.kill()
        await b.kill()


async def test_sigkill_standby_waits_out_the_lease(
    tmp_path: Path, cluster: Cluster, slack: SocketSlack  # noqa: F811
) -> None:
    a, b = await two_replicas(tmp_path, cluster, slack)
    try:
        loop = asyncio.get_running_loop()
        await a.kill()  # no release: the Lease just stops being renewed
        killed = loop.time()
        await until(lambda: connected(slack, 2), "replica-b connected")
        took_over = loop.time() - killed
        await answers(slack, "master", 2)
        answered = loop.time() - killed
        assert LEASE_S - 2 * RETRY_S <= took_over, f"took over after {took_over:.2f} s: lease not waited out"
        assert answered < LEASE_S + RETRY_S + CONNECT_S, f"standby answered {answered:.2f} s after SIGKILL"
        assert slack.sock.max_open == 1
        print(f"SIGKILL: standby connected after {took_over:.2f} s, answered after {answered:.2f} s")
    finally:
        await a.kill()
        await b.kill()


async def test_forbidden_lease_then_leader_election_off(
    tmp_path: Path, cluster: Cluster, slack: SocketSlack  # noqa: F811
) -> None:
    # the bot's token is netcheck:netcheck; in "platform" the shipped Role grants it no Lease
    blocked = SocketReplica(tmp_path, cluster, slack, "blocked", namespace="platform")
    await blocked.start()
    try:
        status, body = await until(lambda: _ready(blocked, 503), "/readyz 503")
        assert body.startswith("leader-election: cannot use the leader Lease platform/netcheck-leader: ")
        assert "Grant the ServiceAccount a Role in namespace platform" in body
        await asyncio.sleep(10 * RETRY_S)
        errors = [e for e in blocked.log_events() if e.get("level") == "error"]
        assert [e["event"] for e in errors] == ["leader_election_blocked"], errors  # once, not per retry
        assert slack.sock.hellos == [] and connections_opened(slack) == 0
    finally:
        assert await blocked.terminate() == 0

    single = SocketReplica(tmp_path, cluster, slack, "single", ops={"leader_election": False},
                           namespace="platform")
    await single.start()
    try:
        await until(lambda: connected(slack, 1), "the single replica connected")
        await answers(slack, "worker2", 1)
        assert (await single.get("/readyz"))[0] == 200
        events = [e["event"] for e in single.log_events()]
        assert "leader_election_off" in events and "leader_election_blocked" not in events
    finally:
        assert await single.terminate() == 0
    leases = client.CoordinationV1Api(cluster.admin)
    for namespace in ("platform", "netcheck"):  # no Lease was ever written
        found = await asyncio.to_thread(leases.list_namespaced_lease, namespace)
        assert found.items == [], namespace


async def _ready(replica: Replica, wanted: int) -> tuple[int, str] | None:
    status, body = await replica.get("/readyz")
    return (status, body) if status == wanted else None

