"""The contract every fix follows, and what a fix may use from the probe engine.

A fix is a subclass of `Fix` in `fixes/catalog/<id>.py`, registered with `@fix(...)`
(fixes/registry.py). `FixRunner` (fixes/runner.py) drives it: `plan` -> precheck (the probe the
fix addresses, plus `is_applied`) -> `snapshot` -> `apply` -> `settle` (the change took effect) ->
verify (probes + `check_applied`) -> `rollback(before)` on failure. A fix reports how it advances
through `say` (progress lines for the CLI and the Slack thread). A fix validates every parameter in
`plan` (InvalidInput, one line) before it runs anything, and builds every command with
`probes.transports.commands.render`.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import structlog

from fixes.model import Approval, Plan
from fixes.settings import FixSettings
from probes.api import EngineAPI
from probes.errors import InvalidInput, NetcheckError
from probes.transports.base import CommandResult
from probes.transports.commands import Arg, render
from probes.transports.commands import path as file_path  # the one path validator

log = structlog.get_logger("netcheck.fixes")

Progress = Callable[[str], Awaitable[None]]
"""Where a fix reports how it advances ("calico-node 2/3 updated"): the CLI prints each line, the
Slack bot updates the fix's thread reply. It must never fail the fix."""

FILE_CONTENT_LIMIT = 65536
"""Bytes of file content a fix writes in one command (unit files, drop-ins, /etc/hosts)."""


class FixFailed(NetcheckError):
    """A step of `apply` or `rollback` failed; the message names the command and its output."""


def file_content(text: str) -> Arg:
    """File text a fix writes, built from a fixed template and validated values (or read back from
    the node for an in-place rewrite). `render` shell-quotes it like every other value."""
    if "\x00" in text or len(text.encode()) > FILE_CONTENT_LIMIT:
        raise InvalidInput(f"file content refused: NUL byte or more than {FILE_CONTENT_LIMIT} bytes")
    return Arg(text)


ABSENT_EXIT = 3
"""Exit status `read_file` uses for "no such file", so it is told apart from a failing `cat`."""


class Fix(ABC):
    """One fix bound to one node. Class attributes are set by `@fix(...)`."""

    id: ClassVar[str]
    addresses: ClassVar[str]
    verify_probes: ClassVar[tuple[str, ...]]
    seen_by_new_pods_only: ClassVar[bool] = False
    """The change shows only in pods started after it (a pod's interface MTU is set when it starts):
    verification runs in new debug pods, not in warm ones started before the apply."""

    @classmethod
    def description(cls) -> str:
        """The fix class's docstring: what it changes, when it counts as verified, its rollback."""
        doc = inspect.getdoc(cls) or ""
        return "" if doc == inspect.getdoc(Fix) else doc

    @classmethod
    def title(cls) -> str:
        """First line of the docstring: the fix's one-line catalog entry (docs/fixes.md)."""
        return (cls.description() or cls.id).splitlines()[0]

    def __init__(self, engine: EngineAPI, node: str, settings: FixSettings | None = None) -> None:
        self.engine = engine
        self.node = node
        self.settings = settings or FixSettings()
        self.progress: Progress | None = None  # set by the runner for one apply/rollback

    async def say(self, text: str) -> None:
        """Report progress; a reporting failure (e.g. Slack down) is logged, the fix goes on."""
        if self.progress is None:
            return
        try:
            await self.progress(text)
        except Exception:  # the fix's outcome matters more than one progress line
            log.warning("progress report failed", fix=getattr(self, "id", "?"), node=self.node, text=text,
                        exc_info=True)

    # -- helpers -------------------------------------------------------------------------------
    async def run(self, command: str, *, check: bool = True) -> CommandResult:
        """Run a rendered command on the node; with `check`, a non-zero exit is `FixFailed`."""
        shell = await self.engine.node_shell(self.node)
        result = await shell.run(command, timeout=self.settings.command_timeout)
        if check and not result.ok:
            raise FixFailed(f"`{command}` exited {result.exit_status}: {result.output[:300]}")
        return result

    async def read_file(self, path: str) -> str | None:
        """The file's text on the node, or None if it does not exist."""
        p = file_path(path)
        result = await self.run(
            render("if [ -e {p} ]; then cat -- {p}; else exit {absent}; fi",
                   p=p, absent=Arg(str(ABSENT_EXIT))),
            check=False,
        )
        if result.exit_status == ABSENT_EXIT:
            return None
        if not result.ok:
            raise FixFailed(f"cannot read {path} on {self.node}: {result.output[:300]}")
        return result.stdout

    async def write_file(self, path: str, content: str) -> None:
        """Write in place (truncate + write keeps the inode: /etc/hosts may be a bind mount)."""
        command = render("printf '%s' {content} > {p}", content=file_content(content), p=file_path(path))
        await self.run(command)

    async def remove_file(self, path: str) -> None:
        await self.run(render("rm -f -- {p}", p=file_path(path)))

    async def restore_file(self, path: str, previous: str | None) -> None:
        """Put a file back as `snapshot` found it: its old text, or no file at all."""
        if previous is None:
            await self.remove_file(path)
        else:
            await self.write_file(path, previous)

    # -- the contract --------------------------------------------------------------------------
    @abstractmethod
    async def plan(self, params: dict[str, str | int]) -> Plan:
        """Validate `params` (InvalidInput before anything runs), read what is needed, describe."""

    @abstractmethod
    async def is_applied(self, plan: Plan) -> bool:
        """The change is already in place (a second apply must change nothing)."""

    @abstractmethod
    async def snapshot(self, plan: Plan) -> dict[str, Any]:
        """Record the exact state `apply` will change, for `rollback`."""

    @abstractmethod
    async def apply(self, plan: Plan, approval: Approval) -> dict[str, Any]:
        """Make the change; returns the new state (for the audit trail)."""

    async def settle(self, plan: Plan) -> list[str]:
        """Wait until the change has taken effect on the node, before the probes verify it (problems
        found, empty when the probes may run). Most changes act at once; calico-mtu waits for the
        operator's calico-node rollout to reach the node."""
        return []

    @abstractmethod
    async def check_applied(self, plan: Plan) -> list[str]:
        """The fix's own verification beyond the probes: problems found, empty when all is well."""

    @abstractmethod
    async def rollback(self, plan: Plan, before: dict[str, Any]) -> dict[str, Any]:
        """Restore `before` exactly; returns the state after the rollback."""

    def applied_message(self, plan: Plan) -> str:
        """What the operator should know once the fix is in (overridden where there is more)."""
        return f"{plan.fix} applied on {plan.node} and verified."
