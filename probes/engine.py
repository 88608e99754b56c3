"""The probe engine: runs the registered probes of one node (or every node) and builds a `Report`.

Callers: the CLI (`check`, `diff`, `fix`), the Slack bot and the fixes (precheck/verify), all through
`probes.api.EngineAPI`; `bot.wiring.build_engine(config)` builds it. The engine is
transport-agnostic: it receives a `Transports` (real SSH/kubernetes ones from `bot.wiring`, fakes in
tests) and never imports asyncssh/kubernetes.

`run_one()` is the single funnel every probe goes through: one timeout, and every outcome
(result, ProbeSkip, timeout, exception, missing transport) becomes exactly one `Finding`.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import structlog

from probes import followup
from probes.attempts import TransportAttempts
from probes.context import ProbeContext
from probes.correlate import correlate
from probes.errors import ProbeSkip, TransportUnavailable, UnknownNode, UnknownProbe
from probes.facts import ClusterFacts, NodeFacts
from probes.hooks import Hooks
from probes.model import Access, AccessPath, Finding, Layer, Report, Status
from probes.registry import ProbeSpec, Registry, default_registry
from probes.settings import ProbeSettings
from probes.transports.base import ClusterAPI, NodeShell, PodExec

log = structlog.get_logger("netcheck.engine")

TRANSPORT_PROBE_ID = "ssh"
"""Id of the finding that reports why the node's shell could not be had (host key, auth, reach)."""
POD_TRANSPORT_PROBE_ID = "debug-pod"
"""Id of the finding that reports why the debug pod could not be had."""
HOST_POD_TRANSPORT_PROBE_ID = "host-pod"
"""Id of the finding that reports why the node's host pod (node_access pod/auto) could not be had."""


class HostShells(Protocol):
    """Pooled node shells (transports/ssh.py): one connection per node, reused."""

    async def get(self, node: NodeFacts) -> NodeShell:
        """The node's shell; raises `TransportUnavailable` (HostKeyRejected, HostUnreachable)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class NodeAccessShells(HostShells, Protocol):
    """HostShells that choose SSH or a host pod per node (transports/access.py, `node_access`)."""

    def choose(self, node: NodeFacts) -> Access: ...

    async def get(self, node: NodeFacts, *, privileged: bool = False) -> NodeShell: ...

    async def release(self, node: str, *, privileged: bool = False) -> None: ...


@dataclass
class _NodeSession:
    """Host access of one fix on one node (Engine.node_session), acquired on first use."""

    node: str
    privileged: bool
    shell: NodeShell | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_node_session: ContextVar[_NodeSession | None] = ContextVar("netcheck_node_session", default=None)
"""The fix session of the running task: only code inside it sees its (privileged) shell."""


class DebugPodPool(Protocol):
    """Debug pods pinned to nodes (transports/pod.py's `DebugPods`)."""

    async def get(self, node: NodeFacts) -> PodExec:
        """Start (or reuse) the node's debug pod; raises `PodUnavailable`."""
        ...

    async def release(self, node: str) -> None:
        """Delete the node's debug pod, if any."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class Transports:
    """Everything the engine talks through; one instance shared by all checks (pools, pods)."""

    cluster: ClusterAPI
    discover: Callable[[], Awaitable[ClusterFacts]]
    shells: HostShells | None = None
    pods: DebugPodPool | None = None
    close: Callable[[], Awaitable[None]] | None = None
    """Extra clean-up (e.g. the cluster client's thread pool), run last by `Engine.aclose`."""


class _Lazy:
    """A transport acquisition started once per check; probes await it, failures become a reason."""

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

    @property
    def missing(self) -> str:
        return self._missing

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


class Engine:
    def __init__(
        self,
        *,
        transports: Transports,
        settings: ProbeSettings,
        registry: Registry = default_registry,
    ) -> None:
        self.transports = transports
        self.cluster: ClusterAPI = transports.cluster
        self.settings = settings
        self.registry = registry
        self._facts: ClusterFacts | None = None
        self._facts_lock = asyncio.Lock()
        self._access: dict[str, Access] = {}
        """The host path each node's latest check chose (node_access), for its skip messages."""
        self.on_report: Hooks[[Report]] = Hooks("on_report")
        """Called with every report `check` and `check_all` return (the bot's metrics)."""

    # -- cluster knowledge ---------------------------------------------------------------------

    async def facts(self, *, refresh: bool = False) -> ClusterFacts:
        async with self._facts_lock:
            if self._facts is None or refresh:
                self._facts = await self.transports.discover()
            return self._facts

    async def node_names(self) -> list[str]:
        return [n.name for n in (await self.facts()).nodes]

    async def resolve_node(self, name: str) -> NodeFacts:
        """The node called `name`, else `UnknownNode` naming the closest names. Looked up in the
        facts already discovered, then in fresh ones (the node may have joined since)."""
        facts = await self.facts()
        if facts.node(name) is None:
            facts = await self.facts(refresh=True)
        return await self._node(name, facts)

    def enabled(self, probe_ids: Sequence[str]) -> list[str]:
        """Those of `probe_ids` this engine can run (registered, not disabled), in that order."""
        return [p for p in probe_ids if p in self.registry and p not in self.settings.disabled]

    async def _node(self, name: str, facts: ClusterFacts) -> NodeFacts:
        node = facts.node(name)
        if node is None:
            names = [n.name for n in facts.nodes]
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
            known = ", ".join(names) or "none"
            hint = f"did you mean {', '.join(close)}?" if close else f"known nodes: {known}"
            raise UnknownNode(f"unknown node {name!r}: {hint}")
        return node

    async def node_shell(self, node: str) -> NodeShell:
        """The node's shell (for fixes); raises `TransportUnavailable` with the reason. Inside
        `node_session(node, ...)` the session's shell, acquired once; elsewhere the pooled one."""
        shells = self.transports.shells
        if shells is None:
            raise TransportUnavailable("no node access configured (SSH or host pod)")
        node_facts = await self._node(node, await self.facts())
        session = _node_session.get()
        if session is None or session.node != node:
            return await shells.get(node_facts)
        async with session.lock:
            if session.shell is None:
                if isinstance(shells, NodeAccessShells):
                    session.shell = await shells.get(node_facts, privileged=session.privileged)
                else:
                    session.shell = await shells.get(node_facts)
            return session.shell

    @contextlib.asynccontextmanager
    async def node_session(self, node: str, *, privileged: bool = False) -> AsyncIterator[None]:
        """Host access for one fix on `node` for the block: `node_shell(node)` inside it acquires the
        shell once (lazily) and the block's end releases it. `privileged` is for an approved fix only:
        on the host pod path it is a privileged pod, created at first use after approval and deleted
        when the block (apply, verification, rollback) ends; read-only probes never get it."""
        session = _NodeSession(node, privileged)
        token = _node_session.set(session)
        try:
            yield
        finally:
            _node_session.reset(token)
            shells = self.transports.shells
            if session.shell is not None and isinstance(shells, NodeAccessShells):
                await shells.release(node, privileged=privileged)

    # -- checks --------------------------------------------------------------------------------

    def _selected(self, probes: Sequence[str] | None) -> list[ProbeSpec]:
        if probes is not None:
            unknown = [p for p in probes if p not in self.registry]
            if unknown:
                close = difflib.get_close_matches(unknown[0], self.registry.ids(), n=3, cutoff=0.4)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise UnknownProbe(f"unknown probe {unknown[0]!r}{hint}")
        wanted = set(probes) if probes is not None else None
        return [
            spec
            for spec in self.registry
            if spec.id not in self.settings.disabled and (wanted is None or spec.id in wanted)
        ]

    async def check(
        self, node: str, *, probes: Sequence[str] | None = None, follow_up: bool | None = None
    ) -> Report:
        """Check one node. With problems found (and `follow_up`, by default for a full check), the
        blamed peer's relevant probes and a reference node are probed too (`probes/followup.py`):
        their findings come back in `Report.peers`, and this node's findings name them."""
        specs = self._selected(probes)
        facts = await self.facts(refresh=True)  # one discovery per run: the bot lives for days
        node_facts = await self._node(node, facts)
        attempts = TransportAttempts()  # shared with the follow-ups: one attempt per node in this run
        report = await self._check(node_facts, facts, specs, attempts)
        if follow_up is None:
            follow_up = probes is None and self.settings.follow_up
        if not follow_up:
            report = correlate([report], facts, self.registry, self.settings, pick_reference=False)[0]
        else:
            report = await followup.examine(report, facts, self.registry, self.settings,
                                            self._runner(attempts))
        self.on_report(report)
        return report

    def _runner(self, attempts: TransportAttempts) -> followup.RunProbes:
        """Run some probes of another node in this run (follow-ups, node diffs); unknown ids are ignored."""

        async def run(node: str, probe_ids: Sequence[str], facts: ClusterFacts) -> Report:
            wanted = set(probe_ids)
            specs = [spec for spec in self._selected(None) if spec.id in wanted]
            return await self._check(await self._node(node, facts), facts, specs, attempts)

        return run

    async def check_all(
        self, *, probes: Sequence[str] | None = None, concurrency: int | None = None
    ) -> list[Report]:
        """Check every node, then correlate: one cause graph across nodes, each node compared with a
        reference."""
        specs = self._selected(probes)
        facts = await self.facts(refresh=True)
        limit = asyncio.Semaphore(concurrency or self.settings.max_nodes_in_parallel)
        attempts = TransportAttempts()  # a pod or shell that failed for one node's check fails for all

        async def one(node: NodeFacts) -> Report:
            async with limit:
                return await self._check(node, facts, specs, attempts)

        reports = correlate(list(await asyncio.gather(*(one(n) for n in facts.nodes))), facts,
                            self.registry, self.settings)
        for report in reports:
            self.on_report(report)
        return reports

    async def compare(self, node: str, *, against: str | None = None) -> followup.Comparison:
        """Check `node` and a reference node (`against`, else picked) and diff them field by field."""
        facts = await self.facts(refresh=True)
        await self._node(node, facts)
        if against is not None:
            await self._node(against, facts)
        every = [spec.id for spec in self._selected(None)]
        return await followup.compare(node, against, facts, self.registry, self.settings,
                                      self._runner(TransportAttempts()), every)

    async def _check(
        self, node: NodeFacts, facts: ClusterFacts, specs: list[ProbeSpec],
        attempts: TransportAttempts | None = None,
    ) -> Report:
        attempts = attempts or TransportAttempts()
        started_at = datetime.now(UTC)
        t0 = time.monotonic()
        node_log = log.bind(node=node.name)
        needs = {need for spec in specs for need in spec.needs}
        shells, pods = self.transports.shells, self.transports.pods
        access = self._choose_access(node)
        # SSH connect (or host pod start) and debug-pod start begin together; each probe awaits only
        # what it needs. Through `attempts`: one attempt per node and transport in this run (a failure
        # is final).
        host = _Lazy(
            (lambda: attempts.acquire("host", node, shells.get))
            if shells is not None and "host" in needs else None,
            "no SSH configured" if access is None else "no node access configured",
        )
        pod = _Lazy(
            (lambda: attempts.acquire("pod", node, pods.get))
            if pods is not None and "pod" in needs else None,
            "no debug pod configured",
        )
        peer_node = self._peer_node(node, facts) if "peer-pod" in needs else None
        peer = _Lazy(
            (lambda: attempts.acquire("pod", peer_node, pods.get))
            if pods is not None and peer_node is not None else None,
            "no debug pod on another Ready node",
        )
        futures: dict[str, asyncio.Future[Finding]] = {
            spec.id: asyncio.get_running_loop().create_future() for spec in specs
        }
        try:
            findings = await asyncio.gather(
                *(
                    self._run_and_publish(spec, node, facts, host, pod, peer, futures, node_log)
                    for spec in specs
                )
            )
        finally:
            for lazy in (host, pod, peer):
                lazy.cancel()
            if isinstance(shells, NodeAccessShells) and host.acquired():
                try:  # a host pod goes with its last user, as the debug pod does
                    await shells.release(node.name)
                except Exception:
                    node_log.exception("host pod release failed")
            for used, pod_node in ((pod, node.name), (peer, peer_node.name if peer_node else None)):
                if pods is None or not used.acquired() or pod_node is None:
                    continue  # only a successful get() holds a reference to release
                try:
                    await pods.release(pod_node)
                except Exception:  # clean-up must not hide the report; aclose retries
                    node_log.exception("debug pod release failed", pod_node=pod_node)
        findings = list(findings)
        if peer_node is not None and peer.acquired():
            # the measurement crossed to that node: the cause graph may find the cause there
            crossing = {spec.id for spec in specs if "peer-pod" in spec.needs}
            findings = [f.model_copy(update={"peer": peer_node.name}) if f.probe in crossing else f
                        for f in findings]
        findings.extend(self._transport_findings(host, pod, access))
        return Report(  # as the probes saw it; `correlate` attributes causes once the run is complete
            node=node.name,
            started_at=started_at,
            duration_s=time.monotonic() - t0,
            findings=findings,
            access=access,
        )

    def _choose_access(self, node: NodeFacts) -> Access | None:
        """SSH or host pod for this node (node_access); None for shells that do not choose."""
        shells = self.transports.shells
        if not isinstance(shells, NodeAccessShells):
            return None
        access = shells.choose(node)
        self._access[node.name] = access
        return access

    def _host_what(self, node: str) -> str:
        access = self._access.get(node)
        return "host pod on" if access is not None and access.path == AccessPath.HOST_POD else "SSH to"

    @staticmethod
    def _peer_node(node: NodeFacts, facts: ClusterFacts) -> NodeFacts | None:
        """Another Ready node for cross-node pod checks. A control-plane node first: it is the one
        every cluster has, and a broken worker (the usual suspect) would make a healthy node's
        pod-to-pod check fail for the peer's fault."""
        others = [n for n in facts.nodes if n.ready and n.name != node.name]
        others.sort(key=lambda n: "node-role.kubernetes.io/control-plane" not in n.labels)
        return others[0] if others else None

    @staticmethod
    def _transport_findings(host: _Lazy, pod: _Lazy, access: Access | None = None) -> list[Finding]:
        """Make an unusable SSH connection, host pod or debug pod visible as its own `error` finding."""
        extra = []
        host_id, host_what = TRANSPORT_PROBE_ID, "SSH to the node"
        if access is not None and access.path == AccessPath.HOST_POD:
            host_id, host_what = HOST_POD_TRANSPORT_PROBE_ID, "host pod"
        for probe_id, lazy, layer, what in (
            (host_id, host, Layer.PHYSICAL, f"{host_what} ({access.reason})" if access else host_what),
            (POD_TRANSPORT_PROBE_ID, pod, Layer.POD_APP, "debug pod"),
        ):
            reason = lazy.failure()
            if reason is not None:
                extra.append(
                    Finding(probe=probe_id, layer=layer, status=Status.ERROR,
                            summary=f"{what} unavailable: {reason}")
                )
        return extra

    async def _run_and_publish(
        self,
        spec: ProbeSpec,
        node: NodeFacts,
        facts: ClusterFacts,
        host: _Lazy,
        pod: _Lazy,
        peer: _Lazy,
        futures: dict[str, asyncio.Future[Finding]],
        node_log: Any,
    ) -> Finding:
        future = futures[spec.id]
        started = time.monotonic()
        try:
            finding = await self.run_one(spec, node, facts, host, pod, peer, futures, node_log)
            finding = finding.model_copy(update={"duration_s": round(time.monotonic() - started, 3)})
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: dependants see it, nobody logs it twice
            raise
        future.set_result(finding)
        return finding

    async def run_one(
        self,
        spec: ProbeSpec,
        node: NodeFacts,
        facts: ClusterFacts,
        host: _Lazy,
        pod: _Lazy,
        peer: _Lazy,
        futures: dict[str, asyncio.Future[Finding]],
        node_log: Any,
    ) -> Finding:
        """Run one probe; every outcome except cancellation becomes one Finding."""
        probe_log = node_log.bind(probe=spec.id)
        timeout = spec.timeout or self.settings.timeout_for(spec.id)

        def finding(status: Status, summary: str, **extra: Any) -> Finding:
            return Finding(probe=spec.id, layer=spec.layer, status=status, summary=summary, **extra)

        transport_wait = self.settings.transport_timeout
        # A declared need is awaited and required. A transport another probe of this check started is
        # handed over only if it is already there: a probe never waits for what it did not ask for
        # (host-only probes finish at the host's pace while a debug pod is still starting, or never does).
        host_shell, host_reason = await host.get(transport_wait) if "host" in spec.needs else host.ready()
        if "host" in spec.needs and host_shell is None:
            probe_log.info("probe skipped", reason=host_reason)
            return finding(Status.SKIP, f"no {self._host_what(node.name)} {node.name}: {host_reason}")
        pod_exec, pod_reason = await pod.get(transport_wait) if "pod" in spec.needs else pod.ready()
        if "pod" in spec.needs and pod_exec is None:
            probe_log.info("probe skipped", reason=pod_reason)
            return finding(Status.SKIP, f"no debug pod on {node.name}: {pod_reason}")
        peer_pod = None
        if "peer-pod" in spec.needs and peer.started:
            peer_pod, peer_reason = await peer.get(transport_wait)
            if peer_pod is None:
                probe_log.info("no peer pod", reason=peer_reason)
        ctx = ProbeContext(
            node=node,
            facts=facts,
            cluster=self.cluster,
            settings=self.settings,
            log=probe_log,
            host_shell=host_shell,
            host_unavailable=host_reason,
            pod_exec=pod_exec,
            pod_unavailable=pod_reason,
            results={dep: futures[dep] for dep in spec.after if dep in futures},
            peer_pod_ip=peer_pod.ip if peer_pod is not None else None,
        )
        try:
            # contextvars too, so transport log lines (ssh, pod) of this probe carry node and probe
            with structlog.contextvars.bound_contextvars(node=node.name, probe=spec.id):
                async with asyncio.timeout(timeout):
                    result = await spec.fn(ctx)
        except TimeoutError:
            probe_log.warning("probe timed out", timeout_s=timeout)
            return finding(Status.ERROR, f"timed out after {timeout:g} s")
        except ProbeSkip as exc:
            return finding(Status.SKIP, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            probe_log.exception("probe raised")
            return finding(Status.ERROR, f"probe error: {type(exc).__name__}: {exc}")
        probe_log.info("probe done", status=result.status.value)
        if result.fix is not None and result.fix.id not in spec.fixes:
            # a proposal the probe never declared would be a button no fix registry check covers
            probe_log.error("undeclared fix proposal", fix=result.fix.id)
            return finding(Status.ERROR, f"probe error: proposed fix {result.fix.id!r} it does not declare")
        return finding(
            result.status,
            result.summary,
            evidence=result.evidence,
            proof=result.proof,
            remediation=result.remediation,
            fix=result.fix,
            observed=result.observed,
        )

    async def aclose(self) -> None:
        """Close SSH pools, delete debug pods, release the cluster client."""
        for closer in (
            self.transports.pods.aclose if self.transports.pods else None,
            self.transports.shells.aclose if self.transports.shells else None,
            self.transports.close,
        ):
            if closer is None:
                continue
            try:
                await closer()
            except Exception:
                log.exception("transport close failed")
