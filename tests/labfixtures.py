"""Lab fixtures: one lab per pytest session (`lab`) and `fault`, which injects a fault for one test.

Registered from tests/conftest.py via pytest_plugins. Every fault set through `fault` is undone
after the test, pass or fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from lab.cluster import Lab


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    Lab.teardown()  # a lab left by a killed earlier run
    running = Lab.up(workers=2)
    try:
        yield running
    finally:
        running.down()


@pytest.fixture
def fault(lab: Lab) -> Iterator[Callable[..., None]]:
    """fault(name, node="worker2", on=True): set a fault now, restore its previous state after the test."""
    undo: list[tuple[str, str, bool]] = []

    def inject(name: str, node: str = "worker2", on: bool = True) -> None:
        was_on = node in lab.active_faults().get(name, set())
        lab.fault(name, node=node, on=on)
        undo.append((name, node, was_on))

    yield inject
    for name, node, was_on in reversed(undo):
        lab.fault(name, node=node, on=was_on)
