"""Slash-command ack latency while checks run, and the bot's resident memory idle and during a sweep.

Run inside the lab's ops namespace by bench/run (`python -m bench.slackbench --requests 200`,
KUBECONFIG/NETCHECK_CONFIG from Lab.run_ops). The bot is the real thing in its own process:
`netcheck serve --port P` (Bolt in HTTP mode on 127.0.0.1 of the ops namespace, leader election,
the real engine against the lab), with SLACK_API_URL pointing at the Web API stand-in. This process
plays Slack: the stand-in (lab/slack/webapi.py) and the signed-request driver (lab/slack/driver.py).
Once the bot answers, it reads the bot's VmRSS (/proc/PID/status) idle, sends `/netcheck all` (the
sweep of every node, through the bot), then `requests` signed `/netcheck NODE` commands at a fixed
interval without waiting for each other (each starts a real check, or is told one is running); the
ack time is each command's HTTP round trip (--help-only / --no-sweep give reference points:
acks while only the sweep runs, and acks of an idle bot). RSS is sampled until the sweep's summary is posted.
With --profile, py-spy samples the bot during the burst (bench/profile.py). The bot is stopped with
SIGTERM by PID. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import profile
from bench.stats import rss_kib, summary_ms
from lab.slack.driver import SlackDriver
from lab.slack.webapi import SlackStandIn

CHANNEL = "C0NETCHECK"
SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"
SEND_INTERVAL_S = 0.05
ACK_TIMEOUT_S = 10.0
RSS_SAMPLE_INTERVAL_S = 0.1
BOT_READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.25
SETTLE_S = 2.0
SWEEP_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bot_rss_kib(pid: int) -> int:
    return rss_kib(Path(f"/proc/{pid}/status").read_text())


async def wait_answering(driver: SlackDriver) -> None:
    """Until the bot is leader and answers a signed `/netcheck help` with 200."""
    deadline = time.monotonic() + BOT_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            reply = await driver.command("help", user="UREADY", channel=CHANNEL, timeout=ACK_TIMEOUT_S)
            if reply.status == 200:
                return
        except OSError:
            pass  # not listening yet
        await asyncio.sleep(READY_POLL_S)
    raise RuntimeError(f"the bot did not answer within {BOT_READY_TIMEOUT_S:g} s")


def sweep_finished(standin: SlackStandIn, title: str | None) -> tuple[bool, str | None]:
    """(done, title): the sweep's parent is the first channel message; done once its text changed."""
    messages = standin.messages(CHANNEL)
    if not messages:
        return False, title
    parent = messages[0]
    if title is None:
        return False, parent.text
    return parent.text != title, title


def start_bot(python: str, port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("w") as log:
        return subprocess.Popen([python, "-m", "bot.cli", "serve", "--port", str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)


async def run(requests: int, log_path: Path, *, help_only: bool, sweep: bool, python: str = sys.executable,
              profile_path: Path | None = None) -> dict[str, Any]:
    standin = SlackStandIn(bot_token=BOT_TOKEN, channels=(CHANNEL,))
    await standin.start()
    port = free_port()
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_URL": standin.api_url}
    env.pop("SLACK_APP_TOKEN", None)  # HTTP mode
    bot = start_bot(python, port, env, log_path)
    driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SECRET, standin)
    try:
        await wait_answering(driver)
        await asyncio.sleep(SETTLE_S)
        names = await _node_names()
        rss_idle = bot_rss_kib(bot.pid)
        peak = rss_idle
        t0 = time.monotonic()
        sweep_ack = await driver.command("all" if sweep else "help", user="USWEEP", channel=CHANNEL,
                                         timeout=ACK_TIMEOUT_S)
        # sampled for the burst of commands only (the window the ack figures come from)
        sampler = profile.record(bot.pid, requests * SEND_INTERVAL_S + 1, profile_path) \
            if profile_path is not None else None

        async def one(i: int) -> float | None:
            try:
                text = "help" if help_only else names[i % len(names)]
                reply = await driver.command(text, user=f"U{i:04d}", channel=CHANNEL, timeout=ACK_TIMEOUT_S)
            except TimeoutError:
                return None
            return reply.elapsed_s if reply.status == 200 else None

        sends = []
        for i in range(requests):
            sends.append(asyncio.create_task(one(i)))
            await asyncio.sleep(SEND_INTERVAL_S)
            peak = max(peak, bot_rss_kib(bot.pid))
        title: str | None = None
        done = False
        while sweep and not done and time.monotonic() - t0 < SWEEP_TIMEOUT_S:
            peak = max(peak, bot_rss_kib(bot.pid))
            done, title = sweep_finished(standin, title)
            await asyncio.sleep(RSS_SAMPLE_INTERVAL_S)
        sweep_s = time.monotonic() - t0
        acks = await asyncio.gather(*sends)
        profiled = None
        if sampler is not None and profile_path is not None:
            _, err = await asyncio.to_thread(sampler.communicate, timeout=STOP_TIMEOUT_S)
            profiled = await asyncio.to_thread(profile.read, profile_path, err)
        answered = [a for a in acks if a is not None]
        return {"nodes": len(names), "requests": requests, "commands": "help" if help_only else "NODE",
                "sweep": sweep, "answered": len(answered),
                "unanswered_or_timeout": len(acks) - len(answered),
                "ack": summary_ms(answered) if answered else None,
                "sweep_ack_ms": round(sweep_ack.elapsed_s * 1000, 2), "sweep_done": done,
                "sweep_s": round(sweep_s, 3),
                "sweep_parent_text": standin.messages(CHANNEL)[0].text[:300] if sweep and done else None,
                "rss_idle_kib": rss_idle, "rss_peak_kib": peak, "profile": profiled,
                "bot_log": str(log_path)}
    finally:
        bot.send_signal(signal.SIGTERM)  # by PID: the bot this function started
        try:
            await asyncio.to_thread(bot.wait, STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            bot.kill()
            bot.wait()
        await standin.stop()


async def _node_names() -> list[str]:
    from bot import config as config_module
    from bot import wiring

    engine = wiring.build_engine(config_module.load(None))
    try:
        return await engine.node_names()
    finally:
        await engine.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slackbench", description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--bot-log", type=Path, default=Path("/tmp/netcheck-bench-bot.log"))
    parser.add_argument("--help-only", action="store_true",
                        help="send `/netcheck help` (ack, no check started) instead of `/netcheck NODE`")
    parser.add_argument("--no-sweep", dest="sweep", action="store_false", help="no `/netcheck all` meanwhile")
    parser.add_argument("--profile", type=Path, default=None,
                        help="sample the bot with py-spy during the burst into this file (collapsed stacks)")
    parser.add_argument("--python", default=sys.executable,
                        help="the Python the bot runs on (bench/run: netcheck's dependencies only)")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 5000:
        parser.error("--requests must be from 1 to 5000")
    result = asyncio.run(run(args.requests, args.bot_log, help_only=args.help_only, sweep=args.sweep,
                             python=args.python, profile_path=args.profile))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
