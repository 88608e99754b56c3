"""Engine unit tests with a private registry of tiny probes and the scripted fakes.

Covers: probes of a node run concurrently (overlap proven by events); `after=` waits only for its
dependency, and a dependency that is not selected resolves to None; timeout -> error "timed out
after N s"; exception -> error; ProbeSkip -> skip; missing/failed transport -> skip with the reason
plus a visible `ssh` error finding; transports another probe started are handed to probes that did
not declare them only when ready (never waited for); one transport attempt per node per run (a
failed pod or shell is remembered for the run, also across a sweep's nodes); `peer-pod` gives the
IP of a debug pod on another Ready node; disabled probes; unknown node names the closest names;
unknown probe id; root-cause attribution from the registry's `explains=`; check_all's concurrency
bound; debug pod release; per-probe durations; a fix proposal the probe did not declare is an error
finding (declarations are what the fix registry checks).
"""

from __future__ import annotations

import asyncio

import pytest
import structlog.testing

from probes.engine import Engine, Transports, UnknownNode, UnknownProbe
from probes.errors import HostKeyRejected, PodUnavailable, ProbeSkip
from probes.facts import ClusterFacts, NodeFacts
from probes.model import Layer, Status, fail, ok
from probes.registry import Registry, probe
from probes.settings import ProbeSettings
from tests.fakes import FakeCluster, FakePod, FakeShell

NODES = [
    NodeFacts(name=n, internal_ip=f"10.0.0.{i}", ready=n != "worker1",
              labels={"node-role.kubernetes.io/control-plane": ""} if n == "master" else {})
    for i, n in enumerate(["master", "worker1", "worker2"])
]


class Shells:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.opened: list[str] = []

    async def get(self, node: NodeFacts) -> FakeShell:
        self.opened.append(node.name)
        if self.error:
            raise self.error
        return FakeShell(node=node.name)

    async def aclose(self) -> None:
        pass


class Pods:
    def __init__(self) -> None:
        self.released: list[str] = []
        self.closed = False

    async def get(self, node: NodeFacts) -> FakePod:
        return FakePod(node=node.name, name=f"debug-{node.name}", ip=f"10.244.{NODES.index(node)}.9")

    async def release(self, node: str) -> None:
        self.released.append(node)

    async def aclose(self) -> None:
        self.closed = True


def make_engine(registry: Registry, *, shells=None, pods=None, **settings) -> Engine:
    settings.setdefault("follow_up", False)  # peer and reference follow-ups: tests/probes/test_followup.py

    async def discover() -> ClusterFacts:
        return ClusterFacts(api_service_ip="10.96.0.1", nodes=NODES)

    transports = Transports(cluster=FakeCluster(), discover=discover, shells=shells, pods=pods)
    return Engine(transports=transports, settings=ProbeSettings(**settings), registry=registry)


async def test_probes_of_a_node_run_concurrently() -> None:
    reg = Registry()
    a_started, b_started = asyncio.Event(), asyncio.Event()

    @probe(id="a", layer=Layer.POD_APP, registry=reg)
    async def a(ctx):
        a_started.set()
        await asyncio.wait_for(b_started.wait(), 2)  # only finishes if b runs at the same time
        return ok("a")

    @probe(id="b", layer=Layer.POD_APP, registry=reg)
    async def b(ctx):
        b_started.set()
        await asyncio.wait_for(a_started.wait(), 2)
        return ok("b")

    report = await make_engine(reg).check("worker1")
    assert [(f.probe, f.status) for f in report.findings] == [("a", Status.OK), ("b", Status.OK)]


async def test_after_waits_for_its_dependency_only() -> None:
    reg = Registry()
    order: list[str] = []
    slow_release = asyncio.Event()

    @probe(id="base", layer=Layer.HOST_ROUTE, registry=reg)
    async def base(ctx):
        order.append("base")
        return fail("base broken")

    @probe(id="slow", layer=Layer.HOST_ROUTE, registry=reg)
    async def slow(ctx):
        await asyncio.wait_for(slow_release.wait(), 2)
        order.append("slow")
        return ok("slow")

    @probe(id="dependent", layer=Layer.POD_APP, after=("base",), registry=reg)
    async def dependent(ctx):
        seen = await ctx.result_of("base")
        order.append("dependent")
        slow_release.set()  # `slow` can only finish after `dependent`: dependent did not wait for it
        return ok(f"base was {seen.status}")

    report = await make_engine(reg).check("worker1")
    assert order == ["base", "dependent", "slow"]
    assert report.finding("dependent").summary == "base was fail"


async def test_unselected_dependency_resolves_to_none() -> None:
    reg = Registry()

    @probe(id="base", layer=Layer.HOST_ROUTE, registry=reg)
    async def base(ctx):
        raise AssertionError("must not run")

    @probe(id="dependent", layer=Layer.POD_APP, after=("base",), registry=reg)
    async def dependent(ctx):
        return ok(f"base={await ctx.result_of('base')}")

    engine = make_engine(reg, disabled=["base"])
    report = await engine.check("worker1")
    assert [f.probe for f in report.findings] == ["dependent"]
    assert report.finding("dependent").summary == "base=None"
    report = await make_engine(reg).check("worker1", probes=["dependent"])
    assert report.finding("dependent").summary == "base=None"


async def test_timeout_exception_and_skip_become_findings() -> None:
    reg = Registry()

    @probe(id="hangs", layer=Layer.POD_APP, timeout=0.05, registry=reg)
    async def hangs(ctx):
        await asyncio.sleep(10)
        return ok("never")

    @probe(id="raises", layer=Layer.POD_APP, registry=reg)
    async def raises(ctx):
        raise RuntimeError("boom")

    @probe(id="skips", layer=Layer.POD_APP, registry=reg)
    async def skips(ctx):
        raise ProbeSkip("no Calico Installation")

    @probe(id="fine", layer=Layer.POD_APP, registry=reg)
    async def fine(ctx):
        return ok("fine")

    report = await make_engine(reg).check("worker2")
    assert report.finding("hangs").status is Status.ERROR
    assert report.finding("hangs").summary == "timed out after 0.05 s"
    assert report.finding("raises").status is Status.ERROR
    assert "RuntimeError: boom" in report.finding("raises").summary
    assert (report.finding("skips").status, report.finding("skips").summary) == (
        Status.SKIP, "no Calico Installation")
    assert report.finding("fine").status is Status.OK
    assert report.verdict is Status.ERROR


async def test_settings_timeout_applies_when_probe_has_none() -> None:
    reg = Registry()

    @probe(id="hangs", layer=Layer.POD_APP, registry=reg)
    async def hangs(ctx):
        await asyncio.sleep(10)
        return ok("never")

    report = await make_engine(reg, timeouts={"hangs": 0.02}).check("worker2")
    assert report.finding("hangs").summary == "timed out after 0.02 s"


async def test_host_key_rejection_skips_host_probes_and_is_reported() -> None:
    reg = Registry()
    reason = "host key for 192.168.1.105 does not match known_hosts /etc/netcheck/known_hosts"

    @probe(id="on-host", layer=Layer.HOST_ROUTE, needs={"host"}, registry=reg)
    async def on_host(ctx):
        raise AssertionError("must not run")

    @probe(id="in-pod", layer=Layer.POD_APP, needs={"pod"}, registry=reg)
    async def in_pod(ctx):
        return ok(f"pod {ctx.pod.node}")

    shells, pods = Shells(HostKeyRejected(reason)), Pods()
    report = await make_engine(reg, shells=shells, pods=pods).check("worker2")
    assert report.finding("on-host").status is Status.SKIP
    assert report.finding("on-host").summary == f"no SSH to worker2: {reason}"
    assert report.finding("in-pod").summary == "pod worker2"
    ssh = report.finding("ssh")
    assert ssh is not None and ssh.status is Status.ERROR and reason in ssh.summary
    assert pods.released == ["worker2"]


async def test_no_transport_configured_skips_with_reason() -> None:
    reg = Registry()

    @probe(id="in-pod", layer=Layer.POD_APP, needs={"pod"}, registry=reg)
    async def in_pod(ctx):
        raise AssertionError("must not run")

    report = await make_engine(reg).check("worker2")
    assert report.finding("in-pod").status is Status.SKIP
    assert "no debug pod configured" in report.finding("in-pod").summary


async def test_unknown_node_names_closest() -> None:
    engine = make_engine(Registry())
    with pytest.raises(UnknownNode, match=r"unknown node 'worker3': did you mean worker2, worker1\?"):
        await engine.check("worker3")


async def test_unknown_probe_id() -> None:
    reg = Registry()

    @probe(id="host-api", layer=Layer.POD_APP, registry=reg)
    async def host_api(ctx):
        return ok("x")

    with pytest.raises(UnknownProbe, match="did you mean host-api"):
        await make_engine(reg).check("worker1", probes=["host-apj"])


async def test_check_all_respects_concurrency_bound() -> None:
    reg = Registry()
    running = 0
    peak = 0

    @probe(id="p", layer=Layer.POD_APP, registry=reg)
    async def p(ctx):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return ok(ctx.node.name)

    reports = await make_engine(reg, max_nodes_in_parallel=2).check_all()
    assert [r.node for r in reports] == ["master", "worker1", "worker2"]
    assert peak == 2
    reports = await make_engine(reg).check_all(concurrency=1)
    assert peak == 2 and len(reports) == 3


async def test_engine_attaches_causes_and_keeps_registry_order() -> None:
    reg = Registry()

    @probe(id="pod-api", layer=Layer.POD_APP, registry=reg)
    async def pod_api(ctx):
        return fail("pod cannot reach API")

    @probe(id="host-api", layer=Layer.PHYSICAL, explains=("pod-api",), registry=reg)
    async def host_api(ctx):
        return fail("host cannot reach API")

    report = await make_engine(reg).check("worker2")
    assert [f.probe for f in report.findings] == ["pod-api", "host-api"]
    assert [f.probe for f in report.causes] == ["host-api"]
    assert report.finding("pod-api").caused_by == "host-api"


async def test_aclose_closes_pods() -> None:
    pods = Pods()
    engine = make_engine(Registry(), pods=pods)
    await engine.aclose()
    assert pods.closed


async def test_started_transports_are_shared_with_undeclared_probes_when_ready() -> None:
    reg = Registry()

    @probe(id="needs-host", layer=Layer.HOST_ROUTE, needs={"host"}, registry=reg)
    async def needs_host(ctx):
        return ok(ctx.host.node)

    @probe(id="opportunist", layer=Layer.ROUTER, after=("needs-host",), registry=reg)
    async def opportunist(ctx):
        await ctx.result_of("needs-host")  # the shell is there by now: handed over
        return ok(f"host={ctx.host_shell is not None} pod={ctx.pod_exec is not None} ({ctx.pod_unavailable})")

    report = await make_engine(reg, shells=Shells(), pods=Pods()).check("worker2")
    assert report.finding("opportunist").summary == "host=True pod=False (no debug pod configured)"


class GatedPods(Pods):
    """A debug pod that starts only when `gate` opens, and then fails (e.g. held Pending)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.attempts: list[str] = []

    async def get(self, node: NodeFacts) -> FakePod:
        self.attempts.append(node.name)
        await self.gate.wait()
        raise PodUnavailable(f"debug pod on {node.name} not Running after 20 s (ContainerCreating)")


async def test_host_probes_never_wait_for_a_debug_pod_they_did_not_ask_for() -> None:
    reg = Registry()
    pods = GatedPods()

    @probe(id="on-host", layer=Layer.HOST_ROUTE, needs={"host"}, registry=reg)
    async def on_host(ctx):
        return ok(f"host ok; pod: {ctx.pod_unavailable}")

    @probe(id="in-pod", layer=Layer.POD_APP, needs={"pod"}, registry=reg)
    async def in_pod(ctx):
        raise AssertionError("the pod never starts: must be skipped")

    @probe(id="opener", layer=Layer.ROUTER, after=("on-host",), registry=reg)
    async def opener(ctx):
        # the pod can only give up once on-host is done: a host probe waiting for it would hang
        await ctx.result_of("on-host")
        pods.gate.set()
        return ok("gate opened")

    report = await make_engine(reg, shells=Shells(), pods=pods, transport_timeout=30).check("worker2")
    assert report.finding("on-host").summary == "host ok; pod: not ready yet"
    assert report.finding("in-pod").summary == (
        "no debug pod on worker2: debug pod on worker2 not Running after 20 s (ContainerCreating)")
    assert report.finding("debug-pod").status is Status.ERROR
    assert report.duration_s < 30  # ended by the pod's own failure, not by the engine's safety cap


async def test_a_pod_that_failed_is_not_tried_again_in_the_same_run() -> None:
    reg = Registry()

    @probe(id="cross", layer=Layer.ROUTER, needs={"pod", "peer-pod"}, registry=reg)
    async def cross(ctx):
        return ok(f"peer {ctx.peer_pod_ip}")

    class MasterPodFails(Pods):
        def __init__(self) -> None:
            super().__init__()
            self.attempts: list[str] = []

        async def get(self, node: NodeFacts) -> FakePod:
            self.attempts.append(node.name)
            if node.name == "master":
                await asyncio.sleep(0.05)  # still starting when the other checks ask for it
                raise PodUnavailable("debug pod on master not Running after 20 s (ContainerCreating)")
            return await super().get(node)

    pods = MasterPodFails()
    reports = {r.node: r for r in await make_engine(reg, pods=pods).check_all()}
    # master's pod is its own check's and the peer of worker1's and worker2's: one attempt serves all
    assert pods.attempts.count("master") == 1
    assert "not Running after 20 s" in reports["master"].finding("debug-pod").summary
    assert reports["worker2"].finding("cross").summary == "peer None"
    await make_engine(reg, pods=pods).check("worker2")  # a new run tries again
    assert pods.attempts.count("master") == 2


async def test_a_failed_ssh_connection_is_remembered_for_the_run_only() -> None:
    reg = Registry()

    @probe(id="on-host", layer=Layer.HOST_ROUTE, needs={"host"}, registry=reg)
    async def on_host(ctx):
        raise AssertionError("must not run")

    shells = Shells(HostKeyRejected("SSH to 10.0.0.3:22 timed out after 10 s"))
    engine = make_engine(reg, shells=shells)
    with structlog.testing.capture_logs() as logs:
        reports = await engine.check_all()
    assert sorted(shells.opened) == ["master", "worker1", "worker2"]  # one attempt per node
    assert all("timed out after 10 s" in r.finding("ssh").summary for r in reports)
    said = [e for e in logs if e["event"] == "transport unavailable"]
    assert sorted(e["node"] for e in said) == ["master", "worker1", "worker2"]
    await engine.check("worker2")
    assert shells.opened.count("worker2") == 2


async def test_peer_pod_on_another_ready_node() -> None:
    reg = Registry()

    @probe(id="cross", layer=Layer.ROUTER, needs={"peer-pod"}, registry=reg)
    async def cross(ctx):
        return ok(f"peer {ctx.peer_pod_ip}")

    pods = Pods()
    report = await make_engine(reg, pods=pods).check("worker2")
    # the control-plane node is preferred (and worker1 is not Ready anyway)
    assert report.finding("cross").summary == "peer 10.244.0.9"
    assert pods.released == ["master"]
    report = await make_engine(reg, pods=pods).check("master")
    assert report.finding("cross").summary == "peer 10.244.2.9"  # worker2, the only other Ready node
    report = await make_engine(reg).check("worker2")
    assert report.finding("cross").summary == "peer None"


async def test_probe_log_lines_carry_node_and_probe() -> None:
    reg = Registry()

    @probe(id="talks", layer=Layer.POD_APP, registry=reg)
    async def talks(ctx):
        ctx.log.info("looking")
        return ok("done")

    with structlog.testing.capture_logs() as logs:
        await make_engine(reg).check("worker2")
    lines = [entry for entry in logs if entry["event"] in ("looking", "probe done")]
    assert len(lines) == 2
    assert all((e["node"], e["probe"]) == ("worker2", "talks") for e in lines)


async def test_each_check_discovers_afresh() -> None:
    reg = Registry()
    seen: list[int] = []

    async def discover() -> ClusterFacts:
        seen.append(len(seen))
        nodes = NODES if len(seen) == 1 else [*NODES, NodeFacts(name="worker3")]
        return ClusterFacts(api_service_ip="10.96.0.1", nodes=nodes)

    engine = Engine(transports=Transports(cluster=FakeCluster(), discover=discover),
                    settings=ProbeSettings(), registry=reg)
    assert await engine.node_names() == ["master", "worker1", "worker2"]
    assert (await engine.check("worker3")).node == "worker3"  # a node that joined since
    assert await engine.node_names() == ["master", "worker1", "worker2", "worker3"]  # cached
    assert len(seen) == 2


async def test_failed_peer_pod_nobody_awaited_is_not_an_unretrieved_exception() -> None:
    reg = Registry()

    @probe(id="cross", layer=Layer.ROUTER, needs={"pod", "peer-pod"}, registry=reg)
    async def cross(ctx):
        raise AssertionError("own pod failed: must be skipped")

    class FailingPods(Pods):
        async def get(self, node: NodeFacts) -> FakePod:
            raise PodUnavailable(f"no pod on {node.name}")

    loop = asyncio.get_running_loop()
    unhandled: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    failing = FailingPods()
    report = await make_engine(reg, pods=failing).check("worker2")
    assert report.finding("cross").summary == "no debug pod on worker2: no pod on worker2"
    assert failing.released == []  # a failed get() holds no reference: releasing could free another's
    import gc

    gc.collect()
    await asyncio.sleep(0)
    assert unhandled == []


async def test_each_finding_carries_its_probe_duration() -> None:
    reg = Registry()

    @probe(id="quick", layer=Layer.POD_APP, registry=reg)
    async def quick(ctx):
        return ok("at once")

    @probe(id="slow", layer=Layer.POD_APP, registry=reg)
    async def slow(ctx):
        await asyncio.sleep(0.2)
        return ok("after a while")

    report = await make_engine(reg).check("worker2")
    durations = {f.probe: f.duration_s for f in report.findings}
    assert durations["slow"] is not None and 0.2 <= durations["slow"] < 2
    assert durations["quick"] is not None and durations["quick"] < durations["slow"]
    assert report.as_json()["findings"][0]["duration_s"] == durations[report.findings[0].probe]


async def test_a_fix_proposal_the_probe_did_not_declare_is_an_error() -> None:
    from probes.model import FixProposal

    reg = Registry()

    @probe(id="declared", layer=Layer.POD_APP, fixes=("x-fix",), registry=reg)
    async def declared(ctx):
        return fail("broken", fix=FixProposal(id="x-fix", params={}))

    @probe(id="undeclared", layer=Layer.POD_APP, registry=reg)
    async def undeclared(ctx):
        return fail("broken", fix=FixProposal(id="x-fix", params={}))

    report = await make_engine(reg).check("worker2")
    assert report.finding("declared").fix == FixProposal(id="x-fix", params={})
    found = report.finding("undeclared")
    assert found.status is Status.ERROR and found.fix is None
    assert found.summary == "probe error: proposed fix 'x-fix' it does not declare"
