"""Plays Slack's side towards the bot over HTTP: correctly signed slash commands, block_actions
clicks built from the buttons the bot really posted (read from the Web API stand-in), Events API
deliveries (`app_home_opened`) and clicks on the Home view the bot published.

Used by tests/bot/test_slack*.py and `netcheck demo`.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from lab.slack.webapi import Message, SlackStandIn


class SignedReply:
    def __init__(self, status: int, text: str, elapsed_s: float) -> None:
        self.status, self.text, self.elapsed_s = status, text, elapsed_s


class SlackDriver:
    def __init__(self, events_url: str, signing_secret: str, standin: SlackStandIn, team_id: str = "T0LAB"):
        self.events_url = events_url
        self.signer = SignatureVerifier(signing_secret)
        self.standin = standin
        self.team_id = team_id

    async def post(
        self, body: str, *, timestamp: int | None = None, signature: str | None = None, timeout: float = 10.0,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> SignedReply:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "content-type": content_type,
            "x-slack-request-timestamp": ts,
            "x-slack-signature": signature or self.signer.generate_signature(timestamp=ts, body=body),
        }
        started = time.monotonic()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.post(self.events_url, data=body.encode(), headers=headers) as resp:
                text = await resp.text()
                return SignedReply(resp.status, text, time.monotonic() - started)

    def command_body(self, text: str, *, user: str, channel: str) -> str:
        return urlencode(
            {
                "token": "legacy",
                "team_id": self.team_id,
                "team_domain": "lab",
                "channel_id": channel,
                "channel_name": "netcheck",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/netcheck",
                "text": text,
                "api_app_id": "A0NETCHECK",
                "is_enterprise_install": "false",
                "response_url": self.standin.response_url(f"cmd-{user}"),
                "trigger_id": "1.2.3",
            }
        )

    async def command(self, text: str, *, user: str, channel: str, **kw: Any) -> SignedReply:
        return await self.post(self.command_body(text, user=user, channel=channel), **kw)

    @staticmethod
    def buttons(message: Message) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(actions block, button element) pairs of a posted message."""
        return [(b, el) for b in message.blocks if b.get("type") == "actions" for el in b["elements"]]

    def click_body(
        self,
        message: Message,
        block: dict[str, Any],
        button: dict[str, Any],
        *,
        user: str,
        value: str | None = None,
    ) -> str:
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": self.team_id},
            "api_app_id": "A0NETCHECK",
            "team": {"id": self.team_id, "domain": "lab"},
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
            },
            "channel": {"id": message.channel, "name": "netcheck"},
            "message": {
                "type": "message",
                "ts": message.ts,
                "text": message.text,
                "blocks": message.blocks,
                **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
            },
            "state": {"values": {}},
            "response_url": self.standin.response_url(f"click-{user}"),
            "trigger_id": "4.5.6",
            "actions": [
                {
                    "action_id": button["action_id"],
                    "block_id": block["block_id"],
                    "type": "button",
                    "value": button["value"] if value is None else value,
                    "text": button["text"],
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return urlencode({"payload": json.dumps(payload)})

    async def click(
        self, message: Message, *, user: str, index: int = 0, value: str | None = None, **kw: Any
    ) -> SignedReply:
        block, button = self.buttons(message)[index]
        return await self.post(self.click_body(message, block, button, user=user, value=value), **kw)

    # ---- Events API and the Home tab ---------------------------------------------------------------
    async def event(self, event: dict[str, Any], **kw: Any) -> SignedReply:
        """An Events API delivery (`event_callback`, JSON, signed like everything else)."""
        body = {
            "token": "legacy", "team_id": self.team_id, "api_app_id": "A0NETCHECK", "type": "event_callback",
            "event_id": f"Ev{time.time_ns()}", "event_time": int(time.time()), "event": event,
        }
        return await self.post(json.dumps(body), content_type="application/json", **kw)

    async def home_opened(self, user: str, **kw: Any) -> SignedReply:
        """The user opened the app's Home tab (Slack sends the view last published to them, if any)."""
        event: dict[str, Any] = {"type": "app_home_opened", "user": user, "channel": "D0HOME",
                                 "tab": "home", "event_ts": f"{time.time():.6f}"}
        if user in self.standin.home_views:
            event["view"] = {**self.standin.home_views[user], "id": f"V0HOME{user}"}
        return await self.event(event, **kw)

    @staticmethod
    def home_buttons(view: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(block, button) pairs of a Home view: section accessories and actions elements."""
        found = []
        for block in view.get("blocks", []):
            if block.get("type") == "section" and (block.get("accessory") or {}).get("type") == "button":
                found.append((block, block["accessory"]))
            if block.get("type") == "actions":
                found += [(block, el) for el in block.get("elements", [])]
        return found

    async def home_click(
        self, user: str, *, index: int = 0, value: str | None = None, **kw: Any
    ) -> SignedReply:
        """A click on a button of the Home view last published to `user` (a view container)."""
        view = {**self.standin.home_views[user], "id": f"V0HOME{user}"}
        block, button = self.home_buttons(view)[index]
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": self.team_id},
            "api_app_id": "A0NETCHECK",
            "team": {"id": self.team_id, "domain": "lab"},
            "container": {"type": "view", "view_id": view["id"]},
            "view": view,
            "trigger_id": "7.8.9",
            "actions": [{
                "action_id": button["action_id"], "block_id": block.get("block_id", ""), "type": "button",
                "value": button.get("value", "") if value is None else value, "text": button["text"],
                "action_ts": f"{time.time():.6f}",
            }],
        }
        return await self.post(urlencode({"payload": json.dumps(payload)}), **kw)
