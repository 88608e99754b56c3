"""calico-mtu in the lab, verified by its effect: the API stand-in rolls calico-node one node at a time
(lab/apiserver/operator.py), only pods created on a node after its turn get the new MTU on their
veth, and the mtu probe measures a new debug pod.

Covers:
- the real `netcheck fix NODE calico-mtu --yes` (run in the ops namespace, the shipped RBAC enforced)
  on the node whose LAN link is small: the progress lines ("applied, rolling out", "calico-node k/3
  updated", the node reached), "verifying" only after the node's calico-node runs the new MTU, the
  outcome "applied … (verified)" with the mtu probe measuring the new MTU on a new debug pod, and a
  pod created on the node before the patch listed as still on the old MTU; the Installation is put
  back afterwards through the runner's rollback, which follows that rollout too;
- with calico-node stalled on the rollout's first node: the outcome names that node, no probe ran
  (nothing is claimed verified), the rollback's own rollout cannot finish either and says so, and the
  Installation is back at its previous value; releasing the node lets the rollout finish.
Node names come from the lab object (the WiFi node), never literals.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client, config

from lab.cluster import Lab
from lab.spec import NodeSpec
from tests.lab.test_fixes import in_ops

pytestmark = pytest.mark.lab

INSTALLATION = ("operator.tigera.io", "v1", "installations", "default")
ROLLOUT_S = 60.0


def api(lab: Lab) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(lab.kubeconfig))


def installation_mtu(lab: Lab) -> int | None:
    with lab.enter_ops():
        found = client.CustomObjectsApi(api(lab)).get_cluster_custom_object(*INSTALLATION)
    return found["spec"]["calicoNetwork"].get("mtu")


def wait_rolled_out(lab: Lab) -> None:
    deadline = time.monotonic() + ROLLOUT_S
    while time.monotonic() < deadline:
        with lab.enter_ops():
            ds = client.AppsV1Api(api(lab)).read_namespaced_daemon_set("calico-node", "calico-system")
        status = ds.status
        counts = {status.updated_number_scheduled, status.number_available, status.desired_number_scheduled}
        if status.observed_generation >= ds.metadata.generation and len(counts) == 1:
            return
        time.sleep(0.2)
    raise AssertionError(f"calico-node did not finish rolling out: {ds.status}")


def approval():  # noqa: ANN201
    from fixes.model import Approval

    return Approval(approver="lab-test", approved_at=datetime.now(UTC), requested_by="lab-test")


@pytest.fixture
def small_link(lab: Lab, fault) -> Iterator[NodeSpec]:
    """The WiFi node's LAN link at 1400; afterwards the Installation and calico-node as before."""
    node = next(n for n in lab.nodes if n.wifi)
    previous = installation_mtu(lab)
    fault("mtu", node=node.name)
    yield node
    applied = installation_mtu(lab)
    if applied != previous:
        from fixes.model import Outcome
        from fixes.runner import FixRunner

        async def back(engine: Any) -> Any:
            return await FixRunner(engine).rollback(node.name, "calico-mtu", {"mtu": applied},
                                                    {"mtu": previous}, approval())

        undone = in_ops(lab, back)
        assert undone.outcome == Outcome.ROLLED_BACK, undone.message
    wait_rolled_out(lab)
    assert installation_mtu(lab) == previous


def proposal(lab: Lab, node: NodeSpec) -> int:
    async def check(engine: Any) -> Any:
        return (await engine.check(node.name, probes=["mtu"])).finding("mtu")

    found = in_ops(lab, check)
    assert found.status.value == "fail" and found.fix is not None, found
    return int(found.fix.params["mtu"])


def test_cli_fix_reports_the_rollout_verifies_after_it_and_lists_the_old_pod(
    lab: Lab, small_link: NodeSpec
) -> None:
    node = small_link
    mtu = proposal(lab, node)
    with lab.enter_ops():
        core = client.CoreV1Api(api(lab))
        old = core.create_namespaced_pod("default", {
            "metadata": {"generateName": "app-before-"},
            "spec": {"nodeName": node.name, "containers": [{"name": "app", "image": "busybox"}]}})
    time.sleep(1.1)  # creation times have one-second resolution: this pod is strictly older
    try:
        proc = lab.run_ops([sys.executable, "-m", "bot.cli", "fix", node.name, "calico-mtu",
                            "--param", f"mtu={mtu}", "--yes"], timeout=180)
    finally:
        with lab.enter_ops():
            core.delete_namespaced_pod(old.metadata.name, "default", grace_period_seconds=0)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    lines = out.splitlines()
    progress = [line.strip()[2:] for line in lines if line.strip().startswith("… ")]
    assert progress[0].startswith(f"applied, rolling out: Installation default spec.calicoNetwork.mtu={mtu}")
    counts = [p.split()[1] for p in progress if p.startswith("calico-node ") and " updated" in p]
    assert "1/3" in counts and "3/3" in counts, progress
    node_line = f"calico-node on {node.name} runs MTU {mtu}"
    reached = next(i for i, p in enumerate(progress) if p.startswith(node_line))
    verifying = next(i for i, p in enumerate(progress) if p.startswith("verifying"))
    assert reached < verifying, progress  # probes only after the node's calico-node runs the new MTU
    assert any(p.startswith("calico-node rolled out on all 3 nodes") for p in progress), progress
    assert "applied: " in out and "(verified)" in out
    mtu_line = next(line for line in lines if line.strip().startswith("mtu "))
    assert f"pod MTU {mtu} + 50" in mtu_line and " ok " in f" {mtu_line} ", mtu_line
    assert f"default/{old.metadata.name} (no owner, created" in out, out
    assert "were created before its calico-node ran the new MTU" in out
    assert installation_mtu(lab) == mtu


def test_stalled_rollout_names_the_node_and_claims_nothing(lab: Lab, small_link: NodeSpec, fault) -> None:
    from fixes.model import Outcome
    from fixes.runner import FixRunner
    from fixes.settings import FixSettings

    node = small_link
    first = sorted(n.name for n in lab.nodes)[0]  # the rollout goes in name order: it stops here
    previous = installation_mtu(lab)
    mtu = proposal(lab, node)
    fault("calico-node-stall", node=first)
    lines: list[str] = []

    async def progress(line: str) -> None:
        lines.append(line)

    async def apply(engine: Any) -> Any:
        runner = FixRunner(engine, settings=FixSettings(rollout_timeout=6, rollout_poll_interval=0.2))
        return await runner.apply(node.name, "calico-mtu", {"mtu": mtu}, approval(), progress=progress)

    result = in_ops(lab, apply)
    assert result.outcome == Outcome.FAILED, result.message
    assert result.verification == [] and not any(line.startswith("verifying") for line in lines), lines
    assert f"did not reach {node.name}" in result.problems[0]
    assert f"stalled at {first}: calico-node-" in result.problems[0]
    assert "containers with unready status: [calico-node]" in result.problems[0]
    assert "TigeraStatus calico: Available=False, Progressing=True: DaemonSet" in result.problems[0]
    assert "the rollback failed too: the calico-node rollout back to MTU" in result.message
    assert f"stalled at {first}" in result.message.split("the rollback failed too")[1]
    assert installation_mtu(lab) == previous  # patched back, even though calico-node could not follow
    fault("calico-node-stall", node=first, on=False)
    wait_rolled_out(lab)
