"""Where a check's time goes: when each finding was queued, started and finished, and what it waited for.

Written by the engine (`probes/engine.py`) for every finding and node transport of a run, read by
`netcheck check --timings` (bot/render_timings.py), the JSON output and `bench/run`. Times are
seconds since the run began (the engine's `check`/`check_all` call, before discovery), on one
monotonic clock shared by every node of the run.

What a probe waits for is recorded where the waiting happens, through a context variable bound to
the running probe: the engine (its node's SSH connection or host pod, its debug pod, the peer's debug
pod), `ProbeContext.result_of` (another probe) and the SSH transport (a free channel). Code outside a
probe records nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

NOTICEABLE_WAIT_S = 0.001
"""Shorter waits are not recorded (a lock or semaphore that was free)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Wait(_Frozen):
    """One wait of a probe: what for, from when to when (seconds since the run began)."""

    on: str
    from_s: float
    to_s: float

    @property
    def seconds(self) -> float:
        return self.to_s - self.from_s


class FindingTiming(_Frozen):
    """A finding's life: queued (the run asked for it), started (its transports were there and the
    probe began), finished; and every wait on the way."""

    queued_s: float
    started_s: float
    finished_s: float
    waited: list[Wait] = []
    queued_for: str | None = None
    """Why a follow-up was queued: "NODE PROBE", the finding that called for it."""


class Span(_Frozen):
    """Something of the run that took time: discovery, or a node transport (`what`: ssh, host-pod,
    debug-pod; `reused`: a warm debug pod handed over without starting one)."""

    what: str
    node: str | None = None
    from_s: float
    to_s: float
    ok: bool = True
    reused: bool | None = None

    @property
    def seconds(self) -> float:
        return self.to_s - self.from_s


class RunTimings(_Frozen):
    """The run's own spans (discovery, transports), beside the findings' timings."""

    started_unix: float
    """Wall-clock start of the run (Unix time), so a caller can add its own start-up before it."""
    startup_s: float | None = None
    """Seconds from the process start to the run's start (imports, configuration), when the caller
    knows it (`netcheck check`)."""
    spans: list[Span] = []


@dataclass
class Clock:
    """The run's clock: seconds since it began."""

    t0: float = field(default_factory=time.monotonic)
    started_unix: float = field(default_factory=time.time)

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 4)


@dataclass
class WaitLog:
    """The waits of one running probe (bound to it through `current`)."""

    clock: Clock
    waits: list[Wait] = field(default_factory=list)


current: ContextVar[WaitLog | None] = ContextVar("netcheck_wait_log", default=None)


@contextlib.contextmanager
def waiting(on: str) -> Iterator[None]:
    """Record the block as a wait of the running probe on `on` (nothing outside a probe)."""
    log = current.get()
    if log is None:
        yield
        return
    start = log.clock.now()
    try:
        yield
    finally:
        end = log.clock.now()
        if end - start >= NOTICEABLE_WAIT_S:
            log.waits.append(Wait(on=on, from_s=start, to_s=end))
