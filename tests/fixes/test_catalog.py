"""The individual fixes with the fake node/engine.

Covers: calico-mtu (plan diff + fallback, refusal above link MTU minus IPIP/VXLAN overhead, merge
patch; follows the operator's rollout with progress lines "calico-node k/3 updated", verifies only
after the node's calico-node runs the new MTU, lists the pods on the node created before that with
how to recreate them (never host-network or netcheck's pods); a rollout stalled at another node names
it, verifies nothing and the rollback that cannot finish either is reported; rollback removes a field
that was absent and restores a previous value),
ip-forward (drop-in + sysctl, rollback restores the runtime value; not verified when a later sysctl
file would set 0 at boot), kernel-modules (no modprobe ->
rolled back, entry removed), etc-hosts (marked block with the missing nodes, rollback restores the
text), and the registry's import-time checks.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fixes.base import Fix
from fixes.catalog.etc_hosts import BEGIN, END
from fixes.catalog.ip_forward import DROP_IN
from fixes.catalog.kernel_modules import entry_path
from fixes.model import Approval, Outcome
from fixes.registry import FixRegistry, FixRegistryError, fix
from fixes.runner import FixRunner
from fixes.settings import FixSettings
from probes.errors import InvalidInput
from probes.model import Layer, Status
from tests.fixes.fakenode import FakeNode, InstallationCluster, node_engine

FAST = FixSettings(rollout_timeout=2.0, rollout_poll_interval=0.001)
"""A rollout followed without pauses: the fake operator moves one step per read."""
APPROVAL = Approval(approver="alice@ops", approved_at=datetime(2026, 11, 26, tzinfo=UTC), requested_by="bob")


def make(installation: dict | None = None, encapsulation: str = "ipip", **node_kw: object):
    node = FakeNode(node="worker2", **node_kw)  # type: ignore[arg-type]
    cluster = InstallationCluster(installation=installation if installation is not None
                                  else {"spec": {"calicoNetwork": {"ipPools": []}}})
    engine = node_engine(node, cluster, encapsulation=encapsulation)
    return node, engine, FixRunner(engine, settings=FAST)


async def test_calico_mtu_plan_is_a_diff_with_a_fallback_never_run() -> None:
    node, engine, runner = make({"spec": {"calicoNetwork": {"mtu": 1480}}})
    plan = await runner.plan("worker2", "calico-mtu", {"mtu": "1430"})
    assert plan.params == {"mtu": 1430}
    assert "-    mtu: 1480" in plan.change and "+    mtu: 1430" in plan.change
    assert "wlp59s0 (MTU 1500" in plan.change and "20 bytes for ipip" in plan.change
    assert "ip link set tunl0 mtu 1430" in plan.fallback
    assert engine.cluster.patches == [] and not any("ip link set" in c for c in node.ran)


@pytest.mark.parametrize(("encap", "mtu", "fits"), [("ipip", 1480, True), ("ipip", 1481, False),
                                                    ("vxlan", 1450, True), ("vxlan", 1451, False)])
async def test_calico_mtu_must_fit_link_minus_overhead(encap: str, mtu: int, fits: bool) -> None:
    _, engine, runner = make(encapsulation=encap)
    if fits:
        await runner.plan("worker2", "calico-mtu", {"mtu": mtu})
    else:
        with pytest.raises(InvalidInput, match="does not fit"):
            await runner.plan("worker2", "calico-mtu", {"mtu": mtu})
    assert engine.cluster.patches == []


async def test_calico_mtu_refuses_below_576_and_without_operator() -> None:
    _, engine, runner = make()
    with pytest.raises(InvalidInput, match="576 to 9000"):
        await runner.plan("worker2", "calico-mtu", {"mtu": 500})
    _, engine, runner = make(installation={})
    engine.cluster.installation = None
    with pytest.raises(InvalidInput, match="Installation"):
        await runner.plan("worker2", "calico-mtu", {"mtu": 1400})


def pod(name: str, created: str, *, owner: tuple[str, str] | None = None, labels: dict | None = None,
        host_network: bool = False, namespace: str = "apps") -> dict:
    refs = [{"kind": owner[0], "name": owner[1], "controller": True}] if owner else []
    return {"metadata": {"name": name, "namespace": namespace, "creationTimestamp": created,
                         "labels": labels or {}, "ownerReferences": refs},
            "spec": {"nodeName": "worker2", "hostNetwork": host_network}, "status": {"phase": "Running"}}


async def test_calico_mtu_follows_the_rollout_verifies_after_it_and_lists_old_pods() -> None:
    node, engine, runner = make(link_mtu=1450)
    engine.cluster.workload_pods = [
        pod("web-7d4b9c-x2x", "2026-11-26T08:00:00Z", owner=("ReplicaSet", "web-7d4b9c"),
            labels={"pod-template-hash": "7d4b9c"}),
        pod("bare", "2026-11-26T08:30:00Z"),
        pod("node-exporter-abc", "2026-11-26T08:00:00Z", owner=("DaemonSet", "node-exporter"),
            host_network=True),
        pod("netcheck-worker2-1a2b3c", "2026-11-26T08:00:00Z",
            labels={"app.kubernetes.io/managed-by": "netcheck"}, namespace="netcheck"),
        pod("after", "2099-01-01T00:00:00Z", owner=("ReplicaSet", "after-1")),
    ]
    lines: list[str] = []
    checked_at: list[dict] = []

    async def progress(line: str) -> None:
        lines.append(line)
        if line.startswith("verifying"):
            checked_at.append(dict(engine.cluster.node_generation))

    result = await runner.apply("worker2", "calico-mtu", {"mtu": 1400}, APPROVAL, progress=progress)
    assert result.outcome == Outcome.APPLIED, result.message
    assert engine.cluster.patches == [{"spec": {"calicoNetwork": {"mtu": 1400}}}]
    assert lines[0].startswith("applied, rolling out: Installation default spec.calicoNetwork.mtu=1400")
    counts = [line.split()[1] for line in lines if line.startswith("calico-node ") and "updated" in line]
    assert counts[:3] == ["1/3", "2/3", "3/3"]  # "calico-node 2/3 updated, ..." as it advances
    reached = ("calico-node on worker2 runs MTU 1400 (calico-node-worker2 Ready); verifying with a new "
               "debug pod")
    assert reached in lines
    assert checked_at == [{"master": 2, "worker1": 2, "worker2": 2}]  # the probes ran after worker2 rolled
    assert lines[-1].startswith("calico-node rolled out on all 3 nodes (TigeraStatus calico: Available=True")
    assert "(verified)" in result.message
    assert engine.retired_pods == 1  # verified in a new debug pod: a warm one has the old MTU
    assert "2 pod(s) on worker2 were created before its calico-node ran the new MTU" in result.message
    assert ("apps/web-7d4b9c-x2x (Deployment web, created 08:00:00): kubectl rollout restart deployment/web "
            "-n apps") in result.message
    assert "apps/bare (no owner, created 08:30:00): recreate it" in result.message
    assert "node-exporter" not in result.message and "netcheck-worker2" not in result.message
    assert "apps/after" not in result.message
    again = await runner.apply("worker2", "calico-mtu", {"mtu": 1400}, APPROVAL)
    assert again.outcome == Outcome.NOTHING_TO_DO and len(engine.cluster.patches) == 1


async def test_calico_mtu_stalled_rollout_names_the_node_and_verifies_nothing() -> None:
    node, engine, runner = make(link_mtu=1450)
    engine.cluster.stalled.add("master")  # first in the rollout: worker2 is never reached
    lines: list[str] = []

    async def progress(line: str) -> None:
        lines.append(line)

    result = await runner.apply("worker2", "calico-mtu", {"mtu": 1400}, APPROVAL, progress=progress)
    assert result.outcome == Outcome.FAILED, result.message
    assert result.verification == [] and not any(line.startswith("verifying") for line in lines)
    assert result.problems[0].startswith("the calico-node rollout did not reach worker2 within 2 s: "
                                         "calico-node 1/3 updated, 2/3 available; stalled at master: "
                                         "calico-node-master not Ready (containers with unready status: "
                                         "[calico-node]); not reached: worker1, worker2")
    assert "the rollback failed too: the calico-node rollout back to MTU auto-detected did not finish" \
        in result.message
    assert engine.cluster.patches[-1] == {"spec": {"calicoNetwork": {"mtu": None}}}  # patched back anyway
    prechecks = [c for c in engine.probes_checked if c[1] == ("mtu",)]
    assert prechecks == [("worker2", ("mtu",))]  # the precheck only
    engine.cluster.stalled.clear()  # the node recovers: the rollback's rollout finishes


@pytest.mark.parametrize("previous", [None, 1480])
async def test_calico_mtu_rollback_restores_the_exact_spec(previous: int | None) -> None:
    network = {"ipPools": [{"cidr": "192.168.0.0/16"}]} | ({"mtu": previous} if previous else {})
    _, engine, runner = make({"spec": {"calicoNetwork": network}}, link_mtu=1450)
    spec_before = engine.cluster.installation["spec"]
    engine.forced["mtu"] = Status.FAIL
    result = await runner.apply("worker2", "calico-mtu", {"mtu": 1400}, APPROVAL)
    assert result.outcome == Outcome.ROLLED_BACK
    assert engine.cluster.installation["spec"] == spec_before
    assert engine.cluster.patches[-1] == {"spec": {"calicoNetwork": {"mtu": previous}}}


async def test_ip_forward_apply_and_rollback_restore_value_and_files() -> None:
    node, engine, runner = make(ip_forward=0)
    result = await runner.apply("worker2", "ip-forward", {}, APPROVAL)
    assert result.outcome == Outcome.APPLIED and node.ip_forward == 1
    assert "net.ipv4.ip_forward = 1" in node.files[DROP_IN]
    assert engine.retired_pods == 0  # existing pods see a sysctl: the warm debug pod may verify it
    node2, engine2, runner2 = make(ip_forward=0)
    engine2.forced["ip-forward"] = Status.FAIL
    files = dict(node2.files)
    result = await runner2.apply("worker2", "ip-forward", {}, APPROVAL)
    assert result.outcome == Outcome.ROLLED_BACK and node2.ip_forward == 0 and node2.files == files


async def test_ip_forward_does_not_verify_when_a_later_file_would_reset_it_at_boot() -> None:
    node, _, runner = make(ip_forward=0, files={"/etc/sysctl.d/99-zz-router.conf": "net.ipv4.ip_forward=0\n"})
    result = await runner.apply("worker2", "ip-forward", {}, APPROVAL)
    assert result.outcome == Outcome.ROLLED_BACK, result.message
    assert result.problems == ["after a reboot `sysctl --system` would leave net.ipv4.ip_forward=0 "
                               "(last set in /etc/sysctl.d/99-zz-router.conf)"]
    assert node.ip_forward == 0 and DROP_IN not in node.files


async def test_kernel_module_without_modprobe_is_rolled_back() -> None:
    node, _, runner = make(can_modprobe=False)
    files = dict(node.files)
    result = await runner.apply("worker2", "kernel-modules", {"module": "ipip"}, APPROVAL)
    assert result.outcome == Outcome.ROLLED_BACK
    assert "apply failed" in result.message and "modprobe" in result.message
    assert entry_path("ipip") not in node.files and node.files == files


async def test_kernel_module_loaded_and_persisted() -> None:
    node, _, runner = make()
    result = await runner.apply("worker2", "kernel-modules", {"module": "ipip"}, APPROVAL)
    assert result.outcome == Outcome.APPLIED and "ipip" in node.modules
    assert node.files[entry_path("ipip")] == "ipip\n"


async def test_etc_hosts_adds_only_missing_nodes_in_a_block_and_rolls_back() -> None:
    hosts = "127.0.0.1 localhost\n10.0.0.10 master\n"
    node, engine, runner = make(files={"/etc/hosts": hosts})
    plan = await runner.plan("worker2", "etc-hosts", {})
    assert plan.summary.endswith(": 10.0.0.11 worker1, 192.168.1.105 worker2")  # the entries themselves
    assert "master" not in plan.summary.split(":")[1]
    result = await runner.apply("worker2", "etc-hosts", {}, APPROVAL)
    assert result.outcome == Outcome.APPLIED, result.message
    assert node.files["/etc/hosts"] == (
        hosts + f"{BEGIN}\n10.0.0.11 worker1\n192.168.1.105 worker2\n{END}\n")
    assert (await runner.apply("worker2", "etc-hosts", {}, APPROVAL)).outcome == Outcome.NOTHING_TO_DO
    node2, engine2, runner2 = make(files={"/etc/hosts": hosts})
    engine2.forced["etc-hosts"] = Status.FAIL
    result = await runner2.apply("worker2", "etc-hosts", {}, APPROVAL)
    assert result.outcome == Outcome.ROLLED_BACK and node2.files["/etc/hosts"] == hosts


def test_registry_checks_definitions_at_import() -> None:
    registry = FixRegistry()

    class Incomplete(Fix):
        pass

    with pytest.raises(FixRegistryError, match="abstract"):
        fix(id="incomplete", addresses="mtu", registry=registry)(Incomplete)
    from fixes.catalog.ip_forward import IpForward

    with pytest.raises(FixRegistryError, match="unknown probe"):
        fix(id="x", addresses="no-such-probe", registry=registry)(type("X", (IpForward,), {}))
    with pytest.raises(FixRegistryError, match="must match"):
        fix(id="Bad_Id", addresses="mtu", registry=registry)(type("Y", (IpForward,), {}))
    # a fix for a probe that never proposes it could never get a button: refused at import
    with pytest.raises(FixRegistryError, match="which never proposes it"):
        fix(id="ip-forward", addresses="pod-dns", registry=registry)(type("Z", (IpForward,), {}))
    fix(id="ip-forward", addresses="ip-forward", registry=registry)(type("W", (IpForward,), {}))


def test_every_probe_declared_fix_is_registered_and_checked() -> None:
    from fixes.catalog.ip_forward import IpForward
    from probes.registry import ProbeSpec, Registry

    probes = Registry()
    probes.add(ProbeSpec(id="ip-forward", layer=Layer.HOST_ROUTE, fn=_noop_probe, fixes=("ip-forward",)))
    probes.add(ProbeSpec(id="etc-hosts", layer=Layer.HOST_ROUTE, fn=_noop_probe, fixes=("etc-hosts",)))
    registry = FixRegistry(probes=probes)
    fix(id="ip-forward", addresses="ip-forward", registry=registry)(type("V", (IpForward,), {}))
    with pytest.raises(FixRegistryError, match="may propose fix 'etc-hosts', which is not registered"):
        registry.validate()


async def _noop_probe(ctx):  # type: ignore[no-untyped-def]
    raise AssertionError("never run")


async def test_etc_hosts_rollback_keeps_lines_added_by_someone_else() -> None:
    from fixes.catalog.etc_hosts import EtcHosts

    hosts = "127.0.0.1 localhost\n"
    node, engine, runner = make(files={"/etc/hosts": hosts})
    fix_ = EtcHosts(engine, "worker2")
    plan = await fix_.plan({})
    before = await fix_.snapshot(plan)
    await fix_.apply(plan, APPROVAL)
    node.files["/etc/hosts"] += "10.9.9.9 added-meanwhile\n"
    await fix_.rollback(plan, before)
    assert node.files["/etc/hosts"] == hosts + "10.9.9.9 added-meanwhile\n"
