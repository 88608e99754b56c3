"""Lab fixtures: one lab per layout per pytest session, and `fault`, which injects a fault for one test.

Registered from tests/conftest.py via pytest_plugins.
- `lab`: the default layout (the case study), prefix and state dir from NETCHECK_LAB_PREFIX/_STATE.
- `edge_lab`: the `edge` layout (other names, interfaces, CIDRs, service IPs; a routed pod network),
  next to it: prefix `<prefix without its dash>e-` (so neither prefix starts with the other and
  one lab's teardown never touches the other's namespaces), state dir `<state dir>-edge`.
- `any_lab`: parametrized over both (ids `default`, `edge`); a lab comes up only when a test needs it.
Tests take node names and addresses from the lab (`lab.wifi_node`, `lab.wired_worker`,
`lab.control_plane`, `lab.layout`), never literals.

`case_study`: the lab's WiFi node in the case-study state (its pods not masqueraded, no masquerade
unit) for one test; after it, no unit and the fault as it was. Yields the node's name.

`fault(name, node=None, on=True)` works on the lab the test uses (`any_lab`, else `edge_lab`, else
`lab`); `node` defaults to that lab's WiFi node. Every fault set through it is put back to its
previous state after the test, pass or fail.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fixes.catalog.masquerade import UNIT_NAME as MASQUERADE_UNIT
from lab import spec
from lab.cluster import Lab

POD_START_S = 30.0
POD_POLL_S = 0.05
EDGE_LAYOUT = "edge"
LAYOUT_FIXTURES = {spec.DEFAULT_LAYOUT: "lab", EDGE_LAYOUT: "edge_lab"}
"""Layout name -> the session fixture that brings a lab of it up."""


def second_lab_location(tag: str) -> tuple[str, Path]:
    """Prefix and state dir of a second lab beside the one NETCHECK_LAB_PREFIX/_STATE name."""
    return spec.prefix().rstrip("-") + tag[0] + "-", Path(f"{spec.state_dir()}-{tag}")


def _session_lab(layout: str, prefix: str | None = None, state: Path | None = None) -> Iterator[Lab]:
    Lab.teardown(prefix, state)  # a lab left by a killed earlier run
    running = Lab.up(workers=2, layout=layout, prefix=prefix, state=state)
    try:
        yield running
    finally:
        running.down()


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    yield from _session_lab(spec.DEFAULT_LAYOUT)


@pytest.fixture(scope="session")
def edge_lab() -> Iterator[Lab]:
    yield from _session_lab(EDGE_LAYOUT, *second_lab_location(EDGE_LAYOUT))


@pytest.fixture(params=list(LAYOUT_FIXTURES))
def any_lab(request: pytest.FixtureRequest) -> Lab:
    """Each layout's session lab in turn."""
    return request.getfixturevalue(LAYOUT_FIXTURES[request.param])


def used_lab(request: pytest.FixtureRequest) -> Lab:
    """The lab a test works on: `any_lab` if it asked for it, else `edge_lab`, else `lab`."""
    return request.getfixturevalue(next(f for f in ("any_lab", "edge_lab") if f in request.fixturenames)
                                   if {"any_lab", "edge_lab"} & set(request.fixturenames) else "lab")


@pytest.fixture
def fault(request: pytest.FixtureRequest) -> Iterator[Callable[..., None]]:
    """fault(name, node=None, on=True): set a fault now (default node: the lab's WiFi node), restore
    its previous state after the test."""
    target = used_lab(request)
    undo: list[tuple[str, str, bool]] = []

    def inject(name: str, node: str | None = None, on: bool = True) -> None:
        node = node or target.wifi_node.name
        was_on = node in target.active_faults().get(name, set())
        target.fault(name, node=node, on=on)
        undo.append((name, node, was_on))

    yield inject
    for name, node, was_on in reversed(undo):
        target.fault(name, node=node, on=was_on)


MASQUERADE_UNIT_PATH = f"/etc/systemd/system/{MASQUERADE_UNIT}"


def remove_masquerade_unit(lab: Lab, node: str) -> None:
    """The masquerade fix's boot unit gone from `node` (stopped, disabled, deleted)."""
    lab.node_exec(node, "sh", "-c", f"systemctl disable --now {MASQUERADE_UNIT}; "
                  f"rm -f {MASQUERADE_UNIT_PATH}; systemctl daemon-reload")


@pytest.fixture
def case_study(request: pytest.FixtureRequest) -> Iterator[str]:
    """The WiFi node of the lab the test uses in the case-study state: no-masquerade on, no unit."""
    target = used_lab(request)
    node = target.wifi_node.name
    was_on = node in target.active_faults().get("no-masquerade", set())
    target.fault("no-masquerade", node=node, on=True)
    remove_masquerade_unit(target, node)
    yield node
    remove_masquerade_unit(target, node)
    target.fault("no-masquerade", node=node, on=was_on)


@contextlib.contextmanager
def started_pod(lab: Lab, node: str) -> Iterator[str]:
    """A pod pinned to `node`, Running while the block runs (deleted after); yields its name.

    The lab's pod namespace on a node carries the veth of the last pod started there, and a pod keeps
    the MTU it started with (docs/calico.md#mtu-changes-and-the-operator-rollout): after any test on the
    shared session lab that rolled an Installation MTU out and back, only a pod started now shows the
    MTU the node's CNI config gives pods today."""
    from kubernetes import client, config

    with lab.enter_ops():
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(lab.kubeconfig)))
        name = core.create_namespaced_pod(spec.DEBUG_POD_NAMESPACE, {
            "metadata": {"generateName": "started-pod-"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}).metadata.name
        try:
            deadline = time.monotonic() + POD_START_S
            while core.read_namespaced_pod(name, spec.DEBUG_POD_NAMESPACE).status.phase != "Running":
                assert time.monotonic() < deadline, f"pod {name} did not start on {node}"
                time.sleep(POD_POLL_S)
            yield name
        finally:
            core.delete_namespaced_pod(name, spec.DEBUG_POD_NAMESPACE, grace_period_seconds=0)
