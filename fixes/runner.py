"""`FixRunner`: plan -> precheck -> apply (with an Approval) -> settle -> verify -> rollback on failure.

Called by the CLI (`netcheck fix`, bot/commands/fix.py) and the Slack approval handler. One
asyncio lock per (node, fix): a second apply of the same fix on the same node while the first
runs gets outcome `busy`, never a second change. Across processes (CLI and bot, two replicas) the
node's fix Lease (fixes/lock.py) serializes whole runs, precheck included: a second process waits
for it, or gets `busy`. Every step writes an audit event (fixes/audit.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog

from fixes.audit import audit
from fixes.base import Fix, Progress
from fixes.lock import ClusterFixLock, FixLockBusy, FixLockError, HeldLock, NoLockNamespace
from fixes.model import Approval, FixResult, Outcome, Plan
from fixes.registry import FixRegistry, default_registry
from fixes.settings import FixSettings
from probes.api import EngineAPI
from probes.errors import InvalidInput, NetcheckError
from probes.hooks import Hooks
from probes.model import Finding, Status
from probes.transports.commands import node_name

log = structlog.get_logger("netcheck.fixes")


class FixRunner:
    def __init__(
        self,
        engine: EngineAPI,
        *,
        registry: FixRegistry | None = None,
        settings: FixSettings | None = None,
        node_lock: ClusterFixLock | None = None,
    ) -> None:
        if registry is None:
            import fixes.catalog  # noqa: F401  (importing the catalog registers the fixes)
        self.engine = engine
        self.registry = registry or default_registry
        self.settings = settings or FixSettings()
        self.node_lock = node_lock
        """None: no cluster (tests, embedders): only this process's locks serialize fixes."""
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.on_result: Hooks[[str, FixResult]] = Hooks("on_result")
        """Called with the fix id and the result of every `apply` (the bot's metrics)."""

    def _fix(self, node: str, fix_id: str) -> Fix:
        node_name(node)
        if fix_id not in self.registry:
            raise InvalidInput(f"unknown fix {fix_id!r}; known: {', '.join(self.registry.ids())}")
        return self.registry[fix_id](self.engine, node, self.settings)

    async def plan(self, node: str, fix_id: str, params: dict[str, str | int]) -> Plan:
        """Validate and describe the change; raises InvalidInput (one line) on bad input."""
        fix = self._fix(node, fix_id)
        async with self.engine.node_session(node):  # before approval: read-only host access
            plan = await fix.plan(params)
        audit("plan", who=None, node=node, fix=fix_id, params=plan.params, outcome="planned",
              summary=plan.summary)
        return plan

    async def apply(
        self, node: str, fix_id: str, params: dict[str, str | int], approval: Approval,
        *, progress: Progress | None = None,
    ) -> FixResult:
        """`progress` receives a line each time the fix advances (the CLI prints them, Slack updates
        the fix's thread reply)."""
        if not isinstance(approval, Approval):
            raise TypeError("apply needs an Approval (who approved, when)")
        result = await self._apply(node, fix_id, params, approval, progress)
        self.on_result(fix_id, result)
        return result

    async def _apply(
        self, node: str, fix_id: str, params: dict[str, str | int], approval: Approval,
        progress: Progress | None,
    ) -> FixResult:
        lock = self._locks.setdefault((node, fix_id), asyncio.Lock())
        if lock.locked():
            message = f"{fix_id} is already being applied on {node}; not starting a second run"
            audit("apply", who=approval.approver, node=node, fix=fix_id, params=params,
                  outcome=Outcome.BUSY)
            return FixResult(outcome=Outcome.BUSY, message=message)
        async with lock, self._approved_session(node, fix_id, params, approval.approver) as refused:
            if refused is not None:
                return refused
            return await self._apply_locked(node, fix_id, params, approval, progress)

    @contextlib.asynccontextmanager
    async def _approved_session(
        self, node: str, fix_id: str, params: dict[str, str | int], who: str
    ) -> AsyncIterator[FixResult | None]:
        """For the block: the node's fix Lease and an approved (privileged) node session — a host
        pod for the change is created at first use and removed when the block ends. Yields None, or
        the result that says why not (busy, refused, the Lease API failed)."""
        held, refused = await self._take_node(node, fix_id, params, who)
        if refused is not None:
            yield refused
            return
        try:
            async with self.engine.node_session(node, privileged=True):
                yield None
        finally:
            if held is not None:
                await held.release()

    async def _take_node(
        self, node: str, fix_id: str, params: dict[str, str | int], who: str
    ) -> tuple[HeldLock | None, FixResult | None]:
        """The node's fix Lease, or the result that says why not (busy, or the API failed)."""
        if self.node_lock is None:
            return None, None
        try:
            self._fix(node, fix_id)  # node name and fix id valid before they name a Lease
        except InvalidInput as exc:
            audit("plan", who=who, node=node, fix=fix_id, params=params, outcome=Outcome.REFUSED,
                  error=str(exc))
            return None, FixResult(outcome=Outcome.REFUSED, message=str(exc))
        try:
            return await self.node_lock.acquire(node, f"{fix_id} approved by {who}"), None
        except NoLockNamespace as exc:  # no bot deployed to share the node with: this process's lock
            log.warning("fix lock unavailable: fixes serialized in this process only", node=node,
                        error=str(exc))
            return None, None
        except FixLockBusy as exc:
            audit("apply", who=who, node=node, fix=fix_id, params=params, outcome=Outcome.BUSY,
                  error=str(exc))
            return None, FixResult(outcome=Outcome.BUSY, message=str(exc))
        except FixLockError as exc:
            audit("apply", who=who, node=node, fix=fix_id, params=params, outcome=Outcome.FAILED,
                  error=str(exc))
            return None, FixResult(outcome=Outcome.FAILED, message=f"{exc}; nothing was changed")

    async def _apply_locked(
        self, node: str, fix_id: str, params: dict[str, str | int], approval: Approval,
        progress: Progress | None = None,
    ) -> FixResult:
        who = approval.approver
        try:
            fix = self._fix(node, fix_id)
            fix.progress = progress
            plan = await fix.plan(params)
        except InvalidInput as exc:
            audit("plan", who=who, node=node, fix=fix_id, params=params, outcome=Outcome.REFUSED,
                  error=str(exc))
            return FixResult(outcome=Outcome.REFUSED, message=str(exc))
        except NetcheckError as exc:  # SSH or API unavailable while planning: nothing was changed
            audit("plan", who=who, node=node, fix=fix_id, params=params, outcome=Outcome.FAILED,
                  error=str(exc))
            return FixResult(outcome=Outcome.FAILED, message=f"cannot plan {fix_id} on {node}: {exc}")
        audit("plan", who=who, node=node, fix=fix_id, params=plan.params, outcome="planned",
              summary=plan.summary)
        audit("approval", who=who, node=node, fix=fix_id, params=plan.params, outcome="approved",
              approved_at=approval.approved_at.isoformat(), requested_by=approval.requested_by)

        try:
            done = await self._precheck(fix, plan)
            before = None if done else await fix.snapshot(plan)
        except NetcheckError as exc:
            audit("apply", who=who, node=node, fix=fix_id, params=plan.params, outcome=Outcome.FAILED,
                  error=str(exc))
            return FixResult(outcome=Outcome.FAILED, plan=plan,
                             message=f"{fix_id} on {node}: precheck failed, nothing was changed: {exc}")
        if done is not None or before is None:
            audit("apply", who=who, node=node, fix=fix_id, params=plan.params,
                  outcome=Outcome.NOTHING_TO_DO, reason=done)
            return FixResult(outcome=Outcome.NOTHING_TO_DO, message=str(done), plan=plan)
        try:
            after = await fix.apply(plan, approval)
        except NetcheckError as exc:
            audit("apply", who=who, node=node, fix=fix_id, params=plan.params, before=before,
                  outcome=Outcome.FAILED, error=str(exc))
            return await self._rollback(fix, plan, before, who, [f"apply failed: {exc}"], [])
        audit("apply", who=who, node=node, fix=fix_id, params=plan.params, before=before, after=after,
              outcome=Outcome.APPLIED)

        try:
            problems = await fix.settle(plan)  # e.g. the calico-node rollout reaching the node
        except NetcheckError as exc:
            problems = [f"the change did not take effect: {exc}"]
        findings: list[Finding] = []
        if not problems:  # probes run only once the change can be seen, else they measure the old state
            await fix.say(f"verifying: {', '.join(fix.verify_probes)}")
            try:
                findings, problems = await self._verify(fix, plan)
            except NetcheckError as exc:
                findings, problems = [], [f"verification could not run: {exc}"]
        audit("verify", who=who, node=node, fix=fix_id, params=plan.params, before=before, after=after,
              outcome="failed" if problems else "ok", problems=problems,
              findings={f.probe: f.status.value for f in findings})
        if problems:
            return await self._rollback(fix, plan, before, who, problems, findings)
        return FixResult(outcome=Outcome.APPLIED, message=fix.applied_message(plan), plan=plan,
                         before=before, after=after, verification=findings)

    def _with_dependencies(self, probe_ids: list[str]) -> list[str]:
        """The probes plus those they wait for (`after=`): return-path judges host-api and pod-api
        from the same run, so they must run together."""
        registry = self.engine.registry
        wanted: list[str] = []
        pending = list(probe_ids)
        while pending:
            probe_id = pending.pop(0)
            if probe_id in wanted:
                continue
            wanted.append(probe_id)
            after = registry[probe_id].after if probe_id in registry else ()
            pending += [dep for dep in after if dep not in wanted]
        return wanted

    async def _precheck(self, fix: Fix, plan: Plan) -> str | None:
        """A reason there is nothing to do, or None. The addressed probe ok, or the change already
        in place (a second apply), both mean: change nothing."""
        finding = None
        await self.engine.facts(refresh=True)  # judge the cluster as it is now, not a cached view
        if self.engine.enabled((fix.addresses,)):  # the probe may be disabled
            report = await self.engine.check(plan.node, probes=self._with_dependencies([fix.addresses]))
            finding = report.finding(fix.addresses)
        if finding is not None and finding.status == Status.OK:
            return f"probe {fix.addresses} is already ok on {plan.node} ({finding.summary}); nothing changed"
        if await fix.is_applied(plan):
            return f"{plan.fix} is already in place on {plan.node}; nothing changed"
        return None

    async def _verify(self, fix: Fix, plan: Plan) -> tuple[list[Finding], list[str]]:
        available = self.engine.enabled(fix.verify_probes)
        problems: list[str] = []
        findings: list[Finding] = []
        await self.engine.facts(refresh=True)  # the fix may have changed the Installation/pools
        if fix.seen_by_new_pods_only:
            await self.engine.retire_warm_pods()
        if available:
            report = await self.engine.check(plan.node, probes=self._with_dependencies(available))
        for probe_id in available:
            finding = report.finding(probe_id)
            if finding is None:
                problems.append(f"probe {probe_id} did not run")
                continue
            findings.append(finding)
            if finding.status != Status.OK:
                problems.append(f"probe {probe_id} is {finding.status.value}: {finding.summary}")
        try:
            problems += await fix.check_applied(plan)
        except NetcheckError as exc:
            problems.append(f"could not check the change: {exc}")
        return findings, problems

    async def _rollback(
        self, fix: Fix, plan: Plan, before: dict[str, Any], who: str, problems: list[str],
        findings: list[Finding],
    ) -> FixResult:
        why = "; ".join(problems)
        await fix.say(f"rolling back: {why}")
        try:
            restored = await fix.rollback(plan, before)
        except NetcheckError as exc:
            audit("rollback", who=who, node=plan.node, fix=plan.fix, params=plan.params, before=before,
                  outcome=Outcome.FAILED, error=str(exc), problems=problems)
            return FixResult(
                outcome=Outcome.FAILED, plan=plan, before=before, verification=findings,
                problems=problems,
                message=f"{plan.fix} on {plan.node} failed ({why}) and the rollback failed too: {exc}",
            )
        audit("rollback", who=who, node=plan.node, fix=plan.fix, params=plan.params, before=before,
              after=restored, outcome=Outcome.ROLLED_BACK, problems=problems)
        return FixResult(
            outcome=Outcome.ROLLED_BACK, plan=plan, before=before, after=restored,
            verification=findings, problems=problems,
            message=f"{plan.fix} on {plan.node} did not verify ({why}); rolled back to the previous state",
        )

    async def rollback(self, node: str, fix_id: str, params: dict[str, str | int], before: dict[str, Any],
                       approval: Approval, *, progress: Progress | None = None) -> FixResult:
        """Undo an applied fix from its recorded `before` state (FixResult.before)."""
        lock = self._locks.setdefault((node, fix_id), asyncio.Lock())
        if lock.locked():
            return FixResult(outcome=Outcome.BUSY, message=f"{fix_id} is busy on {node}")
        async with lock, self._approved_session(node, fix_id, params, approval.approver) as refused:
            if refused is not None:
                return refused
            try:
                fix = self._fix(node, fix_id)
                fix.progress = progress
                plan = await fix.plan(params)
            except InvalidInput as exc:
                return FixResult(outcome=Outcome.REFUSED, message=str(exc))
            return await self._rollback(fix, plan, before, approval.approver, ["rollback requested"], [])
