"""Slack's per-block limits, checked the way Slack answers (`invalid_blocks` with json-pointer errors).

Used by `webapi.py` for chat.postMessage / chat.update / chat.postEphemeral, and by `views.py` for
the blocks of a Home tab view.
"""

from __future__ import annotations

from typing import Any

MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
"""Modals and the Home tab hold up to 100 blocks (docs/slack.md#block-kit-and-message-limits)."""
MAX_TEXT = 40000
LIMITS = {"section": 3000, "header": 150}
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
ACTION_ID = 255
ACTIONS_ELEMENTS = 25
CONTEXT_ELEMENTS = 10


def _too_long(value: str, limit: int, pointer: str) -> str | None:
    if len(value) > limit:
        return f"must be less than {limit + 1} characters [json-pointer:{pointer}]"
    return None


def _button_errors(el: dict[str, Any], base: str) -> list[str | None]:
    errors = [
        _too_long(el.get("text", {}).get("text", ""), BUTTON_TEXT, f"{base}/text/text"),
        _too_long(el.get("value", ""), BUTTON_VALUE, f"{base}/value"),
        _too_long(el.get("action_id", ""), ACTION_ID, f"{base}/action_id"),
    ]
    confirm = el.get("confirm")
    if confirm:
        errors.append(_too_long(confirm["title"]["text"], CONFIRM_TITLE, f"{base}/confirm/title/text"))
        errors.append(_too_long(confirm["text"]["text"], CONFIRM_TEXT, f"{base}/confirm/text/text"))
    return errors


def block_errors(blocks: list[dict[str, Any]], *, max_blocks: int = MAX_BLOCKS, root: str = "") -> list[str]:
    """Slack's errors for `blocks` (a message's, or a view's with `max_blocks=MAX_VIEW_BLOCKS` and
    `root="/view"`); empty when Slack would accept them."""
    where = f"{root}/blocks"
    if not isinstance(blocks, list):
        return [f"must be an array [json-pointer:{where}]"]
    errors: list[str | None] = []
    if len(blocks) > max_blocks:
        errors.append(f"must contain at most {max_blocks} items [json-pointer:{where}]")
    block_ids = [b.get("block_id") for b in blocks if b.get("block_id")]
    if len(block_ids) != len(set(block_ids)):
        errors.append(f"block_id must be unique [json-pointer:{where}]")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        here = f"{where}/{i}"
        if kind in LIMITS:
            text = (block.get("text") or {}).get("text", "")
            errors.append(_too_long(text, LIMITS[kind], f"{here}/text/text"))
        if kind == "actions":
            elements = block.get("elements", [])
            if len(elements) > ACTIONS_ELEMENTS:
                errors.append(f"must contain at most {ACTIONS_ELEMENTS} items [json-pointer:{here}/elements]")
            for j, el in enumerate(elements):
                errors += _button_errors(el, f"{here}/elements/{j}")
        if kind == "section" and isinstance(block.get("accessory"), dict):
            if block["accessory"].get("type") == "button":
                errors += _button_errors(block["accessory"], f"{here}/accessory")
        if kind == "context" and len(block.get("elements", [])) > CONTEXT_ELEMENTS:
            errors.append(f"must contain at most {CONTEXT_ELEMENTS} items [json-pointer:{here}/elements]")
        if kind not in {"section", "header", "actions", "context", "divider", "rich_text", "image"}:
            errors.append(f"unsupported type [json-pointer:{here}/type]")
    return [e for e in errors if e]
