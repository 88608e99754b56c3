"""The probe registry: `@probe(...)` records a `ProbeSpec`, and checks it at import time.

A probe is an `async def fn(ctx: ProbeContext) -> ProbeResult` in `probes/catalog/<id>.py`;
its docstring's first line is its catalog line (docs/probes.md and the CLI help list it).

The registry is also the one place that says what explains what: `explains=` lists the findings a
probe's failure explains (its consequences), on the same node or, with `across=True`, on another
node whose measurement crossed to this one. `probes/graph.py` reads it to build a run's cause graph.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from probes.model import Finding, Layer, ProbeResult, Status

if TYPE_CHECKING:
    from probes.context import ProbeContext

Need = Literal["host", "pod", "cluster", "peer-pod"]
"""host/pod/cluster: required (the probe is skipped without it). peer-pod: wanted, never required —
the engine starts a debug pod on another Ready node and passes its IP as `ctx.peer_pod_ip`."""
ProbeFn = Callable[["ProbeContext"], Awaitable[ProbeResult]]

_ID = re.compile(r"^[a-z][a-z0-9-]*$")


class RegistryError(Exception):
    """A probe definition is wrong; raised at import so a bad probe stops start-up."""


Condition = Callable[[Finding, Mapping[str, Finding]], bool]
"""(the symptom's finding, the cause node's findings by probe id) -> does the cause explain it?"""


def cause_fails(symptom: Finding, findings: Mapping[str, Finding], cause: str) -> bool:
    """The cause probe's own status is `fail` (a warn of it explains nothing)."""
    found = findings.get(cause)
    return found is not None and found.status is Status.FAIL


@dataclass(frozen=True)
class Explains:
    """One edge of the cause graph: while this probe reports a problem, `symptom` failing is its
    consequence."""

    symptom: str
    when: Condition | None = None
    """Extra condition; None: always."""
    across: bool = False
    """Also explains `symptom` on another node whose measurement crossed to this node (its `peer`)."""
    only_when_failing: bool = False
    """Only a `fail` of the cause explains (its `warn` is advice, not a broken path)."""

    def applies(self, cause: str, symptom: Finding, findings: Mapping[str, Finding]) -> bool:
        if self.only_when_failing and not cause_fails(symptom, findings, cause):
            return False
        return self.when is None or self.when(symptom, findings)


@dataclass(frozen=True)
class ProbeSpec:
    id: str
    layer: Layer
    fn: ProbeFn
    needs: frozenset[Need] = frozenset()
    after: tuple[str, ...] = ()
    timeout: float | None = None
    fixes: tuple[str, ...] = ()
    """Ids of the fixes this probe may propose; the engine refuses a proposal not listed here and the
    fix registry refuses a fix addressing a probe that never proposes it (fixes/registry.py)."""
    explains: tuple[Explains, ...] = ()

    def explanation_of(self, symptom: str, *, across: bool = False) -> Explains | None:
        """This probe's edge toward `symptom` (on another node: only an `across` edge)."""
        return next((e for e in self.explains if e.symptom == symptom and (e.across or not across)), None)

    @property
    def title(self) -> str:
        """First line of the probe's docstring: its one-line catalog description."""
        return (inspect.getdoc(self.fn) or self.id).splitlines()[0]

    @property
    def description(self) -> str:
        return inspect.getdoc(self.fn) or ""


@dataclass
class Registry:
    specs: dict[str, ProbeSpec] = field(default_factory=dict)

    def add(self, spec: ProbeSpec) -> None:
        if not _ID.match(spec.id):
            raise RegistryError(f"probe id {spec.id!r} must match {_ID.pattern}")
        if spec.id in self.specs:
            raise RegistryError(f"probe id {spec.id!r} is registered twice")
        if not inspect.iscoroutinefunction(spec.fn):
            raise RegistryError(f"probe {spec.id!r} must be an async function")
        unknown_needs = set(spec.needs) - {"host", "pod", "cluster", "peer-pod"}
        if unknown_needs:
            raise RegistryError(f"probe {spec.id!r} needs unknown transports {sorted(unknown_needs)}")
        bad_fixes = [f for f in spec.fixes if not _ID.match(f)]
        if bad_fixes:
            raise RegistryError(f"probe {spec.id!r} declares invalid fix ids {bad_fixes}")
        self.specs[spec.id] = spec

    def validate(self) -> None:
        """Every `after=` and `explains=` resolves and neither has cycles (call once all probes are
        imported)."""
        for spec in self.specs.values():
            for dep in spec.after:
                if dep not in self.specs:
                    raise RegistryError(f"probe {spec.id!r} runs after unknown probe {dep!r}")
            for edge in spec.explains:
                if edge.symptom not in self.specs:
                    raise RegistryError(f"probe {spec.id!r} explains unknown probe {edge.symptom!r}")
                if edge.symptom == spec.id and not edge.across:
                    raise RegistryError(f"probe {spec.id!r} explains itself")
        self._acyclic(lambda pid: self.specs[pid].after, "probe dependency cycle")
        # a same-node explanation cycle would make two findings each other's cause
        # (an `across` edge to itself links two nodes' findings of one probe: not a cycle on a node)
        self._acyclic(lambda pid: tuple(e.symptom for e in self.specs[pid].explains if e.symptom != pid),
                      "probe explains cycle")

    def _acyclic(self, edges: Callable[[str], tuple[str, ...]], what: str) -> None:
        visiting: set[str] = set()
        done: set[str] = set()

        def visit(pid: str, path: tuple[str, ...]) -> None:
            if pid in done:
                return
            if pid in visiting:
                raise RegistryError(f"{what}: {' -> '.join((*path, pid))}")
            visiting.add(pid)
            for dep in edges(pid):
                visit(dep, (*path, pid))
            visiting.discard(pid)
            done.add(pid)

        for pid in self.specs:
            visit(pid, ())

    def __iter__(self) -> Iterator[ProbeSpec]:
        return iter(self.specs.values())

    def __getitem__(self, probe_id: str) -> ProbeSpec:
        return self.specs[probe_id]

    def __contains__(self, probe_id: object) -> bool:
        return probe_id in self.specs

    def ids(self) -> list[str]:
        return list(self.specs)


default_registry = Registry()


def probe(
    *,
    id: str,
    layer: Layer,
    needs: set[Need] | frozenset[Need] = frozenset(),
    after: tuple[str, ...] | list[str] = (),
    timeout: float | None = None,
    fixes: tuple[str, ...] | list[str] = (),
    explains: tuple[str | Explains, ...] | list[str | Explains] = (),
    registry: Registry | None = None,
) -> Callable[[ProbeFn], ProbeFn]:
    """Register a probe; returns the function unchanged. `fixes`: the fix ids it may propose. A plain
    id in `explains` is an unconditional same-node edge."""
    edges = tuple(Explains(e) if isinstance(e, str) else e for e in explains)

    def register(fn: ProbeFn) -> ProbeFn:
        (registry or default_registry).add(
            ProbeSpec(id=id, layer=layer, fn=fn, needs=frozenset(needs), after=tuple(after),
                      timeout=timeout, fixes=tuple(fixes), explains=edges)
        )
        return fn

    return register
