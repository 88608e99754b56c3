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
import json
import time
from pathlib import Path

import aiohttp

from lab.slack.webapi import Message, SlackStandIn
from tests.bot.replicas import (
    CHANNEL,
    OPS,
    Cluster,
    Replica,
    holder_is,
    metric,
    parents,
    until,
)


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
        await until(lambda: holder_is(cluster, "replica-a"), "replica-a leads")
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
        await until(lambda: holder_is(cluster, "replica-b"), "replica-b takes over")
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


async def _count(slack: SlackStandIn, n: int) -> bool:
    return len(parents(slack)) >= n
