"""`netcheck serve [--port 3000] [--config PATH]`: run the Slack bot.

Socket Mode when SLACK_APP_TOKEN is set (no public URL needed), else HTTP mode with Bolt's
/slack/events endpoint on --port. Registered by `bot/cli.py` through `add_parser`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import structlog

from bot.slack.app import build_app, start_node_watch
from bot.slack.settings import SlackSettings
from probes.errors import NetcheckError

log = structlog.get_logger("netcheck.serve")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("serve", help="run the Slack bot (Socket Mode if SLACK_APP_TOKEN is set)")
    parser.add_argument("--port", type=int, default=3000, help="HTTP mode port for /slack/events")
    parser.add_argument(
        "--host", default="0.0.0.0", help="HTTP mode address (default: all, Slack must reach it)"
    )
    parser.add_argument("--config", default=None, help="configuration file")
    parser.set_defaults(run=run)
    return parser


def _load(args: argparse.Namespace) -> tuple[SlackSettings, Any, Any, Any]:
    """Slack settings, engine, fix runner and node source from the root configuration."""
    from bot import config as config_module
    from bot import wiring
    from bot.slack.nodesource import ClusterNodeSource
    from fixes.runner import FixRunner

    config = config_module.load(args.config)
    factory = getattr(args, "engine_factory", None) or wiring.build_engine
    engine = factory(config)
    source = ClusterNodeSource(engine.cluster) if hasattr(engine.cluster, "watch_nodes") else None
    return config.slack, engine, FixRunner(engine), source


async def serve(
    settings: SlackSettings,
    engine: Any,
    runner: Any,
    source: Any,
    *,
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set), then give running tasks their shutdown time."""
    probe_count = len(list(getattr(engine, "registry", [])))
    app, rt = build_app(settings, engine, runner, probe_count=probe_count)
    if source is not None:
        start_node_watch(rt, source)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    if settings.app_token:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        handler = AsyncSocketModeHandler(app, settings.app_token.get_secret_value())
        await handler.connect_async()
        log.info("serving", mode="socket")
        await stop.wait()
        await handler.close_async()
    else:
        from aiohttp import web

        runner_ = web.AppRunner(app.web_app(path="/slack/events", port=port))
        await runner_.setup()
        await web.TCPSite(runner_, host, port).start()
        log.info("serving", mode="http", host=host, port=port, path="/slack/events")
        await stop.wait()
        await runner_.cleanup()
    await rt.tasks.close(settings.shutdown_timeout_s)
    if hasattr(engine, "aclose"):
        await engine.aclose()


def run(args: argparse.Namespace) -> int:
    try:
        settings, engine, runner, source = _load(args)
        asyncio.run(serve(settings, engine, runner, source, host=args.host, port=args.port))
    except NetcheckError as exc:
        print(f"netcheck serve: {exc}")
        return 2
    return 0
