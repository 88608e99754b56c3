"""Audit trail of every fix: one structlog event per plan, approval, apply, verify and rollback.

Called by `fixes.runner.FixRunner` only. Every event carries who, node, fix, params, before,
after and outcome, and is always rendered as one JSON line on stderr (logger `netcheck.audit`,
rendered here, not through `bot.logging.configure`), whatever renderer the rest of the logging uses, so the
audit trail can be shipped and grepped apart.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import structlog

AUDIT_LOGGER = "netcheck.audit"

Step = str  # "plan" | "approval" | "apply" | "verify" | "rollback"

_stream: TextIO | None = None
"""Where audit lines go; None: stderr as it is at each call (so a redirected stderr is followed)."""


def write_to(stream: TextIO | None) -> None:
    """Send the audit trail to `stream` (None: back to stderr). The demo uses it to keep its terminal
    a conversation; a deployed bot keeps stderr, where the log shipper reads it."""
    global _stream
    _stream = stream


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
    logger = structlog.wrap_logger(
        structlog.PrintLogger(file=_stream or sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        # never the configured level filter: `--log-level warning` must not drop the audit trail
        wrapper_class=structlog.BoundLogger,
    )
    logger.info(
        f"fix.{step}",
        logger=AUDIT_LOGGER,
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
