"""Settings of the continuous watch (`watch:` in the configuration file), read by `netcheck serve`.

`interval` takes seconds or a duration with a unit (`10s`, `5m`, `1h`); unset, the watch is off.
`channel` is required once `interval` is set (a bad pair is one config error line, exit 2).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from probes.errors import InvalidInput
from probes.transports.commands import slack_id

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
DEFAULT_AGREE = 2
REGRESSIONS_KEPT = 10
"""Defaults the fleet state (bot/fleet/state.py) takes from here: a settings module imports no more
than pydantic, as the CLI reads the whole configuration before its first request."""
MIN_INTERVAL_S = 1.0
"""Shorter sweeps would do nothing but check (a sweep of a small cluster takes seconds)."""


def seconds(value: object) -> float:
    """`10`, `10.5`, `"10s"`, `"5m"`, `"1h"`, `"500ms"` → seconds; anything else is a ValueError."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 10s, 5m, 1h")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a duration (use seconds, or a number with s, m or h: 10s, 5m)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class WatchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval: float | None = Field(
        None, description="Time between sweeps of every node, e.g. 10s, 5m (None: the watch is off).",
    )
    channel: str | None = Field(
        None, description="Channel id (C…) the watch posts regressions and recoveries to (not a #name).",
    )
    probes: list[str] | None = Field(
        None, description="Probe ids a sweep runs (a cheap subset); None: every probe.",
    )
    follow_up: bool = Field(
        True, description="Follow a node's problem to the blamed peer and a reference node, as /netcheck "
        "NODE does (causes on another node); off: each node on its own, cheaper.",
    )
    agree: int = Field(
        DEFAULT_AGREE, ge=1, le=100,
        description="Consecutive checks that must agree on a node's new verdict before it is posted.",
    )
    max_parallel: int = Field(
        2, ge=1, le=64,
        description="Nodes a sweep checks at once (within the fleet bound, slack.max_concurrent_checks).",
    )
    regressions_kept: int = Field(
        REGRESSIONS_KEPT, ge=1, le=50, description="Last regressions the App Home tab lists.",
    )

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        if value is None:
            return None
        interval = seconds(value)
        if interval < MIN_INTERVAL_S:
            raise ValueError(f"must be at least {MIN_INTERVAL_S:g} s")
        return interval

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        # an id, not a #name: the picture's files.completeUploadExternal and the Home tab's <#C…> link
        # take ids only (docs/slack.md#file-uploads)
        if value is None:
            return None
        try:
            return slack_id(value, "Slack channel id").value
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _channel_when_on(self) -> WatchSettings:
        if self.interval is not None and not self.channel:
            raise ValueError("watch.channel is required when watch.interval is set")
        return self

    @property
    def enabled(self) -> bool:
        return self.interval is not None
