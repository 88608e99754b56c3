"""Slack Web API stand-in: answers like Slack for the methods netcheck calls, records every call and
keeps the conversation (channels → messages → thread replies, updates applied).

Methods: auth.test, chat.postMessage (with message metadata), chat.update, chat.postEphemeral,
chat.getPermalink, conversations.replies, conversations.history, usergroups.users.list,
apps.connections.open, files.getUploadURLExternal and files.completeUploadExternal with POST
/upload/v1/<file id> between them (files.py), views.publish for the Home tab (views.py), plus POST
/webhook/<id> for response_url. Errors: invalid_auth, channel_not_found, thread_not_found,
invalid_blocks, msg_too_long, message_not_found, and 429 with an integer Retry-After for the next N
calls of a method (`rate_limit`). `fail` schedules Slack's own faults for the next calls of a method:
HTTP 5xx, or `internal_error`/`fatal_error`/... answers, each either before the method ran or after it
did (Slack: "some aspect of the operation" may have succeeded). Used by tests and `netcheck demo`.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lab.slack import views
from lab.slack.files import FileUploads, UploadedFile, UploadError, file_object
from lab.slack.limits import MAX_TEXT, block_errors

BOT_USER = "UBOT0001"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    status: int
    answer: dict[str, Any]


@dataclass(frozen=True)
class Failure:
    """One scheduled fault: HTTP `status` with `error` in Slack's JSON (or an HTML gateway page for
    502/504, as a proxy in front of Slack answers); `lands`: the method ran before the fault."""

    status: int = 500
    error: str = "internal_error"
    lands: bool = False


@dataclass
class Message:
    ts: str
    channel: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    user: str | None = None  # set for ephemeral messages: who sees it
    replies: list[Message] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)  # files shared with this message
    edits: int = 0
    metadata: dict[str, Any] | None = None

    def as_api(self, with_metadata: bool) -> dict[str, Any]:
        """The message as conversations.replies/history return it."""
        out: dict[str, Any] = {"type": "message", "user": BOT_USER, "bot_id": "B0NETCHECK", "text": self.text,
                               "blocks": self.blocks, "ts": self.ts}
        if self.thread_ts:
            out |= {"thread_ts": self.thread_ts, "parent_user_id": BOT_USER}
        elif self.replies:
            out |= {"thread_ts": self.ts, "reply_count": len(self.replies)}
        if with_metadata and self.metadata:
            out["metadata"] = self.metadata
        return out


class SlackStandIn:
    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        channels: tuple[str, ...] = ("C0NETCHECK",),
        usergroups: dict[str, list[str]] | None = None,
        team_id: str = "T0LAB",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.channels: dict[str, list[Message]] = {c: [] for c in channels}
        self.ephemeral: list[Message] = []
        self.webhooks: list[dict[str, Any]] = []
        self.usergroups = usergroups or {}
        self.calls: list[Call] = []
        self.socket_url: str | None = None
        self._rate_limited: dict[str, int] = {}
        self._failures: dict[str, list[Failure | None]] = {}
        self._retry_after = 1
        self._last_ts = 0.0
        self._tickets = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.uploads = FileUploads()
        self.bot_channels: set[str] = set(channels)
        """Channels the bot is a member of (file shares need membership; `remove_bot` takes it away)."""
        self.home_enabled = True
        self.home_views: dict[str, dict[str, Any]] = {}
        """user id -> the Home tab view last published for that user."""

    # ---- test switches -------------------------------------------------------------------------
    def rate_limit(self, method: str, calls: int, retry_after: int = 1) -> None:
        """The next `calls` calls to `method` get HTTP 429 with `Retry-After: retry_after`."""
        self._rate_limited[method] = calls
        self._retry_after = retry_after

    def remove_bot(self, channel: str) -> None:
        """The bot is no longer a member of `channel` (it can still post there with chat:write.public)."""
        self.bot_channels.discard(channel)

    def fail(self, method: str, *failures: Failure | None) -> None:
        """The next calls of `method` answer these faults, one each, in order (None: answer normally)."""
        self._failures.setdefault(method, []).extend(failures)

    # ---- queries -------------------------------------------------------------------------------
    @property
    def files(self) -> list[UploadedFile]:
        """Every upload ticket, completed or not, in the order they were asked for."""
        return list(self.uploads.files.values())

    def file_content(self, file_id: str) -> bytes | None:
        """The bytes uploaded for `file_id` (None: no such ticket, or nothing received yet)."""
        file = self.uploads.files.get(file_id)
        return file.data if file is not None else None

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def messages(self, channel: str) -> list[Message]:
        return self.channels[channel]

    def find(self, channel: str, ts: str) -> Message | None:
        for msg in self.channels.get(channel, []):
            if msg.ts == ts:
                return msg
            for reply in msg.replies:
                if reply.ts == ts:
                    return reply
        return None

    def response_url(self, name: str = "cmd") -> str:
        return f"{self.url}/webhook/{name}"

    # ---- server --------------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/webhook/{name}", self._webhook)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def _next_ts(self) -> str:
        """Like Slack's: the posting time in microseconds, unique within the channel."""
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.method == "GET":
            return {}
        if request.content_type == "application/json":
            return dict(await request.json())
        form = await request.post()
        params: dict[str, Any] = {k: v for k, v in form.items()}
        for key in ("blocks", "attachments"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        params.update(request.query)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or params.get("token", "")
        scheduled = self._failures.get(method)
        failure = scheduled.pop(0) if scheduled else None
        if failure is not None and not failure.lands:
            return self._failed(method, params, failure)
        status, answer, headers = self._dispatch(method, params, token)
        if failure is not None:  # it ran, but the caller hears of a fault
            return self._failed(method, params, failure, ran=answer)
        self.calls.append(Call(method, params, status, answer))
        return web.json_response(answer, status=status, headers=headers)

    def _failed(self, method: str, params: dict[str, Any], failure: Failure,
                ran: dict[str, Any] | None = None) -> web.Response:
        body = {"ok": False, "error": failure.error}
        self.calls.append(Call(method, params, failure.status, {**body, "landed": ran is not None}))
        if failure.status in (502, 504):
            return web.Response(status=failure.status, content_type="text/html",
                                text=f"<html><body><h1>{failure.status} Bad Gateway</h1></body></html>")
        return web.json_response(body, status=failure.status)

    def _dispatch(self, method: str, params: dict[str, Any], token: str) -> tuple[int, dict[str, Any], dict]:
        if self._rate_limited.get(method, 0) > 0:
            self._rate_limited[method] -= 1
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(self._retry_after)}
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(params), {}

    def _check_message(self, params: dict[str, Any]) -> dict[str, Any] | None:
        if any(value is None for value in params.values()):
            return {"ok": False, "error": "invalid_arguments"}
        if params.get("channel") not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if len(params.get("text") or "") > MAX_TEXT:
            return {"ok": False, "error": "msg_too_long"}
        if "blocks" in params:
            errors = block_errors(params["blocks"])
            if errors:
                return {"ok": False, "error": "invalid_blocks", "errors": errors}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        return None

    # ---- methods -------------------------------------------------------------------------------
    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://lab.slack.test/",
            "team": "lab",
            "user": "netcheck",
            "team_id": self.team_id,
            "user_id": BOT_USER,
            "bot_id": "B0NETCHECK",
        }

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        if error := self._check_message(params):
            return error
        channel, thread_ts = params["channel"], params.get("thread_ts")
        metadata = params.get("metadata")
        if isinstance(metadata, str):  # a form post sends it JSON-encoded
            metadata = json.loads(metadata)
        if metadata is not None and not (isinstance(metadata, dict) and "event_type" in metadata
                                         and isinstance(metadata.get("event_payload"), dict)):
            return {"ok": False, "error": "invalid_metadata_format"}
        msg = Message(self._next_ts(), channel, params.get("text", ""), params.get("blocks", []), thread_ts,
                      metadata=metadata)
        if thread_ts:
            parent = self.find(channel, thread_ts)
            if parent is None:
                return {"ok": False, "error": "thread_not_found"}
            parent.replies.append(msg)
        else:
            self.channels[channel].append(msg)
        return {
            "ok": True,
            "channel": channel,
            "ts": msg.ts,
            "message": {
                "type": "message",
                "user": BOT_USER,
                "text": msg.text,
                "blocks": msg.blocks,
                "ts": msg.ts,
                **({"thread_ts": thread_ts} if thread_ts else {}),
            },
        }

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        if error := self._check_message(params):
            return error
        msg = self.find(params["channel"], params.get("ts", ""))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        msg.text = params.get("text", msg.text)
        if "blocks" in params:
            msg.blocks = params["blocks"]
        msg.edits += 1
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "text": msg.text}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if error := self._check_message(params):
            return error
        msg = Message(
            self._next_ts(),
            params["channel"],
            params.get("text", ""),
            params.get("blocks", []),
            params.get("thread_ts"),
            user=params.get("user"),
        )
        self.ephemeral.append(msg)
        return {"ok": True, "message_ts": msg.ts}

    def _m_chat_getPermalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("message_ts", "")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if self.find(channel, ts) is None:
            return {"ok": False, "error": "message_not_found"}
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://lab.slack.test/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """The parent then its replies, oldest first (one page: these threads are short)."""
        channel = params.get("channel")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        parent = next((m for m in self.channels[channel] if m.ts == params.get("ts")), None)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        with_metadata = _truthy(params.get("include_all_metadata"))
        limit = int(params.get("limit") or 1000)
        messages = [parent, *parent.replies][:limit]
        return {"ok": True, "messages": [m.as_api(with_metadata) for m in messages],
                "has_more": len(parent.replies) + 1 > limit, "response_metadata": {"next_cursor": ""}}

    def _m_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages newest first, between `oldest` and `latest` (exclusive, as Slack's default)."""
        channel = params.get("channel")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        oldest, latest = float(params.get("oldest") or 0), float(params.get("latest") or "inf")
        inclusive = _truthy(params.get("inclusive"))
        chosen = [m for m in reversed(self.channels[channel])
                  if (oldest <= float(m.ts) <= latest if inclusive else oldest < float(m.ts) < latest)]
        limit = int(params.get("limit") or 100)
        with_metadata = _truthy(params.get("include_all_metadata"))
        return {"ok": True, "messages": [m.as_api(with_metadata) for m in chosen[:limit]],
                "has_more": len(chosen) > limit, "pin_count": 0, "response_metadata": {"next_cursor": ""}}

    def _m_usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("usergroup", "")
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _m_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.socket_url:
            return {"ok": False, "error": "socket_mode_not_enabled"}
        # Slack hands out a fresh ticket per call (wss://…/link/?ticket=…): one per connection
        return {"ok": True, "url": f"{self.socket_url}?ticket={next(self._tickets)}"}

    def _m_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            file = self.uploads.ticket(params)
        except UploadError as exc:
            return {"ok": False, "error": exc.error}
        return {"ok": True, "upload_url": f"{self.url}/upload/v1/{file.id}", "file_id": file.id}

    def _m_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, thread_ts = params.get("channel_id") or None, params.get("thread_ts") or None
        parent: Message | None = None
        try:
            requested = self.uploads.requested(params)
            if channel is not None:
                if channel not in self.channels:
                    return {"ok": False, "error": "channel_not_found"}
                if channel not in self.bot_channels:
                    return {"ok": False, "error": "not_in_channel"}
            if thread_ts is not None:
                parent = next((m for m in self.channels.get(channel or "", []) if m.ts == thread_ts), None)
                if parent is None:  # no channel, an unknown ts, or a reply's ts
                    return {"ok": False, "error": "invalid_arguments"}
            done = self.uploads.complete(requested, channel, thread_ts)
        except UploadError as exc:
            return {"ok": False, "error": exc.error}
        if channel is not None:
            share = Message(self._next_ts(), channel, params.get("initial_comment") or "", [], thread_ts)
            for file in done:
                file.share_ts = share.ts
            share.files = [file_object(f, self.url) for f in done]
            if parent is not None:
                parent.replies.append(share)
            else:
                self.channels[channel].append(share)
        return {"ok": True, "files": [file_object(f, self.url) for f in done]}

    def _m_views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.home_enabled:
            return {"ok": False, "error": "not_enabled"}
        view = views.parse_view(params.get("view"))
        messages = views.view_messages(params.get("user_id"), view)
        if messages:
            return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": messages}}
        assert view is not None
        if views.too_large(view):
            return {"ok": False, "error": "view_too_large"}
        user = str(params["user_id"])
        self.home_views[user] = view
        return {"ok": True, "view": {**view, "id": f"V0HOME{user}", "hash": self._next_ts()}}

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL: raw bytes, or a multipart form whose `file` (or first) part holds them."""
        file_id = request.match_info["file_id"]
        if request.content_type.startswith("multipart/"):
            body = b""
            reader = await request.multipart()
            async for part in reader:
                if part.name in ("file", "filename") or not body:  # type: ignore[union-attr]
                    body = bytes(await part.read())  # type: ignore[union-attr]
        else:
            body = await request.read()
        status, text = self.uploads.receive(file_id, body)
        answer = {"ok": status == 200}
        self.calls.append(Call("upload", {"file_id": file_id, "bytes": len(body)}, status, answer))
        return web.Response(status=status, text=text)

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.webhooks.append({"name": request.match_info["name"], **body})
        self.calls.append(Call("response_url", body, 200, {}))
        return web.Response(text="ok")


def _truthy(value: Any) -> bool:
    """Slack's boolean arguments: true/1 (JSON or form)."""
    return value is True or str(value).lower() in ("true", "1")
