"""structlog set-up for every command: JSON lines on stderr, a console renderer on a terminal.

Called by `bot.cli.main` (`configure()`), again by a command once its configuration file is read
when neither `--log-level` nor NETCHECK_LOG_LEVEL chose the level. Check log lines carry `node`
and `probe` because the engine binds them; fixes write their own audit trail (fixes/audit.py:
always JSON, logger `netcheck.audit`, unfiltered by the level set here).

Libraries log through the standard `logging` module (slack_bolt, slack_sdk, asyncssh, kubernetes,
urllib3, aiohttp, Python warnings): one root handler renders their records with the same processors
and renderer as netcheck's own lines, so stderr stays one JSON object per line — Bolt's multi-line
"[Suggestion] …" warnings included (the newlines are escaped inside the JSON string). Libraries
log at WARNING and above unless the level is `debug` (their INFO lines are per request/connection:
health probes, every SSH channel); urllib3 at ERROR (its warnings are the retries of a request
whose final failure netcheck reports itself, in one line).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from bot.terminal import color_enabled

LEVELS = ("debug", "info", "warning", "error")
LEVEL_ENV = "NETCHECK_LOG_LEVEL"
DEFAULT_LEVEL = "warning"
LIBRARY_LOGGERS = {
    "slack_bolt": logging.WARNING, "slack_sdk": logging.WARNING, "asyncssh": logging.WARNING,
    "kubernetes": logging.WARNING, "urllib3": logging.ERROR, "aiohttp": logging.WARNING,
    "websocket": logging.WARNING, "py.warnings": logging.WARNING,
}
"""Loggers of the libraries netcheck uses (and Python warnings), with the least level they log at
unless netcheck runs at debug: quieter than netcheck's own lines."""


def parse_level(value: str) -> str:
    """A valid level name (case-insensitive), else ValueError with one line naming the choices."""
    level = value.strip().lower()
    if level not in LEVELS:
        raise ValueError(f"invalid log level {value!r} (use {', '.join(LEVELS)})")
    return level


def _add_logger_name(logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`logger` as for library records: the name given to structlog.get_logger(name), when any."""
    name = getattr(logger, "name", None)
    if name and "logger" not in event:
        event["logger"] = name
    return event


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    _add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _NamedPrintLogger(structlog.PrintLogger):
    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file=file)
        self.name = name


class _CurrentStderrHandler(logging.StreamHandler[TextIO]):
    """Writes to `stream` if given, else to whatever sys.stderr is at the time (tests replace it)."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__()
        self._fixed = stream

    @property
    def stream(self) -> TextIO:
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:  # logging.StreamHandler.__init__ assigns it
        pass


_HANDLER_NAME = "netcheck"


def _route_stdlib(level: int, renderer: Any, use_json: bool, stream: TextIO | None) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([structlog.processors.format_exc_info] if use_json else []),
            renderer,
        ],
    )
    handler = _CurrentStderrHandler(stream)
    handler.name = _HANDLER_NAME
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.name == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in LIBRARY_LOGGERS.items():
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else max(level, quiet))
    logging.captureWarnings(True)


def configure(*, level: str = DEFAULT_LEVEL, stream: TextIO | None = None, json: bool | None = None) -> None:
    """JSON unless `stream` is a terminal (or `json` says otherwise); colours only where
    `bot.terminal.color_enabled` allows them."""
    target = stream or sys.stderr
    use_json = json if json is not None else not target.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json
        else structlog.dev.ConsoleRenderer(colors=color_enabled(target))
    )
    level_no = logging.getLevelName(parse_level(level).upper())
    structlog.configure(
        processors=[*_SHARED, structlog.processors.format_exc_info, renderer]
        if use_json
        else [*_SHARED, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        # sys.stderr is looked up per logger, not bound once: it may be replaced (tests, daemons)
        logger_factory=(lambda name=None, *_: _NamedPrintLogger(stream or sys.stderr, name)),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(level_no, renderer, use_json, stream)
