"""A resident shell: one `sh` on one SSH session that runs commands one after another.

An SSH exec needs a session of its own: a channel open and an exec request, each a round trip, and
sshd starting the login shell, before the command runs. A shell that stays on its session takes the
next command on its stdin: one round trip, no session set-up
(docs/performance.md#what-keeps-a-check-near-its-critical-path).
`SSHShell` (ssh.py) keeps up to the node's session limit of them and gives each command an idle one.

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
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncssh

MARK_BYTES = 12
"""Random bytes in a command's marker (hex in the stream): no output repeats it by chance."""
STATUS_DIGITS_MAX = 3
"""An exit status is 0-255: the status line's longest form, for the reader's separator search."""


class ResidentShell:
    """One `sh` on its own session. Not safe for two commands at once: the pool hands it out to one."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self._process = process
        self._in_command = False

    @property
    def usable(self) -> bool:
        """Ready for another command: the last one was read to its end and the shell still runs."""
        channel_open = not self._process.channel.is_closing()
        return not self._in_command and channel_open and self._process.exit_status is None \
            and self._process.exit_signal is None

    async def run(self, command: str) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of `command`; the caller bounds the time. Cancelled or failed
        midway, the shell is left unusable (its streams stand inside that command's output)."""
        mark = f"netcheck-{secrets.token_hex(MARK_BYTES)}".encode()
        self._in_command = True
        self._process.stdin.write(
            b"printf '%s\\n' " + mark + b"; printf '%s\\n' " + mark + b" >&2; ( "
            + command.encode() + b"\n) </dev/null; printf '\\n%s %s\\n' " + mark
            + b" \"$?\"; printf '\\n%s\\n' " + mark + b" >&2\n"
        )
        status_line = re.compile(b"\n" + re.escape(mark) + rb" (\d+)\n")
        (stdout, status), (stderr, _) = await asyncio.gather(
            self._read(self._process.stdout, mark, status_line),
            self._read(self._process.stderr, mark, re.compile(b"\n" + re.escape(mark) + b"\n")),
        )
        if status is None:  # the shell ended inside the command: report it as an exec would
            await self._process.wait_closed()  # sshd sends the exit status or signal after the EOF
            return self._ended_status(), stdout, stderr
        self._in_command = False
        return status, stdout, stderr

    async def _read(self, stream: asyncssh.SSHReader[bytes], mark: bytes, end: re.Pattern[bytes],
                    ) -> tuple[str, int | None]:
        """The command's output on one stream and, where its end line carries one, its exit status
        (None when the stream ended first: the output that arrived is returned)."""
        try:
            await stream.readuntil(mark + b"\n")
        except asyncio.IncompleteReadError:
            return "", None  # ended before the command began: nothing of it to show
        tail = len(mark) + STATUS_DIGITS_MAX + 3
        try:
            data = await stream.readuntil(end, max_separator_len=tail)
        except asyncio.IncompleteReadError as exc:
            return exc.partial.decode(errors="replace"), None
        found = end.search(data, max(0, len(data) - tail))
        if found is None:  # readuntil returns once `end` matched at the data's end; never here
            return data.decode(errors="replace"), None
        status = int(found.group(1)) if end.groups else 0
        return data[:found.start()].decode(errors="replace"), status

    def _ended_status(self) -> int:
        """The shell's own end as a shell reports a command's: 128 + the signal that killed it (asyncssh
        reports -1 as the status then), else its exit status; -1 when sshd said neither."""
        killed_by = self._process.exit_signal
        if killed_by is not None:
            try:
                return 128 + signal.Signals[f"SIG{killed_by[0]}"].value
            except KeyError:  # a signal this machine does not name
                return -1
        status = self._process.exit_status
        return -1 if status is None else status

    def close(self) -> None:
        self._process.close()
