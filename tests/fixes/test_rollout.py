"""fixes/rollout.py on the shapes the API serves: the operator's rendered MTU (explicit in every
FELIX_*MTU variable; for auto none, or an older operator's defaults and a new generation), a node
is done only with the current template generation and Ready, `kubectl rollout status`'s completeness,
the stuck message naming the stalled node and the ones not reached, and TigeraStatus in one line."""

from __future__ import annotations

from fixes.rollout import rollout_state, template_mtu_matches, tigera_line


def ds(env: dict[str, str], generation: int = 2, **status: int) -> dict:
    return {"metadata": {"generation": generation,
                         "annotations": {"deprecated.daemonset.template.generation": str(generation)}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "calico-node", "env": [{"name": k, "value": v} for k, v in env.items()]}]}}},
            "status": {"observedGeneration": generation, "desiredNumberScheduled": 3,
                       "updatedNumberScheduled": status.get("updated", 3),
                       "numberAvailable": status.get("available", 3)}}


def pod(node: str, generation: int, ready: bool) -> dict:
    condition = {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-26T09:00:00Z"} if ready \
        else {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
              "message": "containers with unready status: [calico-node]"}
    labels = {"pod-template-generation": str(generation)}
    return {"metadata": {"name": f"calico-node-{node}", "labels": labels},
            "spec": {"nodeName": node}, "status": {"phase": "Running", "conditions": [condition]}}


MTU = {"FELIX_IPINIPMTU": "1350", "FELIX_VXLANMTU": "1350", "FELIX_WIREGUARDMTU": "1350"}
TIGERA = {"status": {"conditions": [
    {"type": "Available", "status": "False", "message": "Not Applicable"},
    {"type": "Progressing", "status": "True",
     "message": 'DaemonSet "calico-system/calico-node" update is rolling out (1 out of 3 updated)'},
    {"type": "Degraded", "status": "False"}]}}


def test_rendered_mtu_explicit_and_auto() -> None:
    assert template_mtu_matches(ds(MTU), 1350)
    assert not template_mtu_matches(ds({**MTU, "FELIX_VXLANMTU": "1450"}), 1350)
    assert template_mtu_matches(ds({}), None)  # current operators: no MTU variables for auto
    old_defaults = ds({"FELIX_IPINIPMTU": "1440", "FELIX_VXLANMTU": "1410"}, generation=5)
    assert template_mtu_matches(old_defaults, None, since_generation=4)
    assert not template_mtu_matches(old_defaults, None, since_generation=5)


def test_a_node_is_done_only_on_the_current_generation_and_ready() -> None:
    pods = [pod("master", 2, True), pod("worker1", 1, True), pod("worker2", 2, False)]
    state = rollout_state(ds(MTU, updated=2, available=2), pods, TIGERA, 1350)
    assert state.node_done("master") and not state.node_done("worker1") and not state.node_done("worker2")
    assert not state.complete and state.progress_line() == "calico-node 2/3 updated, 2/3 available"
    assert state.stuck("worker2") == (
        "calico-node 2/3 updated, 2/3 available; stalled at worker2: calico-node-worker2 not Ready "
        "(containers with unready status: [calico-node]); not reached: worker1; worker2 does not run this "
        'MTU yet; TigeraStatus calico: Available=False, Progressing=True: DaemonSet "calico-system/'
        'calico-node" update is rolling out (1 out of 3 updated), Degraded=False')
    done = rollout_state(ds(MTU), [pod(n, 2, True) for n in ("master", "worker1", "worker2")], None, 1350)
    assert done.complete and done.nodes["worker2"].ready_since is not None
    not_rendered = rollout_state(ds({}), [pod("master", 2, True)], None, 1350)
    assert not not_rendered.node_done("master")
    assert not_rendered.stuck("master").startswith("the operator did not render the new MTU")


def test_tigera_line_quotes_only_what_is_true() -> None:
    assert tigera_line(None) == ""
    available = {"type": "Available", "status": "True", "message": "All objects available"}
    assert tigera_line({"status": {"conditions": [available]}}) == "Available=True"
