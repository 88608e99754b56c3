"""The engine on a loop of its own under `netcheck serve` (bot/ops/engine_loop.py, engine_bridge.py).

Covers the structure, not the speed: `serve_with_engine_loop` answers a signed /netcheck on the
test's loop while the real engine's probes run on the `netcheck-engine` thread's loop, at a lower
scheduling priority (`ops.engine_nice`), and leaves no thread behind when it stops; the engine's
`on_report` hook, the fix runner's `on_result` hook and a fix's progress callback reach the bot's
loop; cancelling the bot's task cancels the engine's work and waits for it to unwind; a
`node_session` entered through the bridge gives the calls inside it the session's (privileged)
shell, as on one loop. The engine is the real `probes.engine.Engine` over
injected transports (its documented seam): a probe that records where it ran.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from dataclasses import dataclass, field

import pytest

from bot.commands.serve import serve_with_engine_loop
from bot.config import Config
from bot.ops.engine_bridge import ThreadedEngine, ThreadedFixRunner
from bot.ops.engine_loop import MAX_NICE, THREAD_NAME, EngineLoop
from fixes.model import Approval, FixResult
from lab.slack.driver import SlackDriver
from lab.slack.webapi import SlackStandIn
from probes.engine import Engine, Transports
from probes.facts import ClusterFacts, NodeFacts
from probes.model import Layer, Report, ok
from probes.registry import Registry, probe
from probes.settings import ProbeSettings
from tests.bot.fakes import FakeRunner
from tests.fakes import FakeCluster, HostPodRouter
from tests.fakes.engine import FakeEngine

CHANNEL = "C0NETCHECK"
SECRET = "engine-loop-secret"
NODE = NodeFacts(name="edge-7", internal_ip="10.31.0.7", ready=True)
WAIT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


@dataclass
class Where:
    """Where the engine's probe ran, and what became of a probe told to wait."""

    threads: list[str] = field(default_factory=list)
    nice: list[int] = field(default_factory=list)
    loops: list[asyncio.AbstractEventLoop] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False
    unwound: bool = False


def recording_engine(where: Where, *, block: bool = False, shells: HostPodRouter | None = None) -> Engine:
    """The real engine with one probe that records its thread and loop (`block`: then waits until
    cancelled)."""

    async def discover() -> ClusterFacts:
        return ClusterFacts(api_service_ip="10.200.0.1", nodes=[NODE])

    registry = Registry()

    @probe(id="where", layer=Layer.HOST_ROUTE, registry=registry)
    async def where_probe(ctx):  # noqa: ANN001, ANN202
        where.threads.append(threading.current_thread().name)
        where.nice.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        where.loops.append(asyncio.get_running_loop())
        where.started.set()
        if block:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                where.cancelled = True
                raise
            finally:
                await asyncio.sleep(0)  # unwinding takes a turn of the engine's loop
                where.unwound = True
        return ok("recorded")

    transports = Transports(cluster=FakeCluster(), discover=discover, shells=shells)
    return Engine(transports=transports, settings=ProbeSettings(), registry=registry)


def engine_loop() -> EngineLoop:
    return EngineLoop(start_timeout=WAIT_S, stop_timeout=WAIT_S, unwind_timeout=WAIT_S)


async def test_serve_answers_slack_here_and_runs_checks_on_the_engine_thread() -> None:
    standin = SlackStandIn(channels=(CHANNEL,))
    await standin.start()
    config = Config.model_validate({
        "slack": {"bot_token": "xoxb-test", "signing_secret": SECRET, "api_url": standin.api_url,
                  "pictures": False},
        "ops": {"health_host": "127.0.0.1", "health_port": 0, "leader_election": False},
    })
    where = Where()
    port, stop = free_port(), asyncio.Event()
    server = asyncio.create_task(serve_with_engine_loop(
        config, host="127.0.0.1", port=port, engine_factory=lambda _: recording_engine(where), stop=stop))
    try:
        driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SECRET, standin)
        for _ in range(200):
            try:
                reply = await driver.command(NODE.name, user="UALICE", channel=CHANNEL)
                break
            except OSError:
                await asyncio.sleep(0.05)
        assert reply.status == 200  # answered by serve's HTTP server, on this test's loop
        assert len(engine_threads()) == 1
    finally:
        stop.set()
        await asyncio.wait_for(server, WAIT_S)  # the running check finishes first (graceful shutdown)
        await standin.stop()
    assert standin.messages(CHANNEL)[0].text.startswith(f":white_check_mark: {NODE.name}")
    assert where.threads == [THREAD_NAME]
    # below the bot's scheduling priority by ops.engine_nice (Linux: a nice value per thread)
    assert where.nice == [min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, 0) + config.ops.engine_nice)]
    assert config.ops.engine_nice > 0
    assert where.loops and where.loops[0] is not asyncio.get_running_loop()
    assert where.loops[0].is_closed()
    assert engine_threads() == []  # serve stopped the engine's loop and joined its thread


async def test_hooks_and_fix_progress_reach_the_bot_loop() -> None:
    loop = engine_loop()
    await loop.start()
    where = Where()
    engine = ThreadedEngine(recording_engine(where), loop)
    runner = ThreadedFixRunner(FakeRunner(FakeEngine([NODE.name])), loop)
    heard: dict[str, list[tuple[str, asyncio.AbstractEventLoop]]] = {"report": [], "result": [],
                                                                     "progress": []}

    def on_report(report: Report) -> None:
        heard["report"].append((report.node, asyncio.get_running_loop()))

    def on_result(fix_id: str, result: FixResult) -> None:
        heard["result"].append((fix_id, asyncio.get_running_loop()))

    async def progress(line: str) -> None:
        heard["progress"].append((line, asyncio.get_running_loop()))

    engine.on_report.add(on_report)
    runner.on_result.add(on_result)
    try:
        report = await engine.check(NODE.name)
        result = await runner.apply(NODE.name, "masquerade", {"iface": "wlp1s0", "cidr": "10.31.0.0/24"},
                                    Approval(approver="UBOB", requested_by="UALICE",
                                             approved_at=report.started_at), progress=progress)
        await asyncio.sleep(0)  # the hooks are scheduled on this loop: one turn runs them
    finally:
        await engine.aclose()
    here = asyncio.get_running_loop()
    assert where.threads == [THREAD_NAME] and where.loops[0] is not here
    assert heard["report"] == [(NODE.name, here)]
    assert heard["progress"] == [("rule added, verifying", here)]
    assert heard["result"] == [("masquerade", here)] and result.message.startswith("MASQUERADE rule added")
    assert engine_threads() == []


async def test_cancelling_the_bot_task_cancels_the_engine_work() -> None:
    loop = engine_loop()
    await loop.start()
    where = Where()
    engine = ThreadedEngine(recording_engine(where, block=True), loop)
    try:
        check = asyncio.create_task(engine.check(NODE.name))
        assert await asyncio.to_thread(where.started.wait, WAIT_S)
        assert not where.cancelled
        check.cancel()
        with pytest.raises(asyncio.CancelledError):
            await check
        # the engine's probe was cancelled and had unwound before the bot's task ended
        assert where.cancelled and where.unwound
    finally:
        await engine.aclose()
    assert engine_threads() == []
    with pytest.raises(Exception, match="not running"):
        await engine.node_names()  # after shutdown a call fails at once rather than hanging


async def test_node_session_through_the_bridge_gives_the_session_shell_inside() -> None:
    loop = engine_loop()
    await loop.start()
    router = HostPodRouter()
    engine = ThreadedEngine(recording_engine(Where(), shells=router), loop)
    try:
        outside = await engine.node_shell(NODE.name)
        async with engine.node_session(NODE.name, privileged=True):
            first = await engine.node_shell(NODE.name)
            again = await engine.node_shell(NODE.name)
        after = await engine.node_shell(NODE.name)
    finally:
        await engine.aclose()
    assert outside.node == after.node == f"{NODE.name}/read-only"
    assert first.node == again.node == f"{NODE.name}/privileged"
    assert router.got.count((NODE.name, True)) == 1  # acquired once inside the session
    assert (NODE.name, True) in router.released  # and released when it ended
