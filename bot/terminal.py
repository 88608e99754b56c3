"""Whether output to a stream may use colour: only on a terminal, never with NO_COLOR set.

Used by every command that could colour anything (`check`'s status marks, the demo's conversation,
the console log renderer), so one rule decides: the stream is a TTY, `NO_COLOR` is unset or empty
(https://no-color.org: "when present and not an empty string") and `TERM` is not `dumb`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TextIO


def color_enabled(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
