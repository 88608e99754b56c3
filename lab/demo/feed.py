"""Prints the Slack conversation as it happens: every message the bot posts or updates (read from the
Slack stand-in's call record) and every action of the demo's users, rendered by lab.demo.render.

Used by lab.demo.flow: `feed.pump()` prints what is new; `feed.follow()` pumps until cancelled. A file
shared into a thread is shown as one line saying where it went; images (the layer picture) are also
saved when `save_images` is set, other files (the evidence file) are not.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.demo.render import REPLY_INDENT, Renderer
from lab.slack.webapi import SlackStandIn

FOLLOW_INTERVAL_S = 0.1
"""How often the live view looks for new Slack calls (the bot answers within tens of ms)."""


class ConversationFeed:
    def __init__(self, standin: SlackStandIn, renderer: Renderer, write: Callable[[str], None],
                 save_images: Path | None = None) -> None:
        self.standin = standin
        self.renderer = renderer
        self.write = write
        self.save_images = save_images
        """Where uploaded images are written (None: only say where they went)."""
        self.saved: list[Path] = []
        self._seen = 0
        self._shown: dict[str, list[str]] = {}  # ts → lines last shown, so an update shows what changed

    def user_action(self, user: str, action: str) -> None:
        self.pump()
        name = self.renderer.user_names.get(user, user)
        self.write(f"\n@{name} {action}")

    def pump(self) -> None:
        calls = self.standin.calls
        while self._seen < len(calls):
            call = calls[self._seen]
            self._seen += 1
            if call.answer.get("ok") is False:
                self.write(f"\n(slack refused {call.method}: {call.answer.get('error')})")
                continue
            self._show(call.method, call.params, call.answer)

    def _show_update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        target = self.standin.find(channel, ts)
        if not (target and target.thread_ts):
            self._shown[ts] = self.renderer.body(text, blocks)
            parent = self.renderer.message(text, blocks, reply=False)
            self.write(f"✎ bot updated the parent message:\n{parent}")
            return
        before, after = self._shown.get(ts, []), self.renderer.body(text, blocks)
        self._shown[ts] = after
        changed = [line for line in after if line not in before]
        title = before[0] if before else ""
        self.write(f"      ✎ bot updated the reply “{title.strip()}”; now it shows:\n"
                   + "\n".join(REPLY_INDENT + line for line in changed or after))

    def _show(self, method: str, params: dict[str, Any], answer: dict[str, Any]) -> None:
        text, blocks = params.get("text", ""), params.get("blocks") or []
        thread = params.get("thread_ts")
        if method == "chat.postMessage":
            self._shown[answer.get("ts", "")] = self.renderer.body(text, blocks)
            if thread:
                self.write(f"      ↳ reply in thread:\n{self.renderer.message(text, blocks, reply=True)}")
            else:
                self.write(f"\n#netcheck · netcheck bot:\n{self.renderer.message(text, blocks, reply=False)}")
        elif method == "chat.update":
            self._show_update(params.get("channel", ""), params.get("ts", ""), text, blocks)
        elif method == "chat.postEphemeral":
            who = self.renderer.user_names.get(params.get("user", ""), params.get("user", ""))
            self.write(f"(only @{who} sees:)\n{self.renderer.message(text, blocks, reply=bool(thread))}")
        elif method == "files.completeUploadExternal":
            self._show_files(params, answer)
        elif method == "response_url":
            self.write(f"(reply to the command:)\n{self.renderer.message(text, blocks, reply=False)}")

    def _show_files(self, params: dict[str, Any], answer: dict[str, Any]) -> None:
        thread = params.get("thread_ts")
        where = f"into the thread of {thread}" if thread else "to the channel"
        for shared in answer.get("files", []):
            upload = self.standin.uploads.files.get(shared.get("id", ""))
            data = upload.data if upload is not None and upload.data else b""
            if not _is_png(data):  # the evidence file beside the picture: said, not saved
                self.write(f"      ↳ file {where} (#{params.get('channel_id')}): {shared.get('title')} — "
                           f"{len(data) / 1024:.0f} kB")
                continue
            self.write(f"      ↳ image {where} (#{params.get('channel_id')}): {shared.get('title')} — "
                       f"{shared.get('name')}, {_png_size(data)}, {len(data) / 1024:.0f} kB")
            if self.save_images is not None:
                path = self.save_images / str(shared.get("name") or f"{shared.get('id')}.png")
                path.write_bytes(data)
                self.saved.append(path)
                self.write(f"        saved to {path}")

    async def follow(self) -> None:
        while True:
            self.pump()
            await asyncio.sleep(FOLLOW_INTERVAL_S)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(data: bytes) -> bool:
    return data[:8] == PNG_SIGNATURE and len(data) >= 24


def _png_size(data: bytes) -> str:
    """'1200×1220 PNG' from the PNG header (IHDR width and height)."""
    width, height = struct.unpack(">II", data[16:24])
    return f"{width}×{height} PNG"
