"""A resident shell: one `sh` that runs commands one after another, on an SSH session (ssh.py) or on a
pod exec WebSocket (execstream.py).

Starting a command costs a session of its own: over SSH a channel open and an exec request, each a
round trip, and sshd starting the login shell; in a pod a new connection, TLS, the WebSocket upgrade
and the runtime's exec. A shell that stays takes the next command on its stdin: one round trip, no
set-up (docs/performance.md#what-keeps-a-check-near-its-critical-path). `SSHShell` and `KubePodExec`
keep idle ones and give each command one of them; a new one is started with its first command
(`sh -c 'that command; exec sh'`), so that command waits no longer than a one-off exec would.

Each command goes to the shell as

    printf '%s\\n' MARK; printf '%s\\n' MARK >&2; ( COMMAND
    ) </dev/null; printf '\\n%s %s\\n' "$?" MARK; printf '\\n%s\\n' MARK >&2

with MARK random per shell. On each stream, what comes before the command's first MARK line is not
the command's (a login script's noise, or what an earlier command left) and is dropped; the
command's output lies between the MARK lines, less the newline the closing printf adds; stdout's
last line carries the exit status before the MARK. The subshell keeps the command's `exit`, `cd` and
variables from the resident, and its closed stdin keeps it from reading the commands that follow.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

MARK_BYTES = 12
"""Random bytes in a command's marker (hex in the stream): no output repeats it by chance."""
STATUS_DIGITS_MAX = 3
"""An exit status is 0-255: the status line's longest form, for the reader's separator search."""

Stream = Literal["stdout", "stderr"]


class ShellStreams(Protocol):
    """A started `sh`: its stdin, its stdout and stderr, and its end."""

    @property
    def running(self) -> bool:
        """The shell has not ended and its streams are open."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def read_until(self, stream: Stream, separator: bytes) -> bytes:
        """Data up to and including `separator`; `asyncio.IncompleteReadError` (with what came) when
        the stream ends first."""
        ...

    async def ended_status(self) -> int:
        """Wait for the shell's end; its status as a shell reports a command's (128 + a signal)."""
        ...

    async def close(self) -> None: ...


class ShellGone(Exception):
    """The resident shell ended before the command began: the command did not run."""


class ResidentShell:
    """One `sh`. Not safe for two commands at once: its pool hands it to one caller at a time."""

    def __init__(self, streams: ShellStreams, mark: bytes, *, started: str | None = None) -> None:
        self._streams = streams
        self._mark = mark
        self._started = started
        """The command the shell was started with, its result not read yet."""
        self._in_command = started is not None
        self.new = started is not None
        """Running (or about to run) the command it was opened with: if it ends before that command
        begins, no other shell would fare better (`ShellGone` then is the transport's failure)."""

    @classmethod
    async def open(cls, start: Callable[[str], Awaitable[ShellStreams]], command: str) -> ResidentShell:
        """A new resident shell already running `command`: `start(script)` starts `sh -c script` with
        stdin open, the script runs the command and then becomes the resident (`exec sh`), so the
        first command costs no round trip of its own. `run(command)` reads its result."""
        mark = f"netcheck-{secrets.token_hex(MARK_BYTES)}".encode()
        script = cls._script(mark, command)
        return cls(await start(script.decode() + "exec sh\n"), mark, started=command)

    @property
    def usable(self) -> bool:
        """Ready for another command: the last one was read to its end and the shell still runs."""
        return not self._in_command and self._streams.running

    async def run(self, command: str) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of `command`; the caller bounds the time. Cancelled or failed
        midway, the shell is left unusable (its streams stand inside that command's output)."""
        self.new = self._started is not None
        if self._started is not None:
            started, self._started = self._started, None
            if started != command:
                raise ValueError("a resident shell opened with one command was asked for another")
        else:
            self._in_command = True
            await self._streams.write(self._script(self._mark, command))
        (began, stdout, complete), (_, stderr, _) = await asyncio.gather(
            self._read("stdout", b" " + self._mark + b"\n"), self._read("stderr", b"\n" + self._mark + b"\n"))
        if not began:
            raise ShellGone("the shell ended before the command began")
        status: int | None = None
        if complete:  # the output ends with the end line's start: "\n<status>"
            stdout, _, digits = stdout.rpartition(b"\n")
            status = int(digits) if digits.isdigit() and len(digits) <= STATUS_DIGITS_MAX else None
        out, err = stdout.decode(errors="replace"), stderr.decode(errors="replace")
        if status is None:  # the shell ended inside the command: report it as an exec would
            return await self._streams.ended_status(), out, err
        self._in_command = False
        return status, out, err

    @staticmethod
    def _script(mark: bytes, command: str) -> bytes:
        """The lines that run `command` between its marker lines (the marker is the shell's: a
        literal separator, searched without a regular expression made per command)."""
        return (b"printf '%s\\n' " + mark + b"; printf '%s\\n' " + mark + b" >&2; ( "
                + command.encode() + b"\n) </dev/null; printf '\\n%s %s\\n' \"$?\" " + mark
                + b"; printf '\\n%s\\n' " + mark + b" >&2\n")

    async def _read(self, stream: Stream, end: bytes) -> tuple[bool, bytes, bool]:
        """(the command began, what came on `stream` up to `end` (less `end`), `end` came): when the
        stream ended first, what came before that."""
        try:
            await self._streams.read_until(stream, self._mark + b"\n")
        except asyncio.IncompleteReadError:
            return False, b"", False
        try:
            data = await self._streams.read_until(stream, end)
        except asyncio.IncompleteReadError as exc:
            return True, exc.partial, False
        return True, data[:-len(end)], True

    async def close(self) -> None:
        await self._streams.close()
