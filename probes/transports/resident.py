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
    ) </dev/null; printf '\\n%s %s\\n' MARK "$?"; printf '\\n%s\\n' MARK >&2

with MARK random per command. On each stream, what comes before the first MARK line is not the
command's (a login script's noise) and is dropped; the command's output lies between the MARK lines,
less the newline the closing printf adds. The subshell keeps the command's `exit`, `cd` and
variables from the resident, and its closed stdin keeps it from reading the commands that follow.
"""

from __future__ import annotations

import asyncio
import re
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

    async def read_until(self, stream: Stream, separator: bytes | re.Pattern[bytes],
                         max_separator_len: int = 0) -> bytes:
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

    def __init__(self, streams: ShellStreams, *, started: tuple[str, bytes] | None = None) -> None:
        self._streams = streams
        self._started = started
        """(command, its marker): the command the shell was started with, not read yet."""
        self._in_command = started is not None
        self.new = started is not None
        """Opened for the command it runs first: if it ends before that command begins, no other
        shell would fare better (`ShellGone` from a new shell is the transport's failure)."""

    @classmethod
    async def open(cls, start: Callable[[str], Awaitable[ShellStreams]], command: str) -> ResidentShell:
        """A new resident shell already running `command`: `start(script)` starts `sh -c script` with
        stdin open, the script runs the command and then becomes the resident (`exec sh`), so the
        first command costs no round trip of its own. `run(command)` reads its result."""
        mark, script = cls._script(command)
        return cls(await start(script.decode() + "exec sh\n"), started=(command, mark))

    @property
    def usable(self) -> bool:
        """Ready for another command: the last one was read to its end and the shell still runs."""
        return not self._in_command and self._streams.running

    async def run(self, command: str) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of `command`; the caller bounds the time. Cancelled or failed
        midway, the shell is left unusable (its streams stand inside that command's output)."""
        if self._started is not None:
            started, mark = self._started
            self._started = None
            if started != command:
                raise ValueError("a resident shell opened with one command was asked for another")
        else:
            mark, script = self._script(command)
            self._in_command = True
            await self._streams.write(script)
        (began, stdout, status), (_, stderr, _) = await asyncio.gather(
            self._read("stdout", mark, re.compile(b"\n" + re.escape(mark) + rb" (\d+)\n")),
            self._read("stderr", mark, re.compile(b"\n" + re.escape(mark) + b"\n")),
        )
        if not began:
            raise ShellGone("the shell ended before the command began")
        if status is None:  # the shell ended inside the command: report it as an exec would
            return await self._streams.ended_status(), stdout, stderr
        self._in_command = False
        return status, stdout, stderr

    @staticmethod
    def _script(command: str) -> tuple[bytes, bytes]:
        """(marker, the lines that run `command` between its marker lines)."""
        mark = f"netcheck-{secrets.token_hex(MARK_BYTES)}".encode()
        return mark, (b"printf '%s\\n' " + mark + b"; printf '%s\\n' " + mark + b" >&2; ( "
                      + command.encode() + b"\n) </dev/null; printf '\\n%s %s\\n' " + mark
                      + b" \"$?\"; printf '\\n%s\\n' " + mark + b" >&2\n")

    async def _read(self, stream: Stream, mark: bytes, end: re.Pattern[bytes],
                    ) -> tuple[bool, str, int | None]:
        """(the command began, its output on one stream, the exit status where the stream's end line
        carries one); the status is None when the stream ended first, with the output that came."""
        try:
            await self._streams.read_until(stream, mark + b"\n")
        except asyncio.IncompleteReadError:
            return False, "", None
        tail = len(mark) + STATUS_DIGITS_MAX + 3
        try:
            data = await self._streams.read_until(stream, end, tail)
        except asyncio.IncompleteReadError as exc:
            return True, exc.partial.decode(errors="replace"), None
        found = end.search(data, max(0, len(data) - tail))
        if found is None:  # read_until returns once `end` matched at the data's end; never here
            return True, data.decode(errors="replace"), None
        status = int(found.group(1)) if end.groups else 0
        return True, data[:found.start()].decode(errors="replace"), status

    async def close(self) -> None:
        await self._streams.close()
