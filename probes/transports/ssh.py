"""Node shells over SSH (asyncssh): one pooled connection per node, host keys strictly verified.

Used through `probes/transports/access.py` (`NodeAccess`, the engine's `Transports.shells`, built
in `bot.wiring`) by the probes and by fixes (`Engine.node_shell()`). This is the only module that
imports asyncssh (at the first connection or known_hosts read, not at import: the settings are read
by every CLI start); its errors leave here as netcheck errors: an unknown or changed host key ->
`HostKeyRejected` (never accepted), connect or authentication failure -> `HostUnreachable`, a
command past its timeout -> `CommandTimeout`.
"""

from __future__ import annotations

import asyncio
import importlib
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from probes import timing
from probes.errors import CommandTimeout, HostKeyRejected, HostUnreachable, InvalidInput
from probes.facts import NodeFacts
from probes.model import trim
from probes.transports import commands
from probes.transports.base import CommandResult
from probes.transports.commands import node_name, run_batched
from probes.transports.resident import ResidentShell, ShellGone, Stream

if TYPE_CHECKING:
    import asyncssh

log = structlog.get_logger("netcheck.ssh")

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


class SSHHost(BaseModel):
    """Where to reach one node when its InternalIP is not the right address."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, description="Address or DNS name to connect to.")
    port: int | None = Field(None, ge=1, le=65535)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        try:
            return commands.host(value).value
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None


class SSHSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field("root", min_length=1, description="SSH user on the nodes.")
    port: int = Field(22, ge=1, le=65535, description="SSH port on the nodes.")
    private_key: Path | None = Field(None, description="Client key file; None: the default keys/agent.")
    known_hosts: Path = Field(
        DEFAULT_KNOWN_HOSTS, description="known_hosts file the node host keys are verified against."
    )
    sudo: bool = Field(False, description="Prefix commands with `sudo -n` (only for a non-root user).")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to connect and authenticate.")
    command_timeout: float = Field(8.0, gt=0, description="Seconds one command may run by default.")
    max_sessions: int = Field(
        10, ge=1, le=64,
        description="Most commands run at once on one node's connection (OpenSSH's default MaxSessions); "
        "a node whose sshd allows fewer is learned from its first refusal and kept below that.",
    )
    output_limit: int = Field(
        64_000, ge=1000, description="Characters of stdout/stderr kept per command (head and tail)."
    )
    hosts: dict[str, SSHHost] = Field(default_factory=dict, description="Per-node address overrides.")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        return commands.field_value(lambda v: commands.word(v, "SSH user"), value)

    @field_validator("hosts")
    @classmethod
    def _node_names(cls, hosts: dict[str, SSHHost]) -> dict[str, SSHHost]:
        for name in hosts:
            commands.field_value(node_name, name)
        return hosts

    def address(self, node: NodeFacts) -> tuple[str, int]:
        override = self.hosts.get(node.name)
        if override is not None:
            return override.host, override.port or self.port
        if not node.internal_ip:
            raise HostUnreachable(f"node {node.name} has no InternalIP and no ssh.hosts entry")
        return node.internal_ip, self.port

    def unconfigured(self, node: NodeFacts) -> str | None:
        """Why SSH cannot be used for `node` without trying (`node_access: auto`), or None when a key
        file and the node's host key in known_hosts are configured."""
        if self.private_key is None:
            return "no ssh.private_key configured"
        key, known_hosts = self.private_key.expanduser(), self.known_hosts.expanduser()
        if not key.is_file():
            return f"SSH key {key} does not exist"
        if not known_hosts.is_file():
            return f"known_hosts {known_hosts} does not exist"
        import asyncssh

        try:
            host, port = self.address(node)
            trusted = asyncssh.read_known_hosts(str(known_hosts)).match(host, host, port)[0]
        except HostUnreachable as exc:
            return str(exc)
        except (OSError, ValueError) as exc:
            return f"known_hosts {known_hosts} unreadable: {exc}"
        if not trusted:
            where = host if port == 22 else f"[{host}]:{port}"
            return f"no host key for {where} in known_hosts {known_hosts}"
        return None

    def wrap(self, command: str) -> str:
        """The command as sent: through `sudo -n sh -c` for a non-root user when configured."""
        if self.sudo and self.user != "root":
            return f"sudo -n sh -c {shlex.quote(command)}"
        return command


ENCRYPTION_PREFERENCE = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
                         "chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr")
"""Ciphers offered, AES-GCM first: asyncssh's ChaCha20-Poly1305 builds cipher objects in Python for
every packet, and a sweep keeps dozens of connections busy on the bot's event loop (py-spy of the bot,
docs/performance.md); AES-GCM keeps one AEAD object per key. Every OpenSSH since 6.2 offers both."""

SESSION_REFUSED = (1, 2)
"""RFC 4254 channel-open failure codes a session beyond sshd's MaxSessions gets (administratively
prohibited; OpenSSH answers 2, "open failed")."""
REFUSED_RETRIES = 5
"""Session refusals one command outlives: sshd counts a session until its close is through, so a
refusal can come while our count is already within the limit."""
REFUSED_BACKOFF_S = 0.05
"""Pause before retrying a refused session, times the retry's number."""


class SessionLimit:
    """Sessions open at once on one connection: at most the configured number, and below what the
    node's sshd allows (its MaxSessions, which the protocol does not announce) once it refused one.
    A session holds its slot while its resident shell is open, idle or busy."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.taken = 0
        """Slots handed out (sessions open or being opened)."""
        self.established = 0
        """Sessions sshd accepted that are still open."""
        self.peak = 0
        """The most sessions sshd had accepted at once: it allows at least that many."""
        self.limited = False
        self._changed = asyncio.Condition()

    async def acquire(self, idle: list[ResidentShell]) -> ResidentShell | None:
        """An idle resident shell from `idle`, else a free slot for a new session (None)."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(idle) or self.taken < self.allowed)
            if idle:
                return idle.pop()
            self.taken += 1
            return None

    async def idle(self, idle: list[ResidentShell], resident: ResidentShell) -> None:
        """`resident` is free again: into `idle`, and a waiter may take it."""
        async with self._changed:
            idle.append(resident)
            self._changed.notify_all()

    async def opened(self) -> None:
        async with self._changed:
            self.established += 1
            self.peak = max(self.peak, self.established)
            if self.limited and self.established > self.allowed:
                self.allowed = self.established  # sshd just accepted that many: it allows them
                self._changed.notify_all()

    async def release(self, *, established: bool) -> None:
        async with self._changed:
            self.taken -= 1
            self.established -= 1 if established else 0
            self._changed.notify_all()

    def refused(self) -> bool:
        """sshd refused a session: it allows no more than it accepted at once so far (sessions still
        being accepted raise that again, `opened`). True when this lowered the limit."""
        self.limited = True
        lower = max(1, min(self.allowed, self.peak))
        if lower >= self.allowed:
            return False
        self.allowed = lower
        return True


class SSHShell:
    """A `NodeShell` on one pooled connection: each command runs in an idle resident shell
    (resident.py), or in a new one while the node's session limit allows."""

    def __init__(self, node: str, conn: asyncssh.SSHClientConnection, settings: SSHSettings) -> None:
        self.node = node
        self._conn = conn
        self._settings = settings
        self._closing = False
        # probes of a node run concurrently; sshd refuses sessions beyond its MaxSessions
        self.sessions = SessionLimit(settings.max_sessions)
        self._idle: list[ResidentShell] = []

    @property
    def closed(self) -> bool:
        # is_closed() turns true only once the close handshake ran; a closing shell is not reused
        return self._closing or self._conn.is_closed()

    async def run(self, command: str, *, timeout: float | None = None,
                  output_limit: int | None = None) -> CommandResult:
        import asyncssh

        limit = timeout or self._settings.command_timeout
        while True:
            resident = await self._resident(command)
            try:
                async with asyncio.timeout(limit):
                    exit_status, stdout, stderr = await resident.run(command)
                break
            except ShellGone as exc:  # an idle shell that had ended: the command did not run
                await self._discard(resident)
                if resident.new:
                    raise HostUnreachable(f"{self.node}: the SSH session's shell ended: {exc}") from exc
            except TimeoutError:
                await self._discard(resident)  # it is still inside the command: closing ends it
                raise CommandTimeout(
                    f"{self.node}: command timed out after {limit:g} s: {command}") from None
            except (asyncssh.Error, OSError) as exc:
                await self._discard(resident)
                if self._conn.is_closed():
                    self.close()  # the connection is gone: the pool reconnects on the next get()
                raise HostUnreachable(f"{self.node}: SSH session failed: {exc}") from exc
            except BaseException:
                await self._discard(resident)
                raise
        if resident.usable:
            await self.sessions.idle(self._idle, resident)
        else:
            await self._discard(resident)
        cap = output_limit or self._settings.output_limit
        return CommandResult(
            command=command,
            exit_status=exit_status,
            stdout=trim(stdout, cap),
            stderr=trim(stderr, cap),
            truncated=len(stdout) > cap or len(stderr) > cap,
        )

    async def run_batch(self, commands: Sequence[str], *, timeout: float | None = None,
                        ) -> list[CommandResult]:
        """The commands as one script (commands.Batch) in one resident shell: one round trip instead
        of one per command. The script's output may be each command's limit times their number."""
        return await run_batched(self, commands, cap=self._settings.output_limit, timeout=timeout)

    async def _resident(self, command: str) -> ResidentShell:
        """An idle resident shell, else a new one on a new session started with `command`; waiting
        for either is a wait for a free SSH session. Refusals beyond sshd's MaxSessions lower the
        limit and are retried."""
        import asyncssh

        for retry in range(REFUSED_RETRIES + 1):
            with timing.waiting("free SSH session"):
                idle = await self.sessions.acquire(self._idle)
            if idle is not None:
                if idle.usable:
                    return idle
                await self._discard(idle)  # its shell ended while it waited (sshd, a signal)
                continue
            try:
                return await ResidentShell.open(self._start, command)
            except asyncssh.ChannelOpenError as exc:
                await self.sessions.release(established=False)
                if exc.code not in SESSION_REFUSED or retry == REFUSED_RETRIES:
                    raise HostUnreachable(f"{self.node}: SSH session refused: {exc.reason}") from exc
                if self.sessions.refused():
                    log.info("ssh sessions limited by the node", node=self.node,
                             allowed=self.sessions.allowed)
            except (asyncssh.Error, OSError) as exc:
                await self.sessions.release(established=False)
                self.close()  # the connection is gone: the pool reconnects on the next get()
                raise HostUnreachable(f"{self.node}: SSH session failed: {exc}") from exc
            except BaseException:
                await self.sessions.release(established=False)
                raise
            with timing.waiting("free SSH session"):
                await asyncio.sleep(REFUSED_BACKOFF_S * (retry + 1))
        raise AssertionError("unreachable: the last retry raises")  # pragma: no cover

    async def _start(self, script: str) -> SessionStreams:
        """A new session running `sh -c script` (through `sudo -n` when configured), bounded by
        connect_timeout: a loaded sshd is slow to fork."""
        try:
            async with asyncio.timeout(self._settings.connect_timeout):
                process = await self._conn.create_process(
                    self._settings.wrap(f"exec sh -c {shlex.quote(script)}"), encoding=None)
        except TimeoutError:
            raise HostUnreachable(
                f"{self.node}: no SSH session within {self._settings.connect_timeout:g} s"
            ) from None
        await self.sessions.opened()
        return SessionStreams(process)

    async def _discard(self, resident: ResidentShell) -> None:
        await resident.close()
        await self.sessions.release(established=True)

    def close(self) -> None:
        self._closing = True
        self._conn.close()


class SessionStreams:
    """`ShellStreams` of an SSH session running `sh` (resident.py)."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self._process = process

    @property
    def running(self) -> bool:
        return not self._process.channel.is_closing() and self._process.exit_status is None

    async def write(self, data: bytes) -> None:
        self._process.stdin.write(data)

    async def read_until(self, stream: Stream, separator: bytes) -> bytes:
        reader = self._process.stdout if stream == "stdout" else self._process.stderr
        return await reader.readuntil(separator)

    async def ended_status(self) -> int:
        """128 + the signal that ended the shell (asyncssh gives -1 as its status then), else its
        status; -1 when sshd said neither. sshd sends them after the streams' end: waited for."""
        await self._process.wait_closed()
        killed_by = self._process.exit_signal
        if killed_by is not None:
            try:
                return 128 + signal.Signals[f"SIG{killed_by[0]}"].value
            except KeyError:  # a signal this machine does not name
                return -1
        status = self._process.exit_status
        return -1 if status is None else status

    async def close(self) -> None:
        self._process.close()


_preload: threading.Thread | None = None


def preload_client() -> None:
    """Start importing asyncssh in a thread, once (a few hundred ms of CPU on a busy machine): the
    first SSH connection starts with the debug pods, and the event loop must stay free meanwhile
    for their requests. A failed import is raised by the import in `_connect`."""
    global _preload
    if _preload is None and "asyncssh" not in sys.modules:
        _preload = threading.Thread(target=importlib.import_module, args=("asyncssh",), daemon=True,
                                    name="netcheck-import-asyncssh")
        _preload.start()


class SSHPool:
    """`HostShells` for the engine: connects on first use per node, reuses, reconnects if closed."""

    def __init__(self, settings: SSHSettings) -> None:
        self.settings = settings
        self._shells: dict[str, SSHShell] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, node: NodeFacts) -> SSHShell:
        preload_client()
        if _preload is not None and _preload.is_alive():
            await asyncio.to_thread(_preload.join)
        lock = self._locks.setdefault(node.name, asyncio.Lock())
        async with lock:
            shell = self._shells.get(node.name)
            if shell is None or shell.closed:
                shell = SSHShell(node.name, await self._connect(node), self.settings)
                self._shells[node.name] = shell
            return shell

    async def _connect(self, node: NodeFacts) -> asyncssh.SSHClientConnection:
        import asyncssh

        host, port = self.settings.address(node)
        known_hosts = self.settings.known_hosts.expanduser()
        if not known_hosts.is_file():
            raise HostKeyRejected(
                f"known_hosts file {known_hosts} does not exist: host keys cannot be verified"
            )
        options: dict[str, object] = {
            "encryption_algs": ENCRYPTION_PREFERENCE,
            "username": self.settings.user,
            "known_hosts": str(known_hosts),
            "config": None,  # ignore ~/.ssh/config: the netcheck config is the only source
            "connect_timeout": self.settings.connect_timeout,
        }
        if self.settings.private_key is not None:
            options["client_keys"] = [str(self.settings.private_key.expanduser())]
            options["agent_path"] = None
        bound = log.bind(node=node.name, host=host, port=port)
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                conn = await asyncssh.connect(host, port, **options)
        except asyncssh.HostKeyNotVerifiable as exc:
            reason = await self._host_key_reason(host, port, known_hosts)
            bound.warning("ssh host key rejected", reason=reason)
            raise HostKeyRejected(reason) from exc
        except asyncssh.PermissionDenied as exc:
            raise HostUnreachable(
                f"SSH authentication as {self.settings.user}@{host}:{port} failed: {exc.reason}"
            ) from exc
        except TimeoutError as exc:
            raise HostUnreachable(
                f"SSH to {host}:{port} timed out after {self.settings.connect_timeout:g} s"
            ) from exc
        except (asyncssh.Error, OSError) as exc:
            raise HostUnreachable(f"SSH to {host}:{port} failed: {exc}") from exc
        except ValueError as exc:  # e.g. an unreadable or malformed private key / known_hosts
            raise HostUnreachable(f"SSH to {host}:{port} not possible: {exc}") from exc
        bound.info("ssh connected")
        return conn

    async def _host_key_reason(self, host: str, port: int, known_hosts: Path) -> str:
        """Say exactly why: no entry for this host, or an entry whose key differs (and the key seen)."""
        import asyncssh

        where = host if port == 22 else f"[{host}]:{port}"
        try:
            trusted = asyncssh.read_known_hosts(str(known_hosts)).match(host, host, port)[0]
        except (OSError, ValueError) as exc:
            return f"known_hosts {known_hosts} unreadable: {exc}"
        seen = ""
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                key = await asyncssh.get_server_host_key(host, port, config=None)
            if key is not None:
                seen = f" (server presented {key.get_algorithm()} {key.get_fingerprint()})"
        except (TimeoutError, asyncssh.Error, OSError):
            pass
        if not trusted:
            return f"host key for {where} is unknown: no entry in known_hosts {known_hosts}{seen}"
        return f"host key for {where} does not match known_hosts {known_hosts}{seen}: key changed?"

    async def aclose(self) -> None:
        shells, self._shells = list(self._shells.values()), {}
        for shell in shells:
            shell.close()
