"""structlog set-up for every command: JSON lines on stderr, a console renderer on a terminal.

Called once by `bot.cli.main` (`configure()`). Check log lines carry `node` and `probe` because
the engine binds them; fixes write their own audit trail (fixes/audit.py: always JSON, logger
`netcheck.audit`, unfiltered by the level set here).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure(*, level: str = "info", stream: TextIO | None = None, json: bool | None = None) -> None:
    """JSON unless `stream` is a terminal (or `json` says otherwise)."""
    use_json = json if json is not None else not (stream or sys.stderr).isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*_SHARED, structlog.processors.format_exc_info, renderer]
        if use_json
        else [*_SHARED, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # sys.stderr is looked up per logger, not bound once: it may be replaced (tests, daemons)
        logger_factory=(lambda *_: structlog.PrintLogger(file=stream or sys.stderr)),
        cache_logger_on_first_use=False,
    )
