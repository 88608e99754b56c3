"""Slack's external file upload, as the Web API stand-in answers it (docs/slack.md#file-uploads).

1. `files.getUploadURLExternal(filename, length)` → `{upload_url, file_id}`; a missing or zero
   `length` or a missing `filename` is `missing_argument`.
2. POST of the bytes (raw, or multipart with a `file` part) to `upload_url`: 200 when received.
   Bytes that do not match the declared `length` are refused with HTTP 400 and the file stays
   incomplete (Slack documents only "a non-200 response indicates a failure").
3. `files.completeUploadExternal(files=[{id, title}], channel_id, thread_ts, initial_comment)`:
   an unknown, incomplete or already completed file id is `file_not_found`; an unknown channel
   `channel_not_found`; a channel the bot is not a member of `not_in_channel` (unlike
   chat.postMessage, chat:write.public does not cover file shares); a `thread_ts` that is not a
   parent message of that channel (a reply's ts, or none) `invalid_arguments`, Slack's generic
   answer, since it documents the rule ("never use a reply's ts") but no error of its own for it.
   A completed upload shared into a thread appears there as a reply carrying the file.

Used by `webapi.py`; tests read `SlackStandIn.files`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class UploadedFile:
    id: str
    filename: str
    length: int
    alt_txt: str | None = None
    data: bytes | None = None
    """The bytes received at the upload URL (None until a matching upload arrived)."""
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    share_ts: str | None = None
    """The ts of the message that shares the file (a reply, when shared into a thread)."""
    completed: bool = False

    @property
    def size(self) -> int:
        return len(self.data or b"")


class UploadError(Exception):
    """A Web API error answer: `error` is Slack's error string."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class FileUploads:
    """The upload tickets and files of one stand-in."""

    def __init__(self) -> None:
        self.files: dict[str, UploadedFile] = {}
        self._ids = itertools.count(1)

    def ticket(self, params: dict[str, Any]) -> UploadedFile:
        filename = str(params.get("filename") or "")
        try:
            length = int(params.get("length") or 0)
        except (TypeError, ValueError):
            length = 0
        if not filename or length <= 0:
            raise UploadError("missing_argument")
        file = UploadedFile(f"F0LAB{next(self._ids):06d}", filename, length, params.get("alt_txt"))
        self.files[file.id] = file
        return file

    def receive(self, file_id: str, body: bytes) -> tuple[int, str]:
        """An upload POST: (HTTP status, body text)."""
        file = self.files.get(file_id)
        if file is None or file.completed:
            return 404, "upload ticket not found"
        if len(body) != file.length:
            return 400, f"length mismatch: declared {file.length} bytes, received {len(body)}"
        file.data = body
        return 200, f"OK - {len(body)}"

    @staticmethod
    def requested(params: dict[str, Any]) -> list[dict[str, Any]]:
        raw = params.get("files")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise UploadError("invalid_arguments") from None
        if not isinstance(raw, list) or not raw or not all(isinstance(f, dict) and f.get("id") for f in raw):
            raise UploadError("invalid_arguments")
        return raw

    def complete(
        self, requested: list[dict[str, Any]], channel: str | None, thread_ts: str | None
    ) -> list[UploadedFile]:
        """Mark the files shared (the caller checked channel and thread); unknown ones fail first."""
        found = [self.files.get(str(item["id"])) for item in requested]
        if any(f is None or f.data is None or f.completed for f in found):
            raise UploadError("file_not_found")
        done: list[UploadedFile] = []
        for item, file in zip(requested, found, strict=True):
            assert file is not None
            file.title = str(item.get("title") or file.filename)
            file.channel, file.thread_ts, file.completed = channel, thread_ts, True
            done.append(file)
        return done


def file_object(file: UploadedFile, url: str) -> dict[str, Any]:
    """The `file` object Slack returns and attaches to the sharing message (the fields clients read)."""
    shares: dict[str, Any] = {}
    if file.channel:
        share = {"ts": file.share_ts or "", **({"thread_ts": file.thread_ts} if file.thread_ts else {})}
        shares = {"public": {file.channel: [share]}}
    return {
        "id": file.id,
        "name": file.filename,
        "title": file.title,
        "mimetype": "image/png" if file.filename.endswith(".png") else "application/octet-stream",
        "size": file.size,
        "url_private": f"{url}/files-pri/{file.id}/{file.filename}",
        "channels": [file.channel] if file.channel else [],
        "shares": shares,
    }
