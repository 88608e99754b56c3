"""The Slack bot against the lab: the real engine (bot.wiring over the lab's SSH nodes and API
stand-in) and the real FixRunner, driven by signed requests through Bolt in HTTP mode, with the Web
API stand-in — all inside the lab's ops namespace.

Covers (every catalog probe, as the bot runs by default): /netcheck worker2 in the case-study
state posts the masquerade problem with its fix button;
an approver's click applies the masquerade fix in the lab (the rule appears once), the outcome
"applied" is posted in the thread and the parent's re-check no longer reports masquerade or pod-api.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiohttp import web

from lab.cluster import Lab
from tests.bot.test_slack_fakes import fresh_logging  # noqa: F401  (autouse)

pytestmark = pytest.mark.lab

NODE = "worker2"
CHANNEL = "C0NETCHECK"
RULE = "-A POSTROUTING -s 192.168.88.0/24 -o wlp59s0 -j MASQUERADE"
UNIT = "/etc/systemd/system/netcheck-masquerade.service"
SECRET = "lab-signing-secret"


def reset_worker2(lab: Lab) -> None:
    lab.node_exec(NODE, "sh", "-c", f"systemctl disable --now netcheck-masquerade.service; rm -f {UNIT}; "
                  "systemctl daemon-reload")
    lab.fault("no-masquerade", node=NODE, on=True)


@pytest.fixture
def case_study(lab: Lab) -> Iterator[None]:
    reset_worker2(lab)
    yield
    reset_worker2(lab)


def nat_rules(lab: Lab) -> list[str]:
    saved = lab.node_exec(NODE, "iptables-nft-save", "-t", "nat", check=True).stdout
    return [line.split(" [")[0] for line in saved.splitlines() if line.startswith("-A")]


async def check_and_fix(lab: Lab) -> dict[str, object]:
    from bot import config as config_module
    from bot import wiring
    from bot.slack.app import build_app
    from bot.slack.http import events_app
    from bot.slack.settings import SlackSettings
    from fixes.runner import FixRunner
    from lab.slack.driver import SlackDriver
    from lab.slack.webapi import SlackStandIn

    standin = SlackStandIn(channels=(CHANNEL,))
    await standin.start()
    engine = wiring.build_engine(config_module.load(lab.config_file))
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": SECRET,
                                             "api_url": standin.api_url, "approvers": ["UBOB"]})
    app, rt = build_app(settings, engine, FixRunner(engine), probe_count=len(list(engine.registry)))
    site_runner = web.AppRunner(events_app(app, settings))
    await site_runner.setup()
    site = web.TCPSite(site_runner, "127.0.0.1", 0)
    await site.start()
    driver = SlackDriver(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/slack/events",
                         SECRET, standin)
    try:
        reply = await driver.command(NODE, user="UALICE", channel=CHANNEL)
        await rt.tasks.idle(timeout=120)
        parent = standin.messages(CHANNEL)[0]
        before = parent.text
        with_buttons = [r for r in parent.replies if SlackDriver.buttons(r)]
        assert with_buttons, f"no fix button; parent {before!r}, replies {[r.text for r in parent.replies]}"
        fix_message = with_buttons[0]
        button_text = SlackDriver.buttons(fix_message)[0][1]["text"]["text"]
        rules_before = nat_rules(lab)
        await driver.click(fix_message, user="UBOB")
        await rt.tasks.idle(timeout=180)
        return {"ack": reply.elapsed_s, "before": before, "button": button_text,
                "rules_before": rules_before, "rules_after": nat_rules(lab), "after": parent.text,
                "replies": [r.text for r in parent.replies],
                "errors": [c.answer for c in standin.calls if c.answer.get("ok") is False]}
    finally:
        await rt.tasks.close(1)
        await site_runner.cleanup()
        await standin.stop()
        await engine.aclose()


def test_approved_click_applies_masquerade_fix_in_lab(lab: Lab, case_study: None) -> None:
    with lab.enter_ops():
        seen = asyncio.run(check_and_fix(lab))
    assert seen["ack"] < 3
    before = seen["before"]
    assert "cannot reach the API" in before and "(cause: NAT skipped" in before, before
    assert seen["button"] == "Apply fix: masquerade"
    assert any("*applied*" in text for text in seen["replies"]), seen["replies"]
    assert RULE not in seen["rules_before"] and seen["rules_after"].count(RULE) == 1
    assert seen["after"].startswith("re-check after fix: "), seen["after"]
    assert "NAT skipped" not in seen["after"] and "cannot reach the API" not in seen["after"], seen["after"]
    assert seen["errors"] == []
