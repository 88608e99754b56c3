"""One run of the engine across nodes: each node's probes, started on demand and sharing transports.

Used by `probes/engine.py` (`check`, `check_all`, `compare`) and, through the engine's runner, by the
follow-ups (`probes/followup.py`). A `NodeRun` is one node within a run: its transports (the node's
shell, its debug pod, a peer's debug pod) start once, when the first probe that needs them is asked
for, and its probes can be asked for at any time (`ensure`) — the node's own probes first, then,
while they still run, a reference node's or a blamed peer's probes as soon as a finding calls for
them. Every probe goes through `run_one`, the single funnel: one timeout, and every outcome (result,
ProbeSkip, timeout, exception, missing transport) becomes exactly one `Finding`, stamped with its
timing (probes/timing.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from probes import timing
from probes.attempts import TransportAttempts
from probes.context import ProbeContext
from probes.errors import ProbeSkip, TransportUnavailable
from probes.facts import ClusterFacts, NodeFacts
from probes.model import AccessPath, Finding, Layer, Report, Status
from probes.registry import Need, ProbeSpec

if TYPE_CHECKING:
    from probes.engine import Engine

log = structlog.get_logger("netcheck.engine")

TRANSPORT_PROBE_ID = "ssh"
"""Id of the finding that reports why the node's shell could not be had (host key, auth, reach)."""
POD_TRANSPORT_PROBE_ID = "debug-pod"
"""Id of the finding that reports why the debug pod could not be had."""
HOST_POD_TRANSPORT_PROBE_ID = "host-pod"
"""Id of the finding that reports why the node's host pod (node_access pod/auto) could not be had."""

FindingListener = Callable[[str, Finding], None]
"""Called with (node, finding) the moment a finding of the run is known (follow-ups start early)."""


class Lazy:
    """A transport acquisition started once per node and run; probes await it, failures become a reason."""

    def __init__(self, factory: Callable[[], Awaitable[Any]] | None, missing: str) -> None:
        self._task: asyncio.Task[Any] | None = asyncio.ensure_future(factory()) if factory else None
        if self._task is not None:
            # a failure nobody awaited (e.g. the peer pod when the own pod already failed) is reported
            # through `failure()` or the probes' skip reasons, not as "exception never retrieved"
            self._task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._missing = missing

    async def get(self, timeout: float) -> tuple[Any | None, str | None]:
        """Wait for the acquisition. The transport bounds its own attempt (ssh.connect_timeout,
        debug_pod.start_timeout); `timeout` is only the engine's safety net above those."""
        if self._task is None:
            return None, self._missing
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._task), None
        except TimeoutError:
            return None, f"not ready after {timeout:g} s"
        except TransportUnavailable as exc:
            return None, str(exc)

    def ready(self) -> tuple[Any | None, str | None]:
        """The transport if it is already there, without waiting (for probes that did not ask for it)."""
        if self._task is None:
            return None, self._missing
        if not self._task.done():
            return None, "not ready yet"
        if self._task.cancelled():
            return None, "cancelled"
        exc = self._task.exception()
        return (None, str(exc)) if exc is not None else (self._task.result(), None)

    @property
    def started(self) -> bool:
        return self._task is not None

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def acquired(self) -> bool:
        task = self._task
        return task is not None and task.done() and not task.cancelled() and task.exception() is None

    def failure(self) -> str | None:
        """The reason acquisition failed, once it is done (None if it succeeded or is pending)."""
        if self._task is None or not self._task.done() or self._task.cancelled():
            return None
        exc = self._task.exception()
        return str(exc) if exc is not None else None


class Run:
    """One engine run: its clock, the discovered facts (awaited by probes, so transports can start
    before discovery ends), one transport attempt per node and kind, and a `NodeRun` per node."""

    def __init__(self, engine: Engine, clock: timing.Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or timing.Clock()
        self.attempts = TransportAttempts()
        self.nodes: dict[str, NodeRun] = {}
        self.spans: list[timing.Span] = []
        self.listeners: list[FindingListener] = []
        self._facts: asyncio.Future[ClusterFacts] = asyncio.get_running_loop().create_future()

    def set_facts(self, facts: ClusterFacts) -> None:
        if not self._facts.done():
            self._facts.set_result(facts)

    def fail_facts(self, exc: BaseException) -> None:
        if not self._facts.done():
            self._facts.set_exception(exc)
            self._facts.exception()  # retrieved: the caller raises it; waiting probes are cancelled

    async def facts(self) -> ClusterFacts:
        return await asyncio.shield(self._facts)

    def node(self, node: NodeFacts) -> NodeRun:
        run = self.nodes.get(node.name)
        if run is None:
            run = self.nodes[node.name] = NodeRun(self, node)
        return run

    def timings(self) -> timing.RunTimings:
        return timing.RunTimings(started_unix=self.clock.started_unix, spans=sorted(
            self.spans, key=lambda s: s.from_s))

    def published(self, node: str, finding: Finding) -> None:
        for listener in list(self.listeners):
            try:
                listener(node, finding)
            except Exception:  # a follow-up that cannot start must not break this node's check
                log.exception("finding listener failed", node=node, probe=finding.probe)

    async def close(self) -> None:
        """Cancel what nobody waits for any more (speculative follow-ups) and release every transport."""
        for run in list(self.nodes.values()):
            await run.close()


class NodeRun:
    """One node within a run: transports started once, probes added on demand (`ensure`)."""

    def __init__(self, run: Run, node: NodeFacts) -> None:
        self.run = run
        self.engine = run.engine
        self.node = node
        self.access = self.engine.choose_access(node)
        self.host = Lazy(None, self._host_missing())
        self.pod = Lazy(None, "no debug pod configured")
        self.peer = Lazy(None, "no debug pod on another Ready node")
        self.peer_node: NodeFacts | None = None
        self.futures: dict[str, asyncio.Future[Finding]] = {}
        self.tasks: dict[str, asyncio.Task[Finding]] = {}
        self.started_at = datetime.now(UTC)
        self.t0 = time.monotonic()
        self.log = log.bind(node=node.name)
        self._closed = False

    # -- transports ------------------------------------------------------------------------------

    def start_transports(self, needs: Iterable[str], nodes: Sequence[NodeFacts] | None = None) -> None:
        """Begin acquiring what `needs` names, once: SSH connect (or host pod start) and debug-pod
        start run together; each probe later awaits only what it needs. With the cluster's `nodes`,
        a peer's debug pod too when `needs` has "peer-pod" (else the first probe needing it starts it)."""
        needs = set(needs)
        transports = self.engine.transports
        shells, pods = transports.shells, transports.pods
        attempts = self.run.attempts
        node = self.node
        # the pods first: their create requests are on the wire before the SSH side imports asyncssh
        # and reads known_hosts, which holds the event loop for a moment
        if "pod" in needs and not self.pod.started:
            self.pod = Lazy(
                self._timed("debug-pod", node.name, lambda: attempts.acquire("pod", node, pods.get))
                if pods is not None else None,
                "no debug pod configured",
            )
        if "peer-pod" in needs and nodes is not None:
            self.start_peer(nodes)
        if "host" in needs and not self.host.started:
            via_pod = self.access is not None and self.access.path == AccessPath.HOST_POD
            what = "host-pod" if via_pod else "ssh"
            self.host = Lazy(
                self._timed(what, node.name, lambda: attempts.acquire("host", node, shells.get))
                if shells is not None else None,
                self._host_missing(),
            )

    def _host_missing(self) -> str:
        return "no SSH configured" if self.access is None else "no node access configured"

    def start_peer(self, nodes: Sequence[NodeFacts]) -> None:
        if self.peer.started:
            return
        pods, attempts = self.engine.transports.pods, self.run.attempts
        peer_node = self.peer_node = self.engine.peer_node(self.node, nodes)
        self.peer = Lazy(
            self._timed("debug-pod", peer_node.name, lambda: attempts.acquire("pod", peer_node, pods.get))
            if pods is not None and peer_node is not None else None,
            "no debug pod on another Ready node",
        )

    def _timed(self, what: str, node: str, get: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def timed() -> Any:
            start = self.run.clock.now()
            ok, reused = False, None
            try:
                got = await get()
                ok, reused = True, getattr(got, "reused", None)
                return got
            finally:
                self.run.spans.append(timing.Span(what=what, node=node, from_s=start,
                                                  to_s=self.run.clock.now(), ok=ok, reused=reused))
        return timed

    # -- probes ------------------------------------------------------------------------------------

    def ensure(self, specs: Iterable[ProbeSpec], *, queued_for: str | None = None) -> None:
        """Start the probes not yet started on this node (all futures first: `after=` sees its peers);
        `queued_for` names the finding that called for them (follow-ups), for the timings."""
        if self._closed:
            raise RuntimeError(f"the run of {self.node.name} is closed")
        new = [spec for spec in specs if spec.id not in self.futures]
        if not new:
            return
        needs = {need for spec in new for need in spec.needs}
        self.start_transports(needs)
        loop = asyncio.get_running_loop()
        queued = self.run.clock.now()
        for spec in new:
            self.futures[spec.id] = loop.create_future()
        for spec in new:
            self.tasks[spec.id] = loop.create_task(self._run_and_publish(spec, queued, queued_for),
                                                   name=f"probe {spec.id} on {self.node.name}")

    async def report(self, probe_ids: Iterable[str]) -> Report:
        """The findings of `probe_ids` (already `ensure`d), in registry order, as the probes saw them."""
        wanted = set(probe_ids)
        ids = [pid for pid in self.engine.registry.ids() if pid in wanted and pid in self.futures]
        findings = list(await asyncio.gather(*(self.futures[pid] for pid in ids)))
        needs = {need for pid in ids for need in self.engine.registry[pid].needs}
        findings.extend(self._transport_findings(needs))
        spans = [f.timing for f in findings if f.timing is not None]
        end = max((t.finished_s for t in spans), default=0.0)
        duration = end - min((t.queued_s for t in spans), default=0.0)
        return Report(  # as the probes saw it; `correlate` attributes causes once the run is complete
            node=self.node.name,
            started_at=self.started_at,
            duration_s=max(0.0, duration),
            findings=findings,
            access=self.access,
        )

    def _transport_findings(self, needs: set[Need]) -> list[Finding]:
        """Make an unusable SSH connection, host pod or debug pod visible as its own `error` finding."""
        extra = []
        access = self.access
        host_id, host_what = TRANSPORT_PROBE_ID, "SSH to the node"
        if access is not None and access.path == AccessPath.HOST_POD:
            host_id, host_what = HOST_POD_TRANSPORT_PROBE_ID, "host pod"
        for probe_id, lazy, layer, what, need in (
            (host_id, self.host, Layer.PHYSICAL, f"{host_what} ({access.reason})" if access else host_what,
             "host"),
            (POD_TRANSPORT_PROBE_ID, self.pod, Layer.POD_APP, "debug pod", "pod"),
        ):
            reason = lazy.failure()
            if reason is not None and need in needs:
                extra.append(Finding(probe=probe_id, layer=layer, status=Status.ERROR,
                                     summary=f"{what} unavailable: {reason}"))
        return extra

    async def _run_and_publish(self, spec: ProbeSpec, queued: float, queued_for: str | None) -> Finding:
        future = self.futures[spec.id]
        waits = timing.WaitLog(self.run.clock)
        token = timing.current.set(waits)
        started = time.monotonic()
        try:
            finding, began = await self.run_one(spec)
            finished = self.run.clock.now()
            update: dict[str, Any] = {
                "duration_s": round(time.monotonic() - started, 3),
                "timing": timing.FindingTiming(
                    queued_s=queued, started_s=began if began is not None else finished,
                    finished_s=finished, waited=waits.waits, queued_for=queued_for),
            }
            if "peer-pod" in spec.needs and self.peer_node is not None and self.peer.acquired():
                update["peer"] = self.peer_node.name  # the measurement crossed to that node
            finding = finding.model_copy(update=update)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: dependants see it, nobody logs it twice
            raise
        finally:
            timing.current.reset(token)
        future.set_result(finding)
        self.run.published(self.node.name, finding)
        return finding

    async def run_one(self, spec: ProbeSpec) -> tuple[Finding, float | None]:
        """Run one probe; every outcome except cancellation becomes one Finding (and when it began)."""
        engine, node = self.engine, self.node
        probe_log = self.log.bind(probe=spec.id)
        settings = engine.settings
        timeout = spec.timeout or settings.timeout_for(spec.id)

        def finding(status: Status, summary: str, **extra: Any) -> Finding:
            return Finding(probe=spec.id, layer=spec.layer, status=status, summary=summary, **extra)

        with timing.waiting("discovery"):
            facts = await self.run.facts()
        if "peer-pod" in spec.needs:
            self.start_peer(facts.nodes)
        transport_wait = settings.transport_timeout
        # A declared need is awaited and required. A transport another probe of this node started is
        # handed over only if it is already there: a probe never waits for what it did not ask for
        # (host-only probes finish at the host's pace while a debug pod is still starting, or never does).
        host_what = "host pod" if self.access is not None and self.access.path == AccessPath.HOST_POD \
            else "SSH connection"
        if "host" in spec.needs:
            with timing.waiting(host_what):
                host_shell, host_reason = await self.host.get(transport_wait)
        else:
            host_shell, host_reason = self.host.ready()
        if "host" in spec.needs and host_shell is None:
            probe_log.info("probe skipped", reason=host_reason)
            host_to = "host pod on" if host_what == "host pod" else "SSH to"
            return finding(Status.SKIP, f"no {host_to} {node.name}: {host_reason}"), None
        if "pod" in spec.needs:
            with timing.waiting("debug pod"):
                pod_exec, pod_reason = await self.pod.get(transport_wait)
        else:
            pod_exec, pod_reason = self.pod.ready()
        if "pod" in spec.needs and pod_exec is None:
            probe_log.info("probe skipped", reason=pod_reason)
            return finding(Status.SKIP, f"no debug pod on {node.name}: {pod_reason}"), None
        peer_pod = None
        if "peer-pod" in spec.needs and self.peer.started:
            peer_name = self.peer_node.name if self.peer_node is not None else "another node"
            with timing.waiting(f"debug pod on {peer_name}"):
                peer_pod, peer_reason = await self.peer.get(transport_wait)
            if peer_pod is None:
                probe_log.info("no peer pod", reason=peer_reason)
        ctx = ProbeContext(
            node=node,
            facts=facts,
            cluster=engine.cluster,
            settings=settings,
            log=probe_log,
            host_shell=host_shell,
            host_unavailable=host_reason,
            pod_exec=pod_exec,
            pod_unavailable=pod_reason,
            results={dep: self.futures[dep] for dep in spec.after if dep in self.futures},
            peer_pod_ip=peer_pod.ip if peer_pod is not None else None,
        )
        began = self.run.clock.now()
        try:
            # contextvars too, so transport log lines (ssh, pod) of this probe carry node and probe
            with structlog.contextvars.bound_contextvars(node=node.name, probe=spec.id):
                async with asyncio.timeout(timeout):
                    result = await spec.fn(ctx)
        except TimeoutError:
            probe_log.warning("probe timed out", timeout_s=timeout)
            return finding(Status.ERROR, f"timed out after {timeout:g} s"), began
        except ProbeSkip as exc:
            return finding(Status.SKIP, str(exc)), began
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            probe_log.exception("probe raised")
            return finding(Status.ERROR, f"probe error: {type(exc).__name__}: {exc}"), began
        probe_log.info("probe done", status=result.status.value)
        if result.fix is not None and result.fix.id not in spec.fixes:
            # a proposal the probe never declared would be a button no fix registry check covers
            probe_log.error("undeclared fix proposal", fix=result.fix.id)
            return finding(Status.ERROR,
                           f"probe error: proposed fix {result.fix.id!r} it does not declare"), began
        return finding(
            result.status,
            result.summary,
            evidence=result.evidence,
            proof=result.proof,
            remediation=result.remediation,
            fix=result.fix,
            observed=result.observed,
        ), began

    # -- the end -------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Cancel probes nobody awaited (speculative follow-ups), then release this node's transports."""
        if self._closed:
            return
        self._closed = True
        pending = [task for task in self.tasks.values() if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for lazy in (self.host, self.pod, self.peer):
            lazy.cancel()
        shells, pods = self.engine.transports.shells, self.engine.transports.pods
        from probes.engine import NodeAccessShells  # the protocols live with the engine

        if isinstance(shells, NodeAccessShells) and self.host.acquired():
            try:  # a host pod goes with its last user, as the debug pod does
                await shells.release(self.node.name)
            except Exception:
                self.log.exception("host pod release failed")
        peer_name = self.peer_node.name if self.peer_node is not None else None
        for used, pod_node in ((self.pod, self.node.name), (self.peer, peer_name)):
            if pods is None or not used.acquired() or pod_node is None:
                continue  # only a successful get() holds a reference to release
            try:
                await pods.release(pod_node)
            except Exception:  # clean-up must not hide the report; aclose retries
                self.log.exception("debug pod release failed", pod_node=pod_node)
