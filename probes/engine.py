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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import structlog

from probes import followup
from probes.correlate import correlate
from probes.errors import TransportUnavailable, UnknownNode, UnknownProbe
from probes.facts import ClusterFacts, NodeFacts
from probes.hooks import Hooks
from probes.model import Access, Report
from probes.noderun import (  # noqa: F401  (the transport finding ids are part of the engine's API)
    HOST_POD_TRANSPORT_PROBE_ID,
    POD_TRANSPORT_PROBE_ID,
    TRANSPORT_PROBE_ID,
    Run,
)
from probes.registry import ProbeSpec, Registry, default_registry
from probes.settings import ProbeSettings
from probes.timing import Span
from probes.transports.base import ClusterAPI, NodeShell, PodExec

log = structlog.get_logger("netcheck.engine")


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

    async def retire_warm(self) -> None:
        """Hand no pod started so far over again (the next check starts new ones)."""
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
    """Extra clean-up (e.g. the cluster client's session), run last by `Engine.aclose`."""
    discover_early: Callable[[Callable[[Sequence[NodeFacts]], None]], Awaitable[ClusterFacts]] | None = None
    """Discovery that hands over the nodes the moment they are listed (the rest still being read), so
    a single-node check starts its node's SSH connection and debug pod before discovery ends."""


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

    async def retire_warm_pods(self) -> None:
        """The next checks start new debug pods: after a change only pods started later see (a fix
        of the pod network's MTU), a warm pod would measure the old state."""
        if self.transports.pods is not None:
            await self.transports.pods.retire_warm()

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
        blamed peer's relevant probes and a reference node are probed too (`probes/followup.py`),
        started the moment a finding calls for them: their findings come back in `Report.peers`, and
        this node's findings name them. The report carries the run's timings (`probes/timing.py`)."""
        specs = self._selected(probes)
        if follow_up is None:
            follow_up = probes is None and self.settings.follow_up
        run = Run(self)
        early = asyncio.get_running_loop().create_future()  # the node, the moment discovery lists it

        def nodes_known(nodes: Sequence[NodeFacts]) -> None:
            found = next((n for n in nodes if n.name == node), None)
            if found is not None and not early.done():
                early.set_result(found)
                # SSH connect and the debug pods (the node's and its peer's) start before discovery has
                # read everything else
                run.node(found).start_transports({need for spec in specs for need in spec.needs}, nodes)

        try:
            facts = await self._discover(run, nodes_known)
            node_facts = await self._node(node, facts)
            own = run.node(node_facts)
            if follow_up:
                potential_peer = self.peer_node(node_facts, facts.nodes) \
                    if any("peer-pod" in spec.needs for spec in specs) else None
                planner = followup.EarlyStart(
                    node, facts, self.registry, self.settings, self._starter(run, facts),
                    avoid=[potential_peer.name] if potential_peer is not None else [])
                run.listeners.append(planner.on_finding)
            own.ensure(specs)
            report = await own.report([spec.id for spec in specs])
            if not follow_up:
                result = correlate([report], facts, self.registry, self.settings, pick_reference=False)[0]
            else:
                result = await followup.examine(report, facts, self.registry, self.settings,
                                                self._runner(run))
        finally:
            await run.close()
        result = result.model_copy(update={"timings": run.timings()})
        self.on_report(result)
        return result

    async def _discover(self, run: Run, on_nodes: Callable[[Sequence[NodeFacts]], None] | None = None,
                        ) -> ClusterFacts:
        """One discovery per run (the bot lives for days), timed; `on_nodes` hears of the nodes as soon
        as they are listed when the transports can tell (`Transports.discover_early`)."""
        start = run.clock.now()
        try:
            async with self._facts_lock:
                early = self.transports.discover_early
                if early is not None and on_nodes is not None:
                    self._facts = await early(on_nodes)
                else:
                    self._facts = await self.transports.discover()
                facts = self._facts
        except BaseException as exc:
            run.fail_facts(exc)
            raise
        finally:
            run.spans.append(Span(what="discovery", from_s=start, to_s=run.clock.now()))
        run.set_facts(facts)
        return facts

    def _starter(self, run: Run, facts: ClusterFacts) -> followup.StartProbes:
        """Start some probes of another node in this run (early follow-ups); unknown ids are ignored."""

        def start(node: str, probe_ids: Sequence[str], why: str) -> None:
            target = facts.node(node)
            if target is None:
                return
            wanted = set(probe_ids)
            run.node(target).ensure((spec for spec in self._selected(None) if spec.id in wanted),
                                    queued_for=why)

        return start

    def _runner(self, run: Run) -> followup.RunProbes:
        """Run some probes of another node in this run (follow-ups, node diffs): what an early start
        already began is reused, not run again; unknown ids are ignored."""

        async def run_probes(node: str, probe_ids: Sequence[str], facts: ClusterFacts) -> Report:
            wanted = set(probe_ids)
            node_run = run.node(await self._node(node, facts))
            node_run.ensure(spec for spec in self._selected(None) if spec.id in wanted)
            return await node_run.report(wanted)

        return run_probes

    async def check_all(
        self, *, probes: Sequence[str] | None = None, concurrency: int | None = None
    ) -> list[Report]:
        """Check every node, then correlate: one cause graph across nodes, each node compared with a
        reference. A pod or shell that failed for one node's check fails for all (one attempt)."""
        specs = self._selected(probes)
        run = Run(self)
        try:
            facts = await self._discover(run)
            limit = asyncio.Semaphore(concurrency or self.settings.max_nodes_in_parallel)

            async def one(node: NodeFacts) -> Report:
                async with limit:
                    node_run = run.node(node)
                    node_run.ensure(specs)
                    try:
                        return await node_run.report([spec.id for spec in specs])
                    finally:
                        await node_run.close()  # its pods go now, not at the end of the sweep

            reports = list(await asyncio.gather(*(one(n) for n in facts.nodes)))
        finally:
            await run.close()
        reports = correlate(reports, facts, self.registry, self.settings)
        for report in reports:
            self.on_report(report)
        return reports

    async def compare(self, node: str, *, against: str | None = None) -> followup.Comparison:
        """Check `node` and a reference node (`against`, else picked) and diff them field by field."""
        run = Run(self)
        try:
            facts = await self._discover(run)
            await self._node(node, facts)
            if against is not None:
                await self._node(against, facts)
            every = [spec.id for spec in self._selected(None)]
            return await followup.compare(node, against, facts, self.registry, self.settings,
                                          self._runner(run), every)
        finally:
            await run.close()

    def choose_access(self, node: NodeFacts) -> Access | None:
        """SSH or host pod for this node (node_access); None for shells that do not choose."""
        shells = self.transports.shells
        if not isinstance(shells, NodeAccessShells):
            return None
        return shells.choose(node)

    @staticmethod
    def peer_node(node: NodeFacts, nodes: Sequence[NodeFacts]) -> NodeFacts | None:
        """Another Ready node for cross-node pod checks. A control-plane node first: it is the one
        every cluster has, and a broken worker (the usual suspect) would make a healthy node's
        pod-to-pod check fail for the peer's fault."""
        others = [n for n in nodes if n.ready and n.name != node.name]
        others.sort(key=lambda n: "node-role.kubernetes.io/control-plane" not in n.labels)
        return others[0] if others else None

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
