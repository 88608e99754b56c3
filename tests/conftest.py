"""Suite-wide policy: lab tests need root and network namespaces; structlog starts from its defaults.

Without them a `lab` test is skipped, unless NETCHECK_REQUIRE_LAB=1 (CI), where it fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog

# the session `lab` fixture and the `fault` factory; parallel workers, each with labs of its own
pytest_plugins = ["tests.labfixtures", "tests.workerlabs"]

REQUIRE_LAB = os.environ.get("NETCHECK_REQUIRE_LAB") == "1"


def lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, veths, iptables)"
    if not os.path.exists("/usr/sbin/sshd") or not os.path.exists("/usr/sbin/iptables"):
        return "the lab needs openssh-server and iptables (see .ci/run)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = lab_unavailable_reason()
    if reason is None:
        return
    for item in items:
        if "lab" in item.keywords:
            if REQUIRE_LAB:
                item.add_marker(pytest.mark.xfail(reason=reason, run=False, strict=True))
            else:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """structlog back to its defaults around each test: a test that ran `netcheck` main() (which
    configures logging) would otherwise leave it printing to that test's closed capture stream."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def k8s_version() -> str:
    """The newest Kubernetes release whose schemas kubernetes-validate ships (tests/deploy and the
    host-pod manifests of tests/probes validate against it)."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    return str(kubernetes_validate.latest_version())
