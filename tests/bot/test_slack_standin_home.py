"""The Slack stand-in's views.publish (Home tab) answers, through slack_sdk's AsyncWebClient, and the
demo's conversation feed showing (and saving) an image the bot uploaded.

Covers: a valid Home view is stored for the user; 101 blocks → invalid_arguments with Slack's
"[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]"; a non-home view, an oversized
section and private_metadata over 3000 characters → invalid_arguments naming the pointer; over 250 kB
→ view_too_large; the Home tab disabled → not_enabled; the feed prints one line saying where an image
went (thread, name, PNG size) and writes it to --save-images.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.picture import node_values, render_png
from lab.demo.feed import ConversationFeed
from lab.demo.render import Renderer
from lab.slack.webapi import SlackStandIn
from probes.model import Report
from tests.fakes.engine import broken_findings


def section(text: str = "x") -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.fixture
async def slack():
    standin = SlackStandIn(channels=("C1",))
    await standin.start()
    client = AsyncWebClient(token=standin.bot_token, base_url=standin.api_url)
    yield standin, client
    await standin.stop()


async def refusal(client: AsyncWebClient, view: dict) -> dict:
    with pytest.raises(SlackApiError) as caught:
        await client.views_publish(user_id="U1", view=view)
    return dict(caught.value.response.data)


async def test_views_publish_checks_home_view_limits(slack) -> None:
    standin, client = slack
    ok = await client.views_publish(user_id="U1", view={"type": "home", "blocks": [section()] * 100})
    assert ok["ok"] and len(standin.home_views["U1"]["blocks"]) == 100

    answer = await refusal(client, {"type": "home", "blocks": [section()] * 101})
    assert answer["error"] == "invalid_arguments"
    assert answer["response_metadata"]["messages"] == [
        "[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]"]
    answer = await refusal(client, {"type": "modal", "blocks": [section("y" * 3001)],
                                    "private_metadata": "m" * 3001})
    messages = answer["response_metadata"]["messages"]
    assert any("/view/type" in m for m in messages)
    assert any("/view/blocks/0/text/text" in m for m in messages)
    assert any("/view/private_metadata" in m for m in messages)
    huge = {"type": "home", "blocks": [section("z" * 2900) for _ in range(95)]}
    assert (await refusal(client, huge))["error"] == "view_too_large"
    standin.home_enabled = False
    assert (await refusal(client, {"type": "home", "blocks": []}))["error"] == "not_enabled"
    assert len(standin.home_views["U1"]["blocks"]) == 100  # refused views change nothing


async def test_feed_shows_where_an_image_went_and_saves_it(slack, tmp_path) -> None:
    standin, client = slack
    parent = await client.chat_postMessage(channel="C1", text="parent")
    report = Report(node="rack2-n04", started_at=datetime.now(UTC), duration_s=1.0,
                    findings=broken_findings())
    png = render_png(report, node_values(report, None))
    await client.files_upload_v2(content=png, filename="rack2-n04.png", title="rack2-n04: layer picture",
                                 channel="C1", thread_ts=parent["ts"])
    await client.files_upload_v2(content=b"evidence\n" * 200, filename="rack2-n04-evidence.txt",
                                 title="rack2-n04 evidence", channel="C1", thread_ts=parent["ts"])
    lines: list[str] = []
    feed = ConversationFeed(standin, Renderer({}), lines.append, save_images=tmp_path)
    feed.pump()
    shown = [line for line in lines if "↳ image" in line]
    assert shown == [f"      ↳ image into the thread of {parent['ts']} (#C1): rack2-n04: layer picture — "
                     f"rack2-n04.png, 1200×1220 PNG, {len(png) / 1024:.0f} kB"]
    assert (tmp_path / "rack2-n04.png").read_bytes() == png
    assert [line for line in lines if "↳ file" in line] == [
        f"      ↳ file into the thread of {parent['ts']} (#C1): rack2-n04 evidence — 2 kB"]
    assert [p.name for p in tmp_path.iterdir()] == ["rack2-n04.png"]  # only images are saved
