"""Slack's per-block limits, checked the way Slack answers (`invalid_blocks` with json-pointer errors).

Used by `webapi.py` for chat.postMessage / chat.update / chat.postEphemeral.
"""

from __future__ import annotations

from typing import Any

MAX_BLOCKS = 50
MAX_TEXT = 40000
LIMITS = {"section": 3000, "header": 150}
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300


def _too_long(value: str, limit: int, pointer: str) -> str | None:
    if len(value) > limit:
        return f"must be less than {limit + 1} characters [json-pointer:{pointer}]"
    return None


def block_errors(blocks: list[dict[str, Any]]) -> list[str]:
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"must contain at most {MAX_BLOCKS} items [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind in LIMITS:
            text = (block.get("text") or {}).get("text", "")
            errors.append(_too_long(text, LIMITS[kind], f"/blocks/{i}/text/text") or "")
        if kind == "actions":
            for j, el in enumerate(block.get("elements", [])):
                base = f"/blocks/{i}/elements/{j}"
                errors.append(
                    _too_long(el.get("text", {}).get("text", ""), BUTTON_TEXT, f"{base}/text/text") or ""
                )
                errors.append(_too_long(el.get("value", ""), BUTTON_VALUE, f"{base}/value") or "")
                confirm = el.get("confirm")
                if confirm:
                    errors.append(
                        _too_long(confirm["title"]["text"], CONFIRM_TITLE, f"{base}/confirm/title/text") or ""
                    )
                    errors.append(
                        _too_long(confirm["text"]["text"], CONFIRM_TEXT, f"{base}/confirm/text/text") or ""
                    )
        if kind not in {"section", "header", "actions", "context", "divider", "rich_text", "image"}:
            errors.append(f"unsupported type [json-pointer:/blocks/{i}/type]")
    return [e for e in errors if e]
