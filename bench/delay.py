"""`Delayer`: adds latency on a lab router for the duration of a `with` block.

Used by bench/__main__.py. Inserts the NFQUEUE rule (bench.latency.rule_argv) in the router
namespace, starts `python -m bench.latency` there, and on exit kills that process by its PID and
deletes the rule. Nothing is done outside the given namespace.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import TracebackType

from bench.latency import rule_argv

REPO = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = 5.0
START_SETTLE_S = 0.5


class Delayer:
    def __init__(self, router_ns: str, delay_ms: float) -> None:
        self.router_ns, self.delay_ms = router_ns, delay_ms
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The delay program's PID (`ip netns exec` and `env` exec it in place), for its CPU account."""
        return self.proc.pid if self.proc is not None else None

    def _in_router(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.router_ns, *argv]

    def __enter__(self) -> Delayer:
        argv = [sys.executable, "-m", "bench.latency", "--delay-ms", str(self.delay_ms)]
        self.proc = subprocess.Popen(self._in_router(["env", f"PYTHONPATH={REPO}", *argv]))
        try:
            self.proc.wait(START_SETTLE_S)  # it binds the queue first; exiting now means it failed
            raise RuntimeError(f"delayer exited at start (status {self.proc.returncode})")
        except subprocess.TimeoutExpired:
            pass
        subprocess.run(self._in_router(rule_argv("-I")), check=True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        subprocess.run(self._in_router(rule_argv("-D")), check=False)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # by PID: the process this object started
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
