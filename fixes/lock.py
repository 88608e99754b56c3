"""One fix at a time per node, across processes: a coordination.k8s.io/v1 Lease per node.

`FixRunner` takes the node's Lease (`netcheck-fix-<node>` in the bot's namespace) before it plans,
prechecks, applies and verifies, and gives it back after; the CLI and the bot (or two bot replicas
during a handover) therefore never run a fix on the same node at the same time, and a precheck
never sees a half-applied change of another process. A second apply waits up to `lock_wait`
seconds, then is told who is busy on the node.

The algorithm is the leader election's (bot/ops/leader.py; docs/faults.md#leases-as-locks), per
node: a Lease that does not exist
or has no holder is free; a held one is taken over only after it has not changed for its
leaseDurationSeconds as observed on *our* clock (its holder stopped renewing: it is gone); every
write carries the resourceVersion read, so of two racing processes one wins and one gets a 409.
The holder renews every third of the duration. Each hold has its own holder id (process owner +
a random part), so two fixes of one process on one node serialize too.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from fixes.settings import FixSettings
from probes.errors import ClusterConflict, ClusterError, ClusterNotFound, NetcheckError

log = structlog.get_logger("netcheck.fixes")

LEASE_PREFIX = "netcheck-fix-"
NAME_LIMIT = 253
"""Lease names are DNS subdomains: at most 253 characters."""
FIX_ANNOTATION = "netcheck/fix"


class LeaseStore(Protocol):
    """Lease objects as Kubernetes JSON dicts in one namespace (probes/transports/leases.py).

    Errors: `ClusterNotFound` (404), `ClusterConflict` (409), any other `ClusterError`.
    """

    async def get(self, name: str) -> dict[str, Any]: ...

    async def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def replace(self, name: str, body: dict[str, Any]) -> dict[str, Any]: ...


class FixLockError(NetcheckError):
    """The node's fix Lease could not be read or written: nothing was started."""


class FixLockBusy(FixLockError):
    """Another process holds the node's fix Lease (and kept renewing it for `lock_wait`)."""


class NoLockNamespace(FixLockError):
    """The Lease namespace does not exist: no netcheck bot is deployed there to share the node with
    (e.g. the CLI used on its own); the caller may go on with its in-process lock only."""


def lease_name(node: str) -> str:
    name = f"{LEASE_PREFIX}{node}"
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(node.encode()).hexdigest()[:10]
    return f"{name[:NAME_LIMIT - 11]}-{digest}"


def micro_time(moment: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HeldLock:
    """A taken node Lease; renewed in the background until `release()`."""

    def __init__(self, lock: ClusterFixLock, name: str, holder: str, what: str) -> None:
        self._lock, self.name, self.holder, self._what = lock, name, holder, what
        self._renewing = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        every = self._lock.settings.lock_duration / 3
        while True:
            await asyncio.sleep(every)
            try:
                lease = await self._lock.store.get(self.name)
                spec = dict(lease.get("spec") or {})
                if spec.get("holderIdentity") != self.holder:
                    log.error("fix lock lost", lease=self.name, holder=spec.get("holderIdentity"))
                    return
                spec["renewTime"] = micro_time(datetime.now(UTC))
                await self._lock.store.replace(self.name, {**lease, "spec": spec})
            except ClusterError as exc:  # the next renewal may work; the lease has 2/3 left
                log.warning("fix lock renewal failed", lease=self.name, error=str(exc))

    async def release(self) -> None:
        """Give the Lease back (empty holder) so a waiting process goes on at once; best effort."""
        self._renewing.cancel()
        await asyncio.gather(self._renewing, return_exceptions=True)
        try:
            lease = await self._lock.store.get(self.name)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.holder:
                return
            spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time(datetime.now(UTC)))
            await self._lock.store.replace(self.name, {**lease, "spec": spec})
        except ClusterError as exc:  # it expires after lock_duration anyway
            log.warning("fix lock release failed", lease=self.name, error=str(exc))


class ClusterFixLock:
    """Per-node fix Leases in one namespace, held by this process (`owner`)."""

    def __init__(
        self, store: LeaseStore, *, namespace: str, owner: str, settings: FixSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.owner = owner
        self.settings = settings or FixSettings()
        self._clock = clock
        self._observed: dict[str, tuple[dict[str, Any], float]] = {}

    async def acquire(self, node: str, what: str) -> HeldLock:
        """Take `node`'s Lease, waiting up to `lock_wait`; `what` (fix and approver) is shown to
        others. Raises FixLockBusy (still held) or FixLockError (the API failed)."""
        name = lease_name(node)
        holder = f"{self.owner}.{secrets.token_hex(3)}"
        deadline = self._clock() + self.settings.lock_wait
        while True:
            try:
                busy = await self._try(name, holder, what)
            except NoLockNamespace:
                raise
            except ClusterError as exc:
                raise FixLockError(f"cannot take the fix lock of {node} "
                                   f"(Lease {self.namespace}/{name}): {exc}") from exc
            if busy is None:
                log.info("fix lock taken", lease=name, holder=holder, fix=what)
                return HeldLock(self, name, holder, what)
            if self._clock() >= deadline:
                raise FixLockBusy(
                    f"{node} is busy: {busy} (Lease {self.namespace}/{name}); waited "
                    f"{self.settings.lock_wait:g} s, try again when it is done"
                )
            await asyncio.sleep(self.settings.lock_retry)

    def _spec(self, holder: str, previous: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time(datetime.now(UTC))
        transitions = int((previous or {}).get("leaseTransitions") or 0)
        return {"holderIdentity": holder, "leaseDurationSeconds": max(1, round(self.settings.lock_duration)),
                "acquireTime": now, "renewTime": now,
                "leaseTransitions": transitions + 1 if previous else transitions}

    def _stale(self, name: str, spec: dict[str, Any]) -> bool:
        """True once the holder's Lease has not changed for its duration, on our clock."""
        seen = self._observed.get(name)
        if seen is None or seen[0] != spec:
            self._observed[name] = (spec, self._clock())
            return False
        duration = float(spec.get("leaseDurationSeconds") or self.settings.lock_duration)
        return self._clock() >= seen[1] + duration

    async def _try(self, name: str, holder: str, what: str) -> str | None:
        """One attempt: None when taken, else who holds it."""
        annotations = {FIX_ANNOTATION: what}
        try:
            lease = await self.store.get(name)
        except ClusterNotFound:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": self.namespace, "annotations": annotations},
                    "spec": self._spec(holder, None)}
            try:
                await self.store.create(name, body)
            except ClusterConflict:
                return "another netcheck process took it first"
            except ClusterNotFound as exc:  # a missing namespace: the only 404 a create gets
                raise NoLockNamespace(f"namespace {self.namespace!r} does not exist: {exc}") from exc
            return None
        spec = dict(lease.get("spec") or {})
        current = spec.get("holderIdentity") or ""
        doing = (lease.get("metadata", {}).get("annotations") or {}).get(FIX_ANNOTATION, "a fix")
        if current and not self._stale(name, spec):
            return f"{doing} is running there (holder {current})"
        metadata = {**lease.get("metadata", {}), "annotations": {
            **(lease.get("metadata", {}).get("annotations") or {}), **annotations}}
        try:
            await self.store.replace(name, {**lease, "metadata": metadata, "spec": self._spec(holder, spec)})
        except ClusterConflict:
            return "another netcheck process took it first"
        self._observed.pop(name, None)
        return None
