"""Slash-command ack latency while checks run, and the bot's resident memory idle and under a sweep.

Run inside the lab's ops namespace by bench/run (`python -m bench.slackbench --requests 200`,
KUBECONFIG/NETCHECK_CONFIG from Lab.run_ops). One process holds the real Bolt app in HTTP mode on
127.0.0.1 (bot.slack.app.build_app with the real engine against the lab), the Slack Web API
stand-in and the signed-request driver (lab/slack). While the engine sweeps every node
(`check_all`, as `netcheck check --all`), `requests` signed `/netcheck NODE` commands are sent at a
fixed interval without waiting for each other (each starts a real check); the ack time is the HTTP
round trip of each. RSS is this process's VmRSS: bot + stand-in + driver, so an upper bound for the bot.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.stats import rss_kib, summary_ms

CHANNEL = "C0NETCHECK"
SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"
SEND_INTERVAL_S = 0.05
RSS_SAMPLE_INTERVAL_S = 0.1
CLOSE_TIMEOUT_S = 5.0


def own_rss_kib() -> int:
    return rss_kib(Path("/proc/self/status").read_text())


async def sample_rss(peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], own_rss_kib())
        try:
            await asyncio.wait_for(stop.wait(), RSS_SAMPLE_INTERVAL_S)
        except TimeoutError:
            pass


async def run(requests: int) -> dict[str, Any]:
    from bot import config as config_module
    from bot import wiring
    from bot.slack.app import build_app
    from bot.slack.settings import SlackSettings
    from fixes.runner import FixRunner
    from lab.slack.driver import SlackDriver
    from lab.slack.webapi import SlackStandIn

    standin = SlackStandIn(bot_token=BOT_TOKEN, channels=(CHANNEL,))
    await standin.start()
    engine = wiring.build_engine(config_module.load(None))
    settings = SlackSettings.model_validate({"bot_token": BOT_TOKEN, "signing_secret": SECRET,
                                             "api_url": standin.api_url, "approvers": ["UBOB"]})
    app, rt = build_app(settings, engine, FixRunner(engine), probe_count=len(list(engine.registry)))
    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SECRET, standin)
    try:
        nodes = await engine.node_names()
        await asyncio.sleep(1.0)
        rss_idle = own_rss_kib()
        peak, stop = [rss_idle], asyncio.Event()
        sampler = asyncio.create_task(sample_rss(peak, stop))
        t0 = time.monotonic()
        sweep = asyncio.create_task(engine.check_all())

        async def one(i: int) -> tuple[int, float]:
            reply = await driver.command(nodes[i % len(nodes)], user=f"U{i:04d}", channel=CHANNEL)
            return reply.status, reply.elapsed_s

        sends = []
        for i in range(requests):
            sends.append(asyncio.create_task(one(i)))
            await asyncio.sleep(SEND_INTERVAL_S)
        acks = await asyncio.gather(*sends)
        sweep_reports = await sweep
        sweep_s = time.monotonic() - t0
        # the checks the commands started are not waited for: close() below cancels what is left
        stop.set()
        await sampler
        statuses = sorted({s for s, _ in acks})
        return {"nodes": len(nodes), "requests": requests, "ack_http_statuses": statuses,
                "ack": summary_ms([e for _, e in acks]), "sweep_s": round(sweep_s, 3),
                "sweep_nodes": len(sweep_reports), 
                "rss_idle_kib": rss_idle, "rss_peak_kib": peak[0],
                "messages_posted": len(standin.messages(CHANNEL))}
    finally:
        await rt.tasks.close(CLOSE_TIMEOUT_S)
        await runner.cleanup()
        await standin.stop()
        await engine.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slackbench", description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 5000:
        parser.error("--requests must be from 1 to 5000")
    print(json.dumps(asyncio.run(run(args.requests))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
