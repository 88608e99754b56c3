"""`views.publish` for the Home tab, checked the way Slack checks it (docs/slack.md#app-home).

Errors: `not_enabled` when the app's Home tab is off; `view_too_large` past 250 kB of view JSON;
`invalid_arguments` with `response_metadata.messages` (`[ERROR] … [json-pointer:/view/…]`) for a
missing `user_id`, a view that is not a `home` view, more than 100 blocks ("no more than 100 items
allowed", the message Slack gives; secondary: grafana/oncall pull request 210), a block past its limits
(`limits.block_errors`), `private_metadata` over 3000 or `callback_id` over 255 characters.
Used by `webapi.py`.
"""

from __future__ import annotations

import json
from typing import Any

from lab.slack.limits import MAX_VIEW_BLOCKS, block_errors

VIEW_BYTES = 250_000
PRIVATE_METADATA = 3000
CALLBACK_ID = 255


def parse_view(raw: Any) -> dict[str, Any] | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return raw if isinstance(raw, dict) else None


def view_messages(user_id: Any, view: dict[str, Any] | None) -> list[str]:
    """Slack's `[ERROR]` messages for a views.publish call (empty: accepted)."""
    errors: list[str] = []
    if not user_id:
        errors.append("missing required field: user_id [json-pointer:/user_id]")
    if view is None:
        return [*errors, "must provide an object [json-pointer:/view]"]
    if view.get("type") != "home":
        errors.append("must be a valid enum value [json-pointer:/view/type]")
    blocks = view.get("blocks")
    if isinstance(blocks, list) and len(blocks) > MAX_VIEW_BLOCKS:
        errors.append(f"no more than {MAX_VIEW_BLOCKS} items allowed [json-pointer:/view/blocks]")
    errors += block_errors(blocks if blocks is not None else [], max_blocks=10**6, root="/view")
    for key, limit in (("private_metadata", PRIVATE_METADATA), ("callback_id", CALLBACK_ID)):
        value = view.get(key)
        if isinstance(value, str) and len(value) > limit:
            errors.append(f"must be less than {limit + 1} characters [json-pointer:/view/{key}]")
    return [f"[ERROR] {e}" for e in errors]


def too_large(view: dict[str, Any]) -> bool:
    return len(json.dumps(view, separators=(",", ":")).encode()) > VIEW_BYTES
