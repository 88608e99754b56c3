"""A real `netcheck serve` process (HTTP mode) against unauthenticated, malformed requests.

Covers: each body the issue found answered 500 with a traceback (a form body sent as JSON, a
`payload=` that is not JSON, broken JSON, JSON nested 50,000 levels, plus an unparsable timestamp)
now gets 401 `{"error": "invalid request"}` and exactly one log line in the process's output (the
JSON `request_refused` line, no traceback), and the process still answers a signed `/netcheck help`.
Reuses the API stand-in (with the shipped RBAC) and Slack stand-in fixtures of test_serve_ops.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from lab.slack.webapi import SlackStandIn
from tests.bot.replicas import (
    Cluster,
    Replica,
    holder_is,
    until,
)

BODIES = [
    ("form body as JSON", b"command=%2Fnetcheck&text=all&user_id=U1&channel_id=C1", "application/json", None),
    ("payload= not JSON", b"payload=%7Bnot-json", "application/x-www-form-urlencoded", None),
    ("broken JSON", b'{"type": "block_actions", ', "application/json", None),
    ("JSON nested 50,000 deep", b"[" * 50_000 + b"]" * 50_000, "application/json", None),
    ("timestamp not a number", b"payload=%7B%7D", "application/x-www-form-urlencoded", "abc"),
]
SETTLE_S = 0.3
"""Seconds given to the process to write what it logs for one request."""


async def post(url: str, body: bytes, content_type: str, timestamp: str | None) -> tuple[int, str]:
    headers = {"content-type": content_type}
    if timestamp is not None:
        headers |= {"x-slack-request-timestamp": timestamp, "x-slack-signature": "v0=" + "0" * 64}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.text()


async def test_unsigned_malformed_bodies_get_401_and_one_log_line(
    tmp_path: Path, cluster: Cluster, slack: SlackStandIn  # noqa: F811
) -> None:
    replica = Replica(tmp_path, cluster, slack, "solo")
    await replica.start()
    try:
        await until(lambda: holder_is(cluster, "solo"), "solo leads (a standby answers 503)")
        seen = []
        for name, body, content_type, timestamp in BODIES:
            before = replica.log.read_text().splitlines()
            status, text = await post(replica.driver.events_url, body, content_type, timestamp)
            await asyncio.sleep(SETTLE_S)
            new = replica.log.read_text().splitlines()[len(before):]
            seen.append((name, status, text, new))
        for name, status, text, new in seen:
            assert (status, json.loads(text)) == (401, {"error": "invalid request"}), name
            assert len(new) == 1, (name, new)
            line = json.loads(new[0])
            assert (line["event"], line["status"]) == ("request_refused", 401), name
        assert "Traceback" not in replica.log.read_text()
        reply = await replica.driver.command("help", user="UALICE", channel="C0NETCHECK")
        assert reply.status == 200 and "Usage" in reply.text
        assert replica.process is not None and replica.process.returncode is None
    finally:
        await replica.kill()
