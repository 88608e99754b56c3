"""`Hooks`: callbacks the engine and the fix runner call with what they produced, so that metrics
and other observers hang on an explicit list instead of wrapping the engine or the runner.

`Engine.on_report` runs with every report `check`/`check_all` return; `FixRunner.on_result` with
every apply's fix id and result. `netcheck serve` adds the Prometheus counters (bot/ops/metrics.py).
A hook is called synchronously and must be quick; one that raises is logged and never changes the
caller's outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, ParamSpec

import structlog

log = structlog.get_logger("netcheck.hooks")

P = ParamSpec("P")


class Hooks(Generic[P]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._hooks: list[Callable[P, None]] = []

    def add(self, hook: Callable[P, None]) -> None:
        """Call `hook` from now on (adding the same hook twice calls it once)."""
        if hook not in self._hooks:
            self._hooks.append(hook)

    def __contains__(self, hook: object) -> bool:
        return hook in self._hooks

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for hook in self._hooks:
            try:
                hook(*args, **kwargs)
            except Exception:  # an observer's failure must not change a check's or a fix's outcome
                log.exception("hook failed", hooks=self.name, hook=getattr(hook, "__qualname__", repr(hook)))
