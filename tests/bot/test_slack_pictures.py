"""The layer picture in the check's thread, and the Slack stand-in's external upload flow.

Covers, with the real Bolt app and slack_sdk client against the stand-in over HTTP (fake engine):
`/netcheck NODE` uploads one PNG into that check's thread through files.getUploadURLExternal → POST
→ files.completeUploadExternal (channel_id, thread_ts = the parent), after the findings; the bytes
are a valid PNG whose layer colours match the report's findings; with the bot not a member of the
channel the uploads are refused (`not_in_channel`) and the check is posted all the same; `pictures:
false` uploads nothing. The stand-in, called raw: missing length → `missing_argument`; bytes that do
not match the declared length → a non-200 upload and `file_not_found` on completion; unknown file
id → `file_not_found`; unknown channel → `channel_not_found`; a reply's ts as thread_ts →
`invalid_arguments`; a completed file cannot be completed twice.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import aiohttp
import pytest
from PIL import Image

from bot.picture import BOXES, FILL, box_shades
from lab.slack.webapi import SlackStandIn
from probes.model import Report
from tests.bot.test_slack import ALICE, CHANNEL, checked, start_bot
from tests.fakes.engine import broken_findings


@pytest.fixture
async def bot_factory():
    started = []

    async def make(**overrides):
        b = await start_bot(overrides)
        started.append(b)
        return b

    yield make
    for b in started:
        await b.rt.tasks.close(1)
        await b._site_runner.cleanup()
        await b.standin.stop()


async def test_the_picture_is_uploaded_into_the_checks_thread(bot_factory) -> None:
    bot = await bot_factory()
    parent = await checked(bot, "worker2", ALICE)
    methods = [c.method for c in bot.standin.calls]
    last_ticket = len(methods) - 1 - methods[::-1].index("files.getUploadURLExternal")  # the picture's
    assert methods[last_ticket:last_ticket + 3] == [
        "files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    assert bot.standin.calls[last_ticket].params["filename"].endswith(".png")
    assert all(c.answer.get("ok") for c in bot.standin.calls), [c.answer for c in bot.standin.calls]
    complete = bot.standin.calls[last_ticket + 2].params
    assert (complete["channel_id"], complete["thread_ts"]) == (CHANNEL, parent.ts)
    image_replies = [r for r in parent.replies if r.files and r.files[0]["name"].endswith(".png")]
    assert len(image_replies) == 1 and image_replies[0] is parent.replies[-1]  # after the findings
    (uploaded,) = [f for f in bot.standin.files if f.filename.endswith(".png")]
    assert uploaded.completed and uploaded.thread_ts == parent.ts and uploaded.filename.endswith(".png")
    image = Image.open(io.BytesIO(uploaded.data))
    assert image.format == "PNG"
    image = image.convert("RGB")
    report = Report(node="worker2", started_at=datetime.now(UTC), duration_s=0.0, findings=broken_findings())
    for key, shade in box_shades(report).items():
        assert image.getpixel(BOXES[key].sample) == FILL[shade], key
    assert bot.engine.checks == ["worker2"]


async def test_without_membership_the_check_is_posted_and_the_picture_is_refused(bot_factory) -> None:
    bot = await bot_factory()
    bot.standin.remove_bot(CHANNEL)  # public channel, chat:write.public: messages still go through
    parent = await checked(bot, "worker2", ALICE)
    assert parent.text.startswith(":x: worker2: 2 problems")
    assert not any(r.files for r in parent.replies)  # neither the evidence file nor the picture
    refused = bot.standin.calls_to("files.completeUploadExternal")
    assert [c.answer for c in refused] == [{"ok": False, "error": "not_in_channel"}] * 2


async def test_pictures_off_uploads_nothing(bot_factory) -> None:
    bot = await bot_factory(pictures=False)
    parent = await checked(bot, "worker2", ALICE)
    assert parent.replies and not [f for f in bot.standin.files if f.filename.endswith(".png")]


# ---- the stand-in's checks, called the way any client would -------------------------------------

@pytest.fixture
async def standin():
    s = SlackStandIn(channels=(CHANNEL,))
    await s.start()
    yield s
    await s.stop()


async def api(session: aiohttp.ClientSession, s: SlackStandIn, method: str, **form: str) -> dict:
    async with session.post(s.api_url + method, data=form,
                            headers={"Authorization": f"Bearer {s.bot_token}"}) as resp:
        return await resp.json()


async def ticket(session, s, length: int) -> dict:
    answer = await api(session, s, "files.getUploadURLExternal", filename="x.png", length=str(length))
    assert answer["ok"], answer
    return answer


async def test_standin_upload_checks(standin: SlackStandIn) -> None:
    s = standin
    async with aiohttp.ClientSession() as session:
        for length in ({}, {"length": "0"}):
            answer = await api(session, s, "files.getUploadURLExternal", filename="x.png", **length)
            assert answer["error"] == "missing_argument"

        short = await ticket(session, s, 10)
        async with session.post(short["upload_url"], data=b"123") as resp:
            assert resp.status != 200  # 3 bytes where 10 were declared
        files = json.dumps([{"id": short["file_id"], "title": "t"}])
        assert (await api(session, s, "files.completeUploadExternal", files=files, channel_id=CHANNEL))[
            "error"] == "file_not_found"
        unknown = json.dumps([{"id": "F0NOSUCHFILE"}])
        assert (await api(session, s, "files.completeUploadExternal", files=unknown))["error"] == \
            "file_not_found"

        good = await ticket(session, s, 4)
        async with session.post(good["upload_url"], data=b"\x89PNG") as resp:
            assert resp.status == 200
        files = json.dumps([{"id": good["file_id"], "title": "t"}])
        assert (await api(session, s, "files.completeUploadExternal", files=files, channel_id="C0NOWHERE"))[
            "error"] == "channel_not_found"
        parent = await api(session, s, "chat.postMessage", channel=CHANNEL, text="parent")
        reply = await api(session, s, "chat.postMessage", channel=CHANNEL, text="reply",
                          thread_ts=parent["ts"])
        assert (await api(session, s, "files.completeUploadExternal", files=files, channel_id=CHANNEL,
                          thread_ts=reply["ts"]))["error"] == "invalid_arguments"
        done = await api(session, s, "files.completeUploadExternal", files=files, channel_id=CHANNEL,
                         thread_ts=parent["ts"])
        assert done["ok"] and done["files"][0]["id"] == good["file_id"]
        assert (await api(session, s, "files.completeUploadExternal", files=files, channel_id=CHANNEL))[
            "error"] == "file_not_found"  # a ticket completes once
    thread = s.messages(CHANNEL)[0]
    assert [r.text for r in thread.replies] == ["reply", ""]
    assert thread.replies[1].files[0]["id"] == good["file_id"]
