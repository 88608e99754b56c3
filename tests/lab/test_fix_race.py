"""`netcheck fix` in a terminal racing an approved Slack click for the same fix on the same node, on
the lab: the bot in-process (real engine, fix runner and node Lease from `bot.wiring`, Bolt in HTTP
mode, the Slack stand-in) and the CLI as its own process, both with the bot's RBAC'd kubeconfig.

Covers: the fix is applied exactly once (one MASQUERADE rule), one process reports `applied` and the
other `nothing-to-do`; the second one's plan/precheck started only after the first one verified
(audit trail timestamps across both processes); neither process deleted the other's debug pod as a
leftover, and no probe of either was skipped for want of its pod.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
import structlog
from aiohttp import web

from lab.cluster import Lab

pytestmark = pytest.mark.lab

NETCHECK = str(Path(sys.executable).with_name("netcheck"))
CHANNEL = "C0NETCHECK"
SECRET = "lab-signing-secret"
STEP_TIMEOUT_S = 240.0


def wifi_node(lab: Lab):  # noqa: ANN201 (lab.spec.NodeSpec)
    return next(n for n in lab.nodes if n.wifi)


def masquerade_rules(lab: Lab) -> list[str]:
    node = wifi_node(lab)
    saved = lab.node_exec(node.name, "iptables-nft-save", "-t", "nat", check=True).stdout
    return [line for line in saved.splitlines()
            if line.startswith("-A POSTROUTING") and node.pod_cidr in line and "MASQUERADE" in line]


async def race(lab: Lab) -> dict[str, object]:
    from bot import config as config_module
    from bot import wiring
    from bot.slack.app import build_app
    from bot.slack.settings import SlackSettings
    from lab.slack.driver import SlackDriver
    from lab.slack.webapi import SlackStandIn

    node = wifi_node(lab)
    standin = SlackStandIn(channels=(CHANNEL,))
    await standin.start()
    config = config_module.load(lab.config_file)
    engine = wiring.build_engine(config)
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": SECRET,
                                             "api_url": standin.api_url, "approvers": ["UBOB"]})
    app, rt = build_app(settings, engine, wiring.build_fix_runner(config, engine),
                        probe_count=len(list(engine.registry)))
    site_runner = web.AppRunner(app.web_app(path="/slack/events"))
    await site_runner.setup()
    site = web.TCPSite(site_runner, "127.0.0.1", 0)
    await site.start()
    driver = SlackDriver(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/slack/events",
                         SECRET, standin)
    try:
        await driver.command(node.name, user="UALICE", channel=CHANNEL)
        await rt.tasks.idle(timeout=STEP_TIMEOUT_S)
        parent = standin.messages(CHANNEL)[0]
        with_button = [r for r in parent.replies if SlackDriver.buttons(r)]
        assert with_button, [r.text for r in parent.replies]
        cli = asyncio.create_task(asyncio.to_thread(
            lab.run_ops, [NETCHECK, "--log-level", "info", "fix", node.name, "masquerade",
                          "--param", f"pod_cidr={node.pod_cidr}", "--param", f"interface={node.iface}",
                          "--yes"], timeout=STEP_TIMEOUT_S))
        await asyncio.sleep(1.0)  # the CLI is starting up (imports, plan) while the click arrives
        await driver.click(with_button[0], user="UBOB")
        await rt.tasks.idle(timeout=STEP_TIMEOUT_S)
        done = await cli
        return {"cli": done, "replies": [r.text for r in parent.replies], "parent": parent.text}
    finally:
        await rt.tasks.close(1)
        await site_runner.cleanup()
        await standin.stop()
        await engine.aclose()


def audit(text: str) -> list[dict]:
    return [e for e in (json.loads(line) for line in text.splitlines() if line.startswith("{"))
            if e.get("logger") == "netcheck.audit"]


def test_cli_fix_racing_a_slack_click_applies_once(
    lab: Lab, case_study: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with structlog.testing.capture_logs() as bot_logs, lab.enter_ops():
        seen = asyncio.run(race(lab))
    bot_err = capfd.readouterr().err
    cli = seen["cli"]
    assert cli.returncode == 0, cli.stdout[-2000:] + cli.stderr[-2000:]  # applied or nothing to do
    assert masquerade_rules(lab) and len(masquerade_rules(lab)) == 1, masquerade_rules(lab)

    cli_outcome = next(line.split(":")[0] for line in cli.stdout.splitlines()
                       if line.startswith(("applied:", "nothing-to-do:", "busy:")))
    outcome_reply = next(t for t in seen["replies"] if "masquerade" in t and "<@UBOB>" in t)
    bot_outcome = "applied" if "*applied*" in outcome_reply else "nothing-to-do"
    assert "nothing-to-do" in outcome_reply or bot_outcome == "applied", outcome_reply
    assert sorted([cli_outcome, bot_outcome]) == ["applied", "nothing-to-do"], (cli.stdout, outcome_reply)

    trail = audit(bot_err) + audit(cli.stderr)
    verified = next(e["timestamp"] for e in trail if e["step"] == "verify")
    winner = next(e["who"] for e in trail if e["step"] == "verify")
    loser_began = next(e["timestamp"] for e in trail if e["step"] == "approval" and e["who"] != winner)
    assert loser_began >= verified, trail  # the second precheck never overlapped the first apply
    print(f"CLI: {cli_outcome}; bot: {bot_outcome}; first verified {verified}, second began {loser_began}")

    cli_log = cli.stdout + cli.stderr
    assert "deleting leftover debug pod" not in cli_log
    assert not [e for e in bot_logs if e["event"] == "deleting leftover debug pod"]
    skipped = [e for e in bot_logs if e["event"] == "probe skipped"]
    assert skipped == [], skipped
    assert "no debug pod" not in cli_log
