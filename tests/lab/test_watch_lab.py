"""`netcheck serve` with the continuous watch, in the lab: the real engine over the lab's nodes and API
stand-in, the real Bolt app in HTTP mode, the Slack stand-in, all in the lab's ops namespace.

Runs on both lab layouts (the case study's and `edge`: other names, interfaces, CIDRs, service IP).
The watch runs on its schedule (`watch.interval: 10s`); the test asks for each further sweep with
`FleetState.sweep_now()` and waits for it, so nothing depends on timing. The fleet starts healthy
(MASQUERADE in place everywhere, restored after the test).
Covers: `ip-forward-off` switched on mid-watch gives exactly one regression thread after 2 sweeps,
naming the node and the cause (ip-forward; pod-api explained by it), with the fix button and the
layer picture in that thread — a valid PNG whose layer colours match the findings (host routing and
pod app red, the node's own leg green, the veth not checked) with the cause ringed; switched off, one
recovery line; a fault flapping every sweep posts nothing more; /metrics shows the node's
ip-forward status go from ok to fail and back; the Home tab lists every node of the lab and
validates against Home-view limits; Slack refused none of the bot's calls.
"""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Callable

import aiohttp
import pytest
from PIL import Image

from bot.picture import BOXES, FILL, Shade
from bot.picture.draw import BACKGROUND, CAUSE_RING, CAUSE_RING_GAP, CAUSE_RING_WIDTH
from bot.picture.layout import API_SERVER, HOST_LEG
from lab.cluster import Lab
from probes.model import Layer

pytestmark = pytest.mark.lab

CHANNEL = "C0WATCH"
USER = "UOPS"
SECRET = "watch-lab-secret"
SWEEP_TIMEOUT_S = 90.0
FAULT = "ip-forward-off"
PROBES = ["host-api", "pod-api", "ip-forward"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def metrics_text(port: int) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            return await resp.text()


def status_value(exposition: str, node: str, probe: str, status: str) -> float | None:
    prefix = f'netcheck_node_probe_status{{node="{node}",probe="{probe}",status="{status}"}} '
    line = next((ln for ln in exposition.splitlines() if ln.startswith(prefix)), None)
    return None if line is None else float(line.removeprefix(prefix))


async def watch_scenario(lab: Lab, fault: Callable[..., None], target: str) -> dict[str, object]:
    from bot import config as config_module
    from bot import wiring
    from bot.commands.serve import build_fleet, serve
    from bot.ops.settings import OpsSettings
    from bot.slack.settings import SlackSettings
    from bot.watch.settings import WatchSettings
    from lab.slack.driver import SlackDriver
    from lab.slack.webapi import SlackStandIn

    standin = SlackStandIn(channels=(CHANNEL,))
    await standin.start()
    engine = wiring.build_engine(config_module.load(lab.config_file))
    settings = SlackSettings.model_validate({"bot_token": "xoxb-test", "signing_secret": SECRET,
                                             "api_url": standin.api_url, "approvers": [USER]})
    watch = WatchSettings.model_validate({"interval": "10s", "channel": CHANNEL, "probes": PROBES,
                                          "agree": 2, "max_parallel": len(lab.nodes)})
    fleet = build_fleet(watch)
    health, port, stop = free_port(), free_port(), asyncio.Event()
    runner = wiring.build_fix_runner(config_module.load(lab.config_file), engine)
    server = asyncio.create_task(serve(
        settings, wiring.Services(engine, runner),
        host="127.0.0.1", port=port, stop=stop, ops=OpsSettings(health_host="127.0.0.1", health_port=health),
        watch=watch, fleet=fleet))
    seen: dict[str, object] = {}

    async def switch(on: bool) -> None:
        await asyncio.to_thread(fault, FAULT, target, on)

    async def sweep() -> None:
        await fleet.sweep_now(SWEEP_TIMEOUT_S)

    try:
        await fleet.wait_for_sweeps(1, SWEEP_TIMEOUT_S)  # the baseline, on the schedule
        seen["after_baseline"] = len(standin.messages(CHANNEL))
        await switch(True)
        await sweep()
        seen["after_one_broken_sweep"] = len(standin.messages(CHANNEL))
        await sweep()
        seen["metrics_broken"] = await metrics_text(health)
        seen["after_two_broken_sweeps"] = len(standin.messages(CHANNEL))
        await switch(False)
        await sweep()
        await sweep()
        seen["metrics_healed"] = await metrics_text(health)
        seen["after_recovery"] = len(standin.messages(CHANNEL))
        for _ in range(2):  # flapping: on for one sweep, off for the next
            await switch(True)
            await sweep()
            await switch(False)
            await sweep()
        driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SECRET, standin)
        seen["home_status"] = (await driver.home_opened(USER)).status
        for _ in range(200):
            if USER in standin.home_views:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(server, 60)
        await standin.stop()
    seen["messages"] = standin.messages(CHANNEL)
    seen["files"] = standin.files
    seen["home"] = standin.home_views.get(USER)
    seen["refused"] = [(c.method, c.answer) for c in standin.calls if c.answer.get("ok") is False]
    seen["sweeps"] = fleet.sweeps
    return seen


def test_watch_posts_one_regression_and_one_recovery(any_lab: Lab, fault: Callable[..., None]) -> None:
    lab = any_lab
    for node in lab.active_faults().get("no-masquerade", set()):
        fault("no-masquerade", node, False)  # a healthy fleet to start from
    target = lab.wired_worker.name
    with lab.enter_ops():
        seen = asyncio.run(watch_scenario(lab, fault, target))

    assert seen["refused"] == []
    assert seen["after_baseline"] == 0 and seen["after_one_broken_sweep"] == 0
    assert seen["after_two_broken_sweeps"] == 1
    messages = seen["messages"]
    assert len(messages) == 2, [m.text for m in messages]  # flapping added nothing
    regression, recovery = messages
    assert regression.text.startswith(f":rotating_light: *Regression on {target}* — `ip-forward`: "), \
        regression.text
    assert "act on ip-forward" in regression.text and "(resolves pod-api)" in regression.text
    assert any(b.get("type") == "actions" for r in regression.replies for b in r.blocks)  # fix button
    assert recovery.text.startswith(f":white_check_mark: {target} recovered: `ip-forward` ok again")
    assert "|thread>" in recovery.text and recovery.replies == []

    (picture,) = [f for f in seen["files"] if f.thread_ts == regression.ts and f.filename.endswith(".png")]
    assert picture.id in [f["id"] for r in regression.replies for f in r.files]
    image = Image.open(io.BytesIO(picture.data))
    assert image.format == "PNG"
    image = image.convert("RGB")
    expected = {Layer.HOST_ROUTE.value: Shade.PROBLEM, Layer.POD_APP.value: Shade.PROBLEM,
                HOST_LEG: Shade.OK, API_SERVER: Shade.OK, Layer.HOST_VETH.value: Shade.UNCHECKED,
                Layer.ROUTER.value: Shade.UNCHECKED}
    for key, shade in expected.items():
        assert image.getpixel(BOXES[key].sample) == FILL[shade], key
    ring = CAUSE_RING_GAP + CAUSE_RING_WIDTH // 2
    route, app = BOXES[Layer.HOST_ROUTE.value], BOXES[Layer.POD_APP.value]
    assert image.getpixel((route.left - ring, route.sample[1])) == CAUSE_RING  # the cause
    assert image.getpixel((app.left - ring, app.sample[1])) == BACKGROUND  # a symptom: not ringed

    broken, healed = seen["metrics_broken"], seen["metrics_healed"]
    assert status_value(broken, target, "ip-forward", "fail") == 1.0
    assert status_value(broken, target, "ip-forward", "ok") == 0.0
    assert status_value(healed, target, "ip-forward", "fail") == 0.0
    assert status_value(healed, target, "ip-forward", "ok") == 1.0

    from lab.slack.views import view_messages

    assert seen["home_status"] == 200 and seen["home"] is not None
    assert view_messages(USER, seen["home"]) == []
    listed = [b["accessory"]["value"] for b in seen["home"]["blocks"] if "accessory" in b]
    assert sorted(listed) == sorted(n.name for n in lab.nodes)
    assert seen["after_recovery"] == 2  # the recovery line, after `agree` healed sweeps
    assert seen["sweeps"] >= 9
