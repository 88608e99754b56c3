"""The Slack bot against the lab: the real engine (bot.wiring over the lab's SSH nodes and API
stand-in) and the real FixRunner, driven by signed requests through Bolt in HTTP mode, with the Web
API stand-in — all inside the lab's ops namespace.

Covers (every catalog probe, as the bot runs by default): /netcheck on the WiFi node in the case-study
state posts the masquerade problem with its fix button;
an approver's click applies the masquerade fix in the lab (the rule appears once), the outcome
"applied" is posted in the thread and the parent's re-check no longer reports masquerade or pod-api;
on both layouts, `/netcheck all` with ip_forward off on a wired worker: the parent names that node
and ip-forward first and the thread holds exactly one "Apply fix" button, for ip-forward on that node;
a node joining (removed from and re-added to the API stand-in, seen by the real node watch) with
ip_forward off and a small uplink MTU gets a summary listing both differences against the reference.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from lab.cluster import Lab

pytestmark = pytest.mark.lab

CHANNEL = "C0NETCHECK"
SECRET = "lab-signing-secret"


def masquerade_rule(lab: Lab) -> str:
    """The rule the masquerade fix adds on the lab's WiFi node (its pod CIDR out of its uplink)."""
    node = lab.wifi_node
    return f"-A POSTROUTING -s {node.pod_cidr} -o {node.iface} -j MASQUERADE"


def nat_rules(lab: Lab) -> list[str]:
    saved = lab.node_exec(lab.wifi_node.name, "iptables-nft-save", "-t", "nat", check=True).stdout
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
        reply = await driver.command(lab.wifi_node.name, user="UALICE", channel=CHANNEL)
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


def test_approved_click_applies_masquerade_fix_in_lab(lab: Lab, case_study: str) -> None:
    with lab.enter_ops():
        seen = asyncio.run(check_and_fix(lab))
    assert seen["ack"] < 3
    before = seen["before"]
    assert "act on masquerade: NAT skipped" in before and "resolves pod-api" in before, before
    assert seen["button"] == "Apply fix: masquerade"
    assert any("*applied*" in text for text in seen["replies"]), seen["replies"]
    rule = masquerade_rule(lab)
    assert rule not in seen["rules_before"] and seen["rules_after"].count(rule) == 1
    assert seen["after"].startswith("re-check after fix: "), seen["after"]
    assert "NAT skipped" not in seen["after"] and "cannot reach the API" not in seen["after"], seen["after"]
    assert seen["errors"] == []


async def bot_in_lab(lab: Lab, channels: tuple[str, ...], **settings: object):  # noqa: ANN201
    """The real engine and Bolt app over the lab, with the Web API stand-in; the caller closes them."""
    from bot import config as config_module
    from bot import wiring
    from bot.slack.app import build_app
    from bot.slack.settings import SlackSettings
    from fixes.runner import FixRunner
    from lab.slack.driver import SlackDriver
    from lab.slack.webapi import SlackStandIn

    standin = SlackStandIn(channels=channels)
    await standin.start()
    engine = wiring.build_engine(config_module.load(lab.config_file))
    values = {"bot_token": "xoxb-test", "signing_secret": SECRET, "api_url": standin.api_url,
              "approvers": ["UBOB"], **settings}
    app, rt = build_app(SlackSettings.model_validate(values), engine, FixRunner(engine),
                        probe_count=len(list(engine.registry)))
    site_runner = web.AppRunner(app.web_app(path="/slack/events"))
    await site_runner.setup()
    site = web.TCPSite(site_runner, "127.0.0.1", 0)
    await site.start()
    driver = SlackDriver(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/slack/events",
                         SECRET, standin)

    async def close() -> None:
        await rt.tasks.close(1)
        await site_runner.cleanup()
        await standin.stop()
        await engine.aclose()

    return standin, driver, rt, engine, close


async def netcheck_all(lab: Lab) -> dict[str, object]:
    from bot.slack.approvals import decode
    from lab.slack.driver import SlackDriver

    standin, driver, rt, _, close = await bot_in_lab(lab, (CHANNEL,))
    try:
        await driver.command("all", user="UALICE", channel=CHANNEL)
        await rt.tasks.idle(timeout=240)
        parent = standin.messages(CHANNEL)[0]
        buttons = [button for reply in parent.replies for _, button in SlackDriver.buttons(reply)]
        return {"parent": parent.blocks[0]["text"]["text"], "buttons": [b["text"]["text"] for b in buttons],
                "nodes": [decode(b["value"], SECRET).node for b in buttons],
                "replies": [r.text for r in parent.replies],
                "files": [f["name"] for r in parent.replies for f in r.files],
                "errors": [c.answer for c in standin.calls if c.answer.get("ok") is False]}
    finally:
        await close()


def test_netcheck_all_one_button_for_the_one_cause(any_lab: Lab, fault) -> None:
    fault("no-masquerade", node=any_lab.wifi_node.name, on=False)
    node = any_lab.wired_worker.name
    fault("ip-forward-off", node=node)
    with any_lab.enter_ops():
        seen = asyncio.run(netcheck_all(any_lab))
    first = f"netcheck all — {len(any_lab.nodes)} nodes: act first on {node}: ip-forward"
    assert seen["parent"].startswith(first), seen
    assert seen["buttons"] == ["Apply fix: ip-forward"] and seen["nodes"] == [node], seen
    assert seen["files"] == ["netcheck-all-evidence.txt"] and seen["errors"] == [], seen


JOIN = "C0JOINS"


async def join(lab: Lab, node: str) -> dict[str, object]:
    import json

    from bot import wiring
    from lab import apiconfig
    from tests.bot.fakes import start_node_watch

    nodes = json.loads((lab.state / "apiserver.json").read_text())["nodes"]
    config = next(n for n in nodes if n["name"] == node)
    apiconfig.control(lab, "DELETE", f"/lab/v1/nodes/{node}")
    standin, _, rt, engine, close = await bot_in_lab(lab, (JOIN,), join_channel=JOIN, watch_retry_s=0.2)
    try:
        watcher = start_node_watch(rt, wiring.build_node_source(engine))
        await asyncio.wait_for(watcher.ready.wait(), 30)
        await asyncio.to_thread(apiconfig.control, lab, "POST", "/lab/v1/nodes", {**config, "ready": False})
        await asyncio.to_thread(apiconfig.control, lab, "PUT", f"/lab/v1/nodes/{node}/ready", {"ready": True})
        for _ in range(600):
            joins = standin.messages(JOIN)
            if joins and joins[0].edits:
                break
            await asyncio.sleep(0.2)
        parent = standin.messages(JOIN)[0]
        return {"parent": parent.text, "replies": [r.text for r in parent.replies],
                "diff": next((r.blocks for r in parent.replies if r.text.startswith(f"{node} differs")), []),
                "errors": [c.answer for c in standin.calls if c.answer.get("ok") is False]}
    finally:
        await close()
        try:
            apiconfig.request(lab, "GET", f"/api/v1/nodes/{node}")
        except RuntimeError:  # the join did not get as far as re-adding it: leave the lab as found
            apiconfig.control(lab, "POST", "/lab/v1/nodes", config)


def test_node_join_summary_lists_the_differences(any_lab: Lab, fault) -> None:
    fault("no-masquerade", node=any_lab.wifi_node.name, on=False)
    node = any_lab.wired_worker
    fault("ip-forward-off", node=node.name)
    fault("mtu", node=node.name)
    with any_lab.enter_ops():
        seen = asyncio.run(join(any_lab, node.name))
    summary = seen["parent"]
    assert f"{node.name} differs from " in summary, seen
    assert "ip_forward 0 (" in summary, seen
    small, usual = any_lab.layout.small_link_mtu, any_lab.layout.host_mtu
    assert f"uplink {node.iface} MTU {small} " in summary, seen
    assert f" MTU {usual} " in summary.split("uplink", 1)[1], seen  # the reference's uplink
    assert seen["diff"], seen  # the field-by-field reply in the thread
    assert seen["errors"] == [], seen
