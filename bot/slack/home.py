"""The App Home tab: `app_home_opened` → `views.publish` of the fleet view (homeview.py), and its
"Re-check" buttons.

A re-check runs the same check `/netcheck NODE` runs, in a thread in the watch's channel (else the
node-join channel) asked by the clicking user, so its fix buttons follow the same approval rules as
in channels (the asker cannot approve their own fix unless allowed). The node in the button's value
is validated and must be one of the cluster's nodes; the user ids go through the validator module
(guard.py) before they reach a view or a mention. The clicker's Home tab is published again when
the check is done. Registered by `app.py::build_app`.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp

from bot.slack import fleet_text, guard, homeview, threads
from bot.slack.runtime import Runtime
from probes.errors import InvalidInput
from probes.transports.commands import node_name

log = structlog.get_logger("netcheck.slack.home")


def context(rt: Runtime) -> homeview.HomeContext:
    watch = rt.watch
    return homeview.HomeContext(
        interval=watch.interval if watch is not None else None,
        probes=watch.probes if watch is not None else None,
        watch_channel=watch.channel if watch is not None else None,
        recheck_channel=(watch.channel if watch is not None and watch.channel else None)
        or rt.settings.join_channel,
    )


def register(app: AsyncApp, rt: Runtime) -> None:
    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return  # the Messages tab was opened
        user = guard.slack_id_or_none(event.get("user"), "Slack user id")
        if user is None:
            log.warning("refusal", reason="bad-user", event="app_home_opened")
            return
        rt.tasks.spawn(publish(rt, user), name="home-publish")

    @app.action(homeview.RECHECK_ACTION)
    async def recheck(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user = guard.slack_id_or_none(guard.mapping(body.get("user")).get("id"), "Slack user id")
        if user is None:
            log.warning("refusal", reason="bad-user", action=homeview.RECHECK_ACTION)
            return
        rt.tasks.spawn(handle_recheck(rt, user, guard.text_field(action.get("value"))), name="home-recheck")


async def _known_nodes(rt: Runtime) -> list[str]:
    try:
        return list(await rt.engine.node_names())
    except Exception as exc:  # the view still shows what the fleet state knows
        log.warning("home_nodes_failed", error=str(exc))
        return list(rt.fleet.nodes)


async def publish(rt: Runtime, user: str) -> None:
    """Publish the fleet view to `user`'s Home tab."""
    links = {}
    for regression in rt.fleet.regressions:
        if regression.thread is not None and regression.thread not in links:
            links[regression.thread] = await rt.permalink(*regression.thread)
    known = await _known_nodes(rt)
    view = homeview.build(rt.fleet, known, context(rt), time.time(), links)
    await threads.call(rt, "views.publish", user_id=user, view=view)
    log.info("home_published", user=user, nodes=len(known))


async def handle_recheck(rt: Runtime, user: str, value: str) -> None:
    channel = context(rt).recheck_channel
    try:
        node = node_name(value).value
    except InvalidInput as exc:
        log.warning("refusal", reason="bad-node", user=user, error=str(exc))
        return
    if channel is None or node not in await _known_nodes(rt):
        log.info("refusal", reason="no-channel" if channel is None else "unknown-node", user=user, node=node)
        await publish(rt, user)
        return
    if node in rt.running:
        log.info("refusal", reason="already-running", user=user, node=node)
        await publish(rt, user)
        return
    log.info("home_recheck", user=user, node=node, channel=channel)
    parent_ts = await threads.post_parent(rt, channel, fleet_text.home_recheck_parent(node, user))
    if parent_ts is not None:
        await threads.run_check(rt, node, channel, user, parent_ts)
    await publish(rt, user)
