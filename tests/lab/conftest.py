"""Fixtures of the lab tests that need a lab of their own next to the session lab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import spec
from lab.cluster import Lab


@pytest.fixture
def own_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A prefix and state dir no other lab uses (the session lab's prefix + "t-"), torn down before
    and after."""
    prefix = spec.prefix().rstrip("-") + "t-"  # "ncat-" does not start with "nca-" (and vice versa)
    state = Path(str(spec.state_dir()) + "-teardown")
    monkeypatch.setenv(spec.PREFIX_ENV, prefix)
    monkeypatch.setenv(spec.STATE_ENV, str(state))
    Lab.teardown()
    yield prefix, state
    Lab.teardown()
