"""The optional node-access RBAC (deploy/kubernetes/components/node-access-pod) on the RBAC-enforcing lab.

The lab's API stand-in enforces the shipped base RBAC plus the component's Role; these tests swap the
enforced objects on the running server (lab control API) and drive netcheck's real host pod
transport (bot token, official client, exec into a container running in the node). Covers:
- with the base plus the component a host pod session (leftovers list, create, wait Running, exec,
  delete) succeeds; with any one of the component's rules removed it fails with one short line
  naming the 403 and a verb and resource of that rule: every rule is needed, and they are enough;
- with only the base RBAC (a `node_access: ssh` deployment) the host pod is refused with a 403,
  while `netcheck check --all` over SSH runs with no 403 at all: SSH needs none of the component;
- the Pod Security level is needed too: in the bot's own namespace (baseline) the API refuses the
  host pod with the admission message naming host namespaces and the hostPath volume.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab import apiconfig, nodeaccess
from lab.cluster import Lab
from probes.errors import NetcheckError

pytestmark = [pytest.mark.lab,
              pytest.mark.xdist_group("rbac-node-access")]  # one worker: the module's RBAC fixture once

COMPONENT_RBAC = apiconfig.NODE_ACCESS_COMPONENT / "rbac.yaml"
CLEAR_MESSAGE_CHARS = 500
CHECK_TIMEOUT_S = 240.0


def component_rules() -> list[dict]:
    (role,) = [o for o in apiconfig.rbac_objects([COMPONENT_RBAC]) if o["kind"] == "Role"]
    return role["rules"]


def without_rule(index: int) -> list[dict]:
    objects = copy.deepcopy(apiconfig.rbac_objects([COMPONENT_RBAC]))
    (role,) = [o for o in objects if o["kind"] == "Role"]
    del role["rules"][index]
    return objects


@pytest.fixture(scope="module")
def rbac(lab: Lab) -> Iterator[None]:
    yield
    apiconfig.set_rbac(lab, apiconfig.rbac_objects(apiconfig.rbac_files(lab)))


def base_objects(lab: Lab) -> list[dict]:
    return apiconfig.rbac_objects([apiconfig.SHIPPED_RBAC, lab.state / "lab-rbac.yaml"])


def pod_config(lab: Lab, namespace: str | None = None) -> Path:
    path = nodeaccess.config_for(lab, "pod")
    if namespace is None:
        return path
    config = yaml.safe_load(path.read_text())
    config["host_pod"] = {"namespace": namespace}
    other = lab.state / f"netcheck-node-access-pod-{namespace}.yaml"
    other.write_text(yaml.safe_dump(config))
    return other


def host_pod_session(lab: Lab, config: Path) -> str:
    """'' when a read-only host pod on a node ran a command and went away; else the error, one line."""
    from bot import config as config_module
    from bot import wiring

    async def session() -> str:
        engine = wiring.build_engine(config_module.load(config, env={}))
        try:
            node = (await engine.facts()).nodes[0]
            try:
                shell = await engine.node_shell(node.name)
                result = await shell.run("true")
                return "" if result.ok else f"exit {result.exit_status}: {result.output}"
            except NetcheckError as exc:
                return str(exc)
        finally:
            await engine.aclose()

    with lab.enter_ops():
        return asyncio.run(session())


def is_clear_403(message: str, rule: dict) -> bool:
    words = set(re.findall(r"[a-z/]+", message.lower()))
    return ("\n" not in message and len(message) <= CLEAR_MESSAGE_CHARS and "403" in message
            and bool(words & set(rule["verbs"])) and any(r in message for r in rule["resources"]))


def test_component_rules_are_enough(lab: Lab, rbac: None) -> None:
    apiconfig.set_rbac(lab, base_objects(lab) + apiconfig.rbac_objects([COMPONENT_RBAC]))
    assert host_pod_session(lab, pod_config(lab)) == ""


@pytest.mark.parametrize("index", range(len(component_rules())))
def test_each_component_rule_is_needed(lab: Lab, rbac: None, index: int) -> None:
    apiconfig.set_rbac(lab, base_objects(lab) + without_rule(index))
    failure = host_pod_session(lab, pod_config(lab))
    assert failure, f"removing rule {index} ({component_rules()[index]}) broke nothing"
    assert is_clear_403(failure, component_rules()[index]), failure


def test_ssh_deployment_needs_none_of_it(lab: Lab, rbac: None) -> None:
    apiconfig.set_rbac(lab, base_objects(lab))
    failure = host_pod_session(lab, pod_config(lab))
    # listing pods is allowed everywhere (calico-mtu names pods left on an old MTU); creating one is not
    assert "403" in failure and "create pod netcheck-host/" in failure, failure
    # the host-side probes and a pod probe: every kind of access an SSH deployment uses
    probes = ("masquerade", "ip-forward", "resolved-53", "pod-api", "kubelet-port")
    argv = [sys.executable, "-m", "bot.cli", "check", "--all", "--json"]
    argv += [arg for probe in probes for arg in ("--probe", probe)]
    proc = lab.run_ops(argv, timeout=CHECK_TIMEOUT_S)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    assert {r["access"]["path"] for r in reports} == {"ssh"}
    assert not [f for r in reports for f in r["findings"] if f["probe"] in ("ssh", "host-pod")]
    assert "forbidden" not in proc.stderr.lower()


def test_baseline_namespace_refuses_host_pods(lab: Lab, rbac: None) -> None:
    # RBAC would allow pods in the bot's namespace: Pod Security is what keeps host pods out of it
    apiconfig.set_rbac(lab, apiconfig.rbac_objects(apiconfig.rbac_files(lab)))
    failure = host_pod_session(lab, pod_config(lab, namespace="netcheck"))
    assert 'violates PodSecurity "baseline:latest"' in failure, failure
    assert "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)" in failure
    assert 'hostPath volumes (volume "host-root")' in failure
