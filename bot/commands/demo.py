"""`netcheck demo [--keep] [--fault NAME] [--node NODE] [--layout NAME] [--workers N]
[--node-access ssh|pod|auto] [--save-images DIR]`: the whole product on this machine — a lab cluster,
`/netcheck NODE` through the real Slack bot against a local Slack stand-in (the conversation printed in
the terminal, with where the layer picture went), an approver's click on "Apply fix", the re-check,
teardown. NODE defaults to the layout's WiFi node; on a layout that is healthy by default the demo
switches the case study (`no-masquerade`) on it unless `--fault` asks for another fault.

Registered by bot/cli.py; the flow lives in lab.demo.flow. Exit: 0 the flow completed as expected
(diagnosis found, fix applied and verified), 1 it did not (one line says why), 2 usage (not root,
unknown fault, layout or node).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bot.terminal import color_enabled
from lab.spec import DEFAULT_LAYOUT, LAYOUTS

if TYPE_CHECKING:
    from aiohttp import web

    from bot.slack.runtime import Runtime
    from lab.demo.harness import SlackSide

EXIT_USAGE = 2
SHUTDOWN_GRACE_S = 1.0
"""Seconds the bot's running tasks get when the demo ends or is interrupted."""
ROOT_REASON = ("netcheck demo needs root: it builds the lab cluster from network namespaces, veths and "
               "iptables rules")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="watch the whole flow in a throw-away lab (needs root)")
    parser.add_argument("--keep", action="store_true", help="leave the lab up and print how to use it")
    parser.add_argument("--fault", metavar="NAME", help="also inject this lab fault before the check")
    parser.add_argument("--node", default=None,
                        help="node for the fault and /netcheck (default: the layout's WiFi node)")
    parser.add_argument("--layout", default=DEFAULT_LAYOUT,
                        help=f"the lab's layout: {', '.join(LAYOUTS)} (default {DEFAULT_LAYOUT})")
    parser.add_argument("--workers", type=int, default=2,
                        help="lab workers (default 2; the second one is the WiFi node)")
    parser.add_argument("--node-access", default="ssh", choices=("ssh", "pod", "auto"),
                        help="how netcheck reaches the nodes: ssh (default), pod (host pods through the "
                        "API; sshd stopped, no SSH configured) or auto")
    parser.add_argument("--save-images", metavar="DIR",
                        help="save the images the bot uploads (the layer picture) into DIR")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, *, euid: int | None = None) -> int:
    """`euid` stands in for os.geteuid() (tests of the not-root message)."""
    if (os.geteuid() if euid is None else euid) != 0:
        print(ROOT_REASON, file=sys.stderr)
        return EXIT_USAGE
    from lab.demo.flow import run_demo
    from lab.demo.options import DemoOptions

    try:
        options = DemoOptions(keep=args.keep, fault=args.fault, node=args.node, workers=args.workers,
                              layout=args.layout, node_access=args.node_access,
                              color=color_enabled(sys.stdout),
                              save_images=getattr(args, "save_images", None))  # callers' Namespaces
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        print(f"netcheck demo: {message}", file=sys.stderr)
        return EXIT_USAGE
    return run_demo(options, slack_bot)


@dataclass
class SlackBot:
    """The real bot for lab.demo.harness: Bolt's aiohttp app (HTTP mode) and its task runtime."""

    web_app: web.Application
    runtime: Runtime

    async def idle(self, timeout: float) -> None:
        await self.runtime.tasks.idle(timeout)


@asynccontextmanager
async def slack_bot(config_file: Path, slack: SlackSide) -> AsyncIterator[SlackBot]:
    """The bot as `netcheck serve` builds it in HTTP mode: engine and FixRunner from the lab's config."""
    from bot import config as config_module
    from bot import wiring
    from bot.slack.app import build_app
    from bot.slack.http import events_app
    from bot.slack.settings import SlackSettings
    from fixes import audit
    from fixes.runner import FixRunner

    engine = wiring.build_engine(config_module.load(config_file))
    runtime = None
    # the fix's audit lines (JSON, always on) go to a file: the terminal shows the conversation
    audit_path = Path(tempfile.gettempdir()) / f"netcheck-demo-audit-{os.getpid()}.jsonl"
    audit_file = audit_path.open("w", encoding="utf-8")
    audit.write_to(audit_file)
    try:
        settings = SlackSettings.model_validate({
            "bot_token": slack.bot_token, "signing_secret": slack.signing_secret, "api_url": slack.api_url,
            "approvers": list(slack.approvers),
        })
        app, runtime = build_app(settings, engine, FixRunner(engine), probe_count=len(list(engine.registry)))
        yield SlackBot(events_app(app, settings, path=slack.events_path), runtime)
    finally:
        if runtime is not None:
            await runtime.tasks.close(SHUTDOWN_GRACE_S)
        await engine.aclose()
        audit.write_to(None)
        audit_file.close()
        if audit_path.stat().st_size:
            print(f"audit trail of the fix (JSON lines): {audit_path}", file=sys.stderr)
        else:
            audit_path.unlink()
