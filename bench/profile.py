"""Sampling profile of the bot while it acknowledges slash commands during a sweep (py-spy).

Used by bench/slackbench.py: `record(pid, seconds, out)` runs py-spy (installed into the bench's
interpreter by bench/run, not a netcheck dependency) against the bot's PID without pausing it, as
collapsed stacks of the thread holding the GIL (`--gil`: the bot's loop and the engine's loop run in
two threads of one process, bot/ops/engine_loop.py, so what holds the GIL is what an ack can wait
for; a thread blocked in a system call holds none); `top_entries(text)` reads them back. Views: the
samples per thread (the bot's loop, the engine's loop, worker threads such as the picture drawing),
where the GIL was held overall, and within the aiohttp handler that acknowledges a Slack request
(bot/slack/http.py `events`), the ack path itself.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

SAMPLE_RATE_HZ = 250
ACK_HANDLER = re.compile(r"^(?:\S+\.)?events \(.*bot/slack/http\.py")
"""The aiohttp handler's frame, `events_app.<locals>.events (bot/slack/http.py:99)` as py-spy names it."""
TOP = 12
CALLERS_OF = 5
"""For the functions with the most self time: their most frequent chain of callers."""
CALLER_DEPTH = 8
_FRAME = re.compile(r"^(?P<fn>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")
ENGINE_LOOP = re.compile(r"^EngineLoop\._main \(.*bot/ops/engine_loop\.py")
"""The engine's thread (bot/ops/engine_loop.py) at the bottom of its stacks."""
WORKER = re.compile(r"^_worker \(.*concurrent/futures/thread\.py")
"""A worker thread of an executor (`asyncio.to_thread`: the picture drawing)."""


def thread_of(frames: list[str]) -> str:
    """Which of the bot's threads a stack (outermost frame first) belongs to."""
    if any(ENGINE_LOOP.match(f.strip()) for f in frames):
        return "engine loop"
    if any(WORKER.match(f.strip()) for f in frames):
        return "worker threads"
    return "bot loop"


def py_spy() -> str:
    return str(Path(sys.executable).parent / "py-spy")


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling `pid` for `seconds`; the caller waits for the returned process."""
    argv = [py_spy(), "record", "--pid", str(pid), "--rate", str(SAMPLE_RATE_HZ), "--nonblocking", "--gil",
            "--format", "raw", "--output", str(out), "--duration", str(max(1, round(seconds)))]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _short(frame: str) -> str:
    """`fn (path/to/file.py:12)` -> `fn (file.py)`: one entry per function, not per line."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    parts = m.group("file").split("/")
    where = "/".join(parts[-2:]) if parts[-2:-1] in (["bot"], ["probes"], ["slack"], ["fixes"]) else parts[-1]
    return f"{m.group('fn')} ({where})"


def top_entries(collapsed: str) -> dict[str, Any]:
    """Leaf ("self") and inclusive counts per function: all samples, and those in the ack handler."""
    leaf_all: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    leaf_bot: Counter[str] = Counter()
    callers: dict[str, Counter[str]] = {}
    leaf_ack: Counter[str] = Counter()
    incl_ack: Counter[str] = Counter()
    total = in_ack = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        leaf = _short(frames[-1])
        leaf_all[leaf] += count
        thread = thread_of(frames)
        threads[thread] += count
        if thread == "bot loop":
            leaf_bot[leaf] += count
        chain = " < ".join(_short(f) for f in reversed(frames[-CALLER_DEPTH - 1:-1]))
        callers.setdefault(leaf, Counter())[chain] += count
        ack_at = next((i for i, f in enumerate(frames) if ACK_HANDLER.match(f.strip())), None)
        if ack_at is None:
            continue
        in_ack += count
        leaf_ack[_short(frames[-1])] += count
        for name in {_short(f) for f in frames[ack_at:]}:
            incl_ack[name] += count

    def pct(counter: Counter[str], of: int) -> list[dict[str, Any]]:
        return [{"function": k, "samples": v, "pct": round(100 * v / of, 1)}
                for k, v in counter.most_common(TOP)] if of else []

    top_callers = {leaf: callers[leaf].most_common(1)[0][0] for leaf, _ in leaf_all.most_common(CALLERS_OF)}
    per_thread = {name: {"samples": n, "pct": round(100 * n / total, 1)} for name, n in threads.most_common()}
    return {"samples": total, "samples_in_ack_handler": in_ack, "rate_hz": SAMPLE_RATE_HZ, "gil_only": True,
            "threads": per_thread, "self_all": pct(leaf_all, total), "self_bot_loop": pct(leaf_bot, total),
            "self_in_ack": pct(leaf_ack, in_ack), "inclusive_in_ack": pct(incl_ack, in_ack),
            "callers": top_callers}


def read(out: Path, stderr: bytes) -> dict[str, Any]:
    """The recorded profile's top entries, or py-spy's complaint when it wrote nothing."""
    if not out.exists():
        return {"error": stderr.decode(errors="replace")[-400:]}
    return top_entries(out.read_text())
