"""The fleet state (bot/fleet): causes as keys, when a change is posted, the fleet series, the bound.

Covers: a symptom counts as its cause, a cross-node cause as `probe@node`, only watched probes count
(transport failures always); the first check is a silent baseline; a new cause is posted once after
`agree` agreeing checks and a recovery likewise; a verdict flapping every check posts nothing;
checks that may not announce (commands) count towards the streak and the next sweep posts; some
causes gone is an improvement; a re-baseline (new leader) posts nothing for what it finds; nodes that
left are forgotten with their series; the per-node per-probe status gauge is one-hot and moves; sweep
waiters wake; the fleet bound lets a waiting command go before a sweep and keeps a slot for commands.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from bot.fleet.causes import cause_keys, causes
from bot.fleet.metrics import FleetMetrics
from bot.fleet.slots import FleetSlots
from bot.fleet.state import ChangeKind, FleetState, Source
from probes.model import CauseRef, Finding, Layer, Report, Status

NODE = "rack3-n07"


def f(probe: str, status: Status, caused_by: str | None = None, layer: Layer = Layer.HOST_ROUTE) -> Finding:
    return Finding(probe=probe, layer=layer, status=status, summary=f"{probe} is {status.value}",
                   caused_by=caused_by)


def report(*findings: Finding, node: str = NODE) -> Report:
    return Report(node=node, started_at=datetime.now(UTC), duration_s=1.5, findings=list(findings))


HEALTHY = report(f("host-api", Status.OK), f("pod-api", Status.OK), f("ip-forward", Status.OK))
BROKEN = report(f("host-api", Status.OK), f("pod-api", Status.FAIL, caused_by="ip-forward"),
                f("ip-forward", Status.FAIL))


def test_symptoms_count_as_their_cause() -> None:
    assert cause_keys(BROKEN) == {"ip-forward"}
    assert causes(BROKEN)[0].summary == "ip-forward is fail"
    # the cause's probe is not counted, its symptom still names it
    assert cause_keys(BROKEN, frozenset({"pod-api"})) == {"ip-forward"}
    assert cause_keys(HEALTHY) == frozenset()


def test_a_cause_on_another_node_is_keyed_with_that_node() -> None:
    remote = CauseRef(node="rack1-n01", probe="return-path")
    symptom = Finding(probe="encapsulation", layer=Layer.ROUTER, status=Status.FAIL,
                      summary="pod-to-pod lost", caused_by_node=remote)
    seen = report(symptom)
    (found,) = causes(seen)
    assert (found.key, found.elsewhere, found.node, found.summary) == (
        "return-path@rack1-n01", True, "rack1-n01", "pod-to-pod lost")  # the peer was not looked at
    peer = report(f("return-path", Status.FAIL, layer=Layer.ROUTER), node="rack1-n01")
    (found,) = causes(seen.model_copy(update={"peers": [peer]}))
    assert found.summary == "return-path is fail"  # what the other node's own finding says


def test_only_watched_probes_and_transport_failures_count() -> None:
    fleet = FleetState(watched=frozenset({"host-api"}), always=frozenset({"ssh"}))
    extra = report(f("host-api", Status.OK), f("mtu", Status.FAIL))
    assert fleet.verdict_of(extra) == frozenset()
    unreachable = report(f("host-api", Status.SKIP), Finding(probe="ssh", layer=Layer.PHYSICAL,
                                                              status=Status.ERROR, summary="no route"))
    assert fleet.verdict_of(unreachable) == {"ssh"}


def test_baseline_then_one_regression_then_one_recovery() -> None:
    fleet = FleetState(agree=2)
    assert fleet.record(BROKEN, Source.WATCH, announce=True) is None  # baseline: already broken
    assert fleet.record(HEALTHY, Source.WATCH, announce=True) is None  # 1 of 2
    recovery = fleet.record(HEALTHY, Source.WATCH, announce=True)
    assert recovery is not None and recovery.kind is ChangeKind.RECOVERY
    assert recovery.resolved == ("ip-forward",) and recovery.new == ()
    assert fleet.record(HEALTHY, Source.WATCH, announce=True) is None  # nothing new
    assert fleet.record(BROKEN, Source.WATCH, announce=True) is None
    regression = fleet.record(BROKEN, Source.WATCH, announce=True)
    assert regression is not None and regression.kind is ChangeKind.REGRESSION
    assert [c.key for c in regression.new] == ["ip-forward"] and regression.report is BROKEN
    assert fleet.record(BROKEN, Source.WATCH, announce=True) is None
    assert [r.node for r in fleet.regressions] == [NODE]


def test_flapping_posts_nothing() -> None:
    fleet = FleetState(agree=2)
    fleet.record(HEALTHY, Source.WATCH, announce=True)
    changes = [fleet.record(r, Source.WATCH, announce=True) for r in [BROKEN, HEALTHY] * 5]
    assert changes == [None] * 10


def test_commands_count_towards_the_streak_but_only_the_watch_posts() -> None:
    fleet = FleetState(agree=2)
    fleet.record(HEALTHY, Source.WATCH, announce=True)
    assert fleet.record(BROKEN, Source.ON_DEMAND) is None
    assert fleet.record(BROKEN, Source.ON_DEMAND) is None  # agreed, but a command never posts
    change = fleet.record(BROKEN, Source.WATCH, announce=True)
    assert change is not None and change.kind is ChangeKind.REGRESSION
    assert fleet.nodes[NODE].source is Source.WATCH


def test_some_causes_gone_is_an_improvement_and_a_new_one_a_regression() -> None:
    fleet = FleetState(agree=1)
    both = report(f("ip-forward", Status.FAIL), f("mtu", Status.WARN, layer=Layer.PHYSICAL))
    one = report(f("ip-forward", Status.FAIL), f("mtu", Status.OK, layer=Layer.PHYSICAL))
    fleet.record(HEALTHY, Source.WATCH, announce=True)
    assert fleet.record(both, Source.WATCH, announce=True).kind is ChangeKind.REGRESSION
    better = fleet.record(one, Source.WATCH, announce=True)
    assert better.kind is ChangeKind.IMPROVED and better.resolved == ("mtu",)
    assert [c.key for c in better.still] == ["ip-forward"]
    worse = fleet.record(both, Source.WATCH, announce=True)
    assert worse.kind is ChangeKind.REGRESSION and [c.key for c in worse.new] == ["mtu"]


def test_rebaseline_posts_nothing_for_what_it_finds() -> None:
    fleet = FleetState(agree=1)
    fleet.record(HEALTHY, Source.WATCH, announce=True)
    fleet.rebaseline()
    assert fleet.record(BROKEN, Source.WATCH, announce=True) is None  # the new leader's baseline
    assert fleet.record(BROKEN, Source.WATCH, announce=True) is None


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_status_gauges_move_and_nodes_that_left_are_forgotten() -> None:
    registry = CollectorRegistry()
    fleet = FleetState(agree=2, metrics=FleetMetrics(registry))
    fleet.record(HEALTHY, Source.WATCH, announce=True)
    status = "netcheck_node_probe_status"
    assert sample(registry, status, node=NODE, probe="ip-forward", status="ok") == 1
    assert sample(registry, status, node=NODE, probe="ip-forward", status="fail") == 0
    fleet.record(BROKEN, Source.ON_DEMAND)
    assert sample(registry, status, node=NODE, probe="ip-forward", status="ok") == 0
    assert sample(registry, status, node=NODE, probe="ip-forward", status="fail") == 1
    assert sample(registry, "netcheck_node_problems", node=NODE) == 2
    assert sample(registry, "netcheck_node_check_duration_seconds_count", node=NODE, source="on_demand") == 1
    fleet.record(report(f("host-api", Status.OK), node="rack3-n08"), Source.WATCH)
    assert fleet.forget(["rack3-n08"]) == [NODE]
    assert sample(registry, status, node=NODE, probe="ip-forward", status="fail") is None
    assert sample(registry, status, node="rack3-n08", probe="host-api", status="ok") == 1


async def test_sweep_waiters_wake_on_a_sweep_that_started_after_them() -> None:
    fleet = FleetState()
    fleet.sweep_started()  # a sweep is running when the test asks
    waiter = asyncio.create_task(fleet.sweep_now(timeout=5))
    await fleet.sweep_done()  # that one does not count
    await asyncio.sleep(0)
    assert not waiter.done()
    await fleet.wait_for_request(timeout=5)  # the watch's pause ends at once: a sweep was asked for
    fleet.sweep_started()
    await fleet.sweep_done()
    await asyncio.wait_for(waiter, 5)
    assert fleet.sweeps == 2


async def test_a_waiting_command_goes_before_the_sweep_and_one_slot_stays_free() -> None:
    slots = FleetSlots(2)
    order: list[str] = []
    async with slots.background():  # a sweep holds one slot; the other is kept for commands
        second_sweep_check = asyncio.create_task(_take_background(slots, order, "sweep"))
        await asyncio.sleep(0.01)
        assert order == [] and slots.busy == 1
        async with slots:  # a command gets the free slot at once
            order.append("command")
            third = asyncio.create_task(_take_command(slots, order, "command-2"))
            await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.gather(second_sweep_check, third), 5)
    assert order == ["command", "command-2", "sweep"]  # the waiting command before the sweep
    assert slots.busy == 0


async def _take_background(slots: FleetSlots, order: list[str], name: str) -> None:
    async with slots.background():
        order.append(name)


async def _take_command(slots: FleetSlots, order: list[str], name: str) -> None:
    async with slots:
        order.append(name)


def test_a_bound_of_zero_is_refused() -> None:
    with pytest.raises(ValueError):
        FleetSlots(0)
