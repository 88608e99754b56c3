"""Leader election through a coordination.k8s.io/v1 Lease, so two replicas never both answer.

`netcheck serve` runs one `LeaderElector` per process and serves Slack and watches nodes only
while `is_leader`. The algorithm is client-go's: a candidate takes the Lease when it does not exist,
is released (empty holderIdentity) or has not changed for leaseDurationSeconds as observed on *our*
clock (no trust in other replicas' clocks); every write carries the resourceVersion read, so two
candidates racing get one success and one 409 (`ClusterConflict`), which counts as "not leader".
The leader renews every `retry_period` and steps down when it could not renew for `renew_deadline`
(< lease_duration, so it stops before anyone else may take over). `release()` empties the holder on
shutdown so the standby takes over at its next retry instead of waiting a full lease duration.

A Lease this replica can never get without an operator's change — 403 (no RBAC for Leases in that
namespace) or 404 on create (no such namespace, or no Lease API) — is logged ONCE at error level with
what to grant, and kept in `blocked` for readiness to report; other failures (API unreachable) are
logged when they start or change, not at every retry. One replica may run without any of this
(`ops.leader_election: false`).

The Kubernetes client is only imported in probes/transports/; this module talks to a `LeaseStore`
(probes/transports/leases.py is the real one; tests use an in-memory one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from bot.ops.settings import OpsSettings
from probes.errors import ClusterConflict, ClusterError, ClusterForbidden, ClusterNotFound

log = structlog.get_logger(__name__)
Callback = Callable[[], Awaitable[None]]


class LeaseStore(Protocol):
    """Lease objects as Kubernetes JSON dicts (camelCase), in one namespace.

    Errors: `ClusterNotFound` (404), `ClusterConflict` (409: exists / stale resourceVersion),
    any other `ClusterError` for everything else.
    """

    async def get(self, name: str) -> dict[str, Any]: ...

    async def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def replace(self, name: str, body: dict[str, Any]) -> dict[str, Any]: ...


def micro_time(moment: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        *,
        settings: OpsSettings | None = None,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.identity = identity
        self.settings = settings or OpsSettings()
        self.name = self.settings.lease_name
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._clock = clock
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0
        self._leading = asyncio.Event()
        self._last_error: str | None = None
        self.blocked: str | None = None
        """Why this replica cannot take the Lease until RBAC or the namespace is fixed; else None."""

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def _spec(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time(datetime.now(UTC))
        previous = previous or {}
        taking_over = previous.get("holderIdentity") != self.identity
        transitions = int(previous.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.settings.lease_duration)),
            "acquireTime": now if taking_over else previous.get("acquireTime", now),
            "renewTime": now,
            "leaseTransitions": transitions + 1 if taking_over and previous else transitions,
        }

    def _held_by_other(self, spec: dict[str, Any]) -> bool:
        """True while another holder's Lease is still valid, judged by when *we* saw it change."""
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed_at = self._clock()
        holder = spec.get("holderIdentity") or ""
        if not holder or holder == self.identity:
            return False
        duration = float(spec.get("leaseDurationSeconds") or self.settings.lease_duration)
        return self._clock() < self._observed_at + duration

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this process holds the Lease afterwards."""
        try:
            lease = await self.store.get(self.name)
        except ClusterNotFound:
            body: dict[str, Any] = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.settings.lease_namespace},
                "spec": self._spec(None),
            }
            try:
                await self.store.create(self.name, body)
            except ClusterConflict:
                return False  # another candidate created it first
            return True
        spec: dict[str, Any] = dict(lease.get("spec") or {})
        if self._held_by_other(spec):
            return False
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": lease.get("metadata", {}).get("namespace", self.settings.lease_namespace),
                "resourceVersion": lease.get("metadata", {}).get("resourceVersion"),
            },
            "spec": self._spec(spec),
        }
        try:
            updated = await self.store.replace(self.name, body)
        except ClusterConflict:
            return False  # someone wrote between our read and our write
        self._observed_spec = dict(updated.get("spec") or body["spec"])
        self._observed_at = self._clock()
        return True

    def _blocking_reason(self, exc: ClusterError) -> str | None:
        """What an operator must change, for the errors retrying cannot cure; None for the others."""
        where = f"{self.settings.lease_namespace}/{self.name}"
        single = "or set ops.leader_election: false to run a single replica without a Lease"
        if isinstance(exc, ClusterForbidden):
            return (f"cannot use the leader Lease {where}: {exc}. Grant the ServiceAccount a Role in "
                    f"namespace {self.settings.lease_namespace} with leases create, and get, update on "
                    f"the Lease {self.name} (the shipped Role netcheck has them), {single}")
        if isinstance(exc, ClusterNotFound):  # get said "no Lease", then create found no namespace
            return (f"cannot create the leader Lease {where}: {exc}. Create namespace "
                    f"{self.settings.lease_namespace} or set ops.lease_namespace, {single}")
        return None

    def _report(self, exc: ClusterError) -> None:
        message = str(exc)
        if message == self._last_error:
            log.debug("lease_attempt_failed", identity=self.identity, error=message)
            return
        self._last_error = message
        self.blocked = self._blocking_reason(exc)
        if self.blocked is not None:
            log.error("leader_election_blocked", identity=self.identity, lease=self.name,
                      namespace=self.settings.lease_namespace, reason=self.blocked)
        else:
            log.warning("lease_attempt_failed", identity=self.identity, error=message)

    async def _attempt(self) -> bool:
        try:
            held = await self.try_acquire_or_renew()
        except ClusterError as exc:
            self._report(exc)
            return False
        if self._last_error is not None:
            log.info("lease_reachable", identity=self.identity, lease=self.name, after=self._last_error)
            self._last_error = self.blocked = None
        return held

    async def _become(self, leading: bool, *, released: bool = False) -> None:
        if leading == self.is_leader:
            return
        if leading:
            self._leading.set()
            log.info("leader_elected", identity=self.identity, lease=self.name)
            if self._on_started:
                await self._on_started()
        else:
            self._leading.clear()
            if released:  # a shutdown giving the Lease up, not a failure
                log.info("leadership_released", identity=self.identity, lease=self.name)
            else:
                log.warning("leadership_lost", identity=self.identity, lease=self.name)
            if self._on_stopped:
                await self._on_stopped()

    async def run(self) -> None:
        """Acquire, then renew, until cancelled; steps down when renewal fails past the deadline."""
        while True:
            held = await self._attempt()
            now = self._clock()
            if held:
                self._last_renew = now
                await self._become(True)
            elif self.is_leader and now - self._last_renew >= self.settings.renew_deadline:
                await self._become(False)
            await asyncio.sleep(self.settings.retry_period)

    async def release(self) -> None:
        """Give the Lease up (empty holder) so a standby takes over at once; best effort."""
        was_leader = self.is_leader
        await self._become(False, released=True)
        if not was_leader:
            return
        try:
            lease = await self.store.get(self.name)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time(datetime.now(UTC)))
            lease = {**lease, "spec": spec}
            await self.store.replace(self.name, lease)
            log.info("lease_released", identity=self.identity, lease=self.name)
        except ClusterError as exc:
            log.warning("lease_release_failed", identity=self.identity, error=str(exc))
