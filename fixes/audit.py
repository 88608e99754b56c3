"""Audit trail of every fix: one structlog event per plan, approval, apply, verify and rollback.

Called by `fixes.runner.FixRunner` only. Every event carries who, node, fix, params, before,
after and outcome with JSON-safe values, so the JSON renderer configured by the CLI/bot writes
one self-contained line per step.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

AUDIT_LOGGER = "netcheck.audit"

Step = str  # "plan" | "approval" | "apply" | "verify" | "rollback"


def _json_safe(value: Any) -> Any:
    """Round-trip through JSON so a renderer never meets a datetime or a pydantic model."""
    return json.loads(json.dumps(value, default=str))


def audit(
    step: Step,
    *,
    who: str | None,
    node: str,
    fix: str,
    params: dict[str, Any],
    outcome: str,
    before: Any = None,
    after: Any = None,
    **extra: Any,
) -> None:
    structlog.get_logger(AUDIT_LOGGER).info(
        f"fix.{step}",
        audit=True,
        step=step,
        who=who,
        node=node,
        fix=fix,
        params=_json_safe(params),
        before=_json_safe(before),
        after=_json_safe(after),
        outcome=outcome,
        **{key: _json_safe(value) for key, value in extra.items()},
    )
