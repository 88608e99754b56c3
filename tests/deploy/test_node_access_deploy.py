"""The optional node-access pieces of the deployment: kustomize component/overlay and the chart's nodeAccess.

Covers: the overlay (deploy/overlays/node-access-pod) renders the base plus exactly the host pods'
namespace (Pod Security privileged), one Role with pods and pods/exec in it, its RoleBinding, the
config switch and an optional SSH Secret, and validates against the Kubernetes schema; the overlay's
config is the base's plus the two node-access keys (no drift) and loads as `node_access: pod`; the
chart with nodeAccess=pod renders the same objects as the overlay, and refuses an unknown mode; with
the defaults (SSH) neither the base nor the chart has any of it: no privileged namespace, nothing in
the host pods' namespace, no rule for pods outside the bot's namespace; decided by the RBAC matcher,
the host pod requests are allowed with the component and denied without it.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from lab.apiserver.auth import Request, User
from lab.apiserver.rbac import RbacAuthorizer, service_account_groups, service_account_user
from tests.deploy.conftest import CHART_DIR, DEPLOY, TOOL_TIMEOUT, load_all, run_tool, tool, validate
from tests.deploy.test_helm import keyed, normalize, render

OVERLAY = DEPLOY / "overlays" / "node-access-pod"
HOST_NS = "netcheck-host"
PSA = "pod-security.kubernetes.io/enforce"
BOT = User(service_account_user("netcheck", "netcheck"), service_account_groups("netcheck"), False)
HOST_POD_REQUESTS = [
    Request("list", "", "pods", "", HOST_NS, ""),
    Request("create", "", "pods", "", HOST_NS, ""),
    Request("get", "", "pods", "", HOST_NS, "netcheck-host-worker2-abc123"),
    Request("create", "", "pods", "exec", HOST_NS, "netcheck-host-worker2-abc123"),
    Request("get", "", "pods", "exec", HOST_NS, "netcheck-host-worker2-abc123"),
    Request("patch", "", "pods", "", HOST_NS, "netcheck-host-worker2-abc123"),
    Request("delete", "", "pods", "", HOST_NS, "netcheck-host-worker2-abc123"),
]


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = tool("kubectl")
    if path is None:
        pytest.skip("kubectl not installed: run deploy/tools/install-helm.sh")
    return path


@pytest.fixture(scope="module")
def overlay(kubectl: str) -> list[dict]:
    return load_all(run_tool(kubectl, "kustomize", str(OVERLAY)))


@pytest.fixture(scope="module")
def base(kubectl: str) -> list[dict]:
    return load_all(run_tool(kubectl, "kustomize", str(DEPLOY / "kubernetes")))


def config_of(objects: list[dict]) -> dict:
    return yaml.safe_load(keyed(objects)[("ConfigMap", "netcheck", "netcheck-config")]["data"]["config.yaml"])


def ssh_volume(objects: list[dict]) -> dict:
    deployment = keyed(objects)[("Deployment", "netcheck", "netcheck")]
    return {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}["ssh"]


def test_overlay_adds_exactly_the_node_access_pieces(overlay: list[dict], base: list[dict],
                                                    k8s_version: str) -> None:
    added = set(keyed(overlay)) - set(keyed(base))
    assert added == {("Namespace", None, HOST_NS), ("Role", HOST_NS, "netcheck-node-access"),
                     ("RoleBinding", HOST_NS, "netcheck-node-access")}
    objects = keyed(overlay)
    assert objects[("Namespace", None, HOST_NS)]["metadata"]["labels"][PSA] == "privileged"
    assert objects[("Namespace", None, "netcheck")]["metadata"]["labels"][PSA] == "baseline"
    rules = objects[("Role", HOST_NS, "netcheck-node-access")]["rules"]
    assert [(r["resources"], r["verbs"]) for r in rules] == [
        (["pods"], ["create", "get", "list", "watch", "patch", "delete"]), (["pods/exec"], ["create", "get"])]
    subjects = objects[("RoleBinding", HOST_NS, "netcheck-node-access")]["subjects"]
    assert subjects == [{"kind": "ServiceAccount", "name": "netcheck", "namespace": "netcheck"}]
    assert ssh_volume(overlay)["secret"]["optional"] is True and "optional" not in ssh_volume(base)["secret"]
    for obj in overlay:
        validate(obj, k8s_version)


def test_overlay_config_is_the_base_config_plus_node_access(overlay: list[dict], base: list[dict],
                                                            tmp_path) -> None:
    from bot import config as bot_config

    with_pod, without = config_of(overlay), config_of(base)
    assert {k: v for k, v in with_pod.items() if k not in ("node_access", "host_pod")} == without
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(with_pod))
    loaded = bot_config.load(path, env={})
    assert loaded.node_access == "pod" and loaded.host_pod.namespace == HOST_NS


def volumes_by_name(obj: dict) -> dict:
    """A kustomize patch moves the patched volume to the front: the order carries no meaning."""
    if obj["kind"] == "Deployment":
        pod = obj["spec"]["template"]["spec"]
        pod["volumes"] = sorted(pod["volumes"], key=lambda v: v["name"])
    return obj


def test_chart_node_access_pod_renders_the_overlay(helm: str, overlay: list[dict]) -> None:
    rendered = render(helm, "namespace.create=true", "nodeAccess=pod")
    chart = keyed(volumes_by_name(normalize(o)) for o in rendered)
    kustomized = keyed(volumes_by_name(normalize(o)) for o in overlay)
    assert sorted(chart, key=str) == sorted(kustomized, key=str)
    for key, obj in kustomized.items():
        assert chart[key] == obj, f"{key} differs between the chart and the overlay"


def test_chart_refuses_an_unknown_mode(helm: str) -> None:
    argv = [helm, "template", "netcheck", str(CHART_DIR), "--set", "nodeAccess=telnet"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False)
    # values.schema.json refuses it before the template's own `fail` would
    refused = "at '/nodeAccess': value must be one of 'ssh', 'pod', 'auto'"
    assert done.returncode != 0 and refused in done.stderr


def test_ssh_deployments_have_none_of_it(helm: str, base: list[dict]) -> None:
    for objects in (base, render(helm), render(helm, "namespace.create=true", "nodeAccess=ssh")):
        assert not [o for o in objects if HOST_NS in (o["metadata"].get("namespace"), o["metadata"]["name"])]
        assert not [o for o in objects if (o["metadata"].get("labels") or {}).get(PSA) == "privileged"]
        assert "node_access" not in config_of(objects) and "optional" not in ssh_volume(objects)["secret"]
        roles = [o for o in objects if o["kind"] in ("Role", "ClusterRole")]
        pod_rules = [(o["metadata"].get("namespace"), r) for o in roles
                     for r in o["rules"] if {"pods", "pods/exec"} & set(r["resources"])]
        # the one cluster-wide pod rule is calico-mtu's read-only list (pods left on an old MTU)
        cluster_wide = [r for ns, r in pod_rules if ns is None]
        assert all(r["verbs"] == ["list"] and r["resources"] == ["pods"] for r in cluster_wide), cluster_wide
        assert {ns for ns, _ in pod_rules if ns is not None} == {"netcheck"}
        authorizer = RbacAuthorizer.from_manifests(objects)
        writes = [r for r in HOST_POD_REQUESTS if r.verb != "list"]
        assert not [r for r in writes if authorizer.allows(BOT, r)]


def test_with_the_component_every_host_pod_request_is_allowed(overlay: list[dict]) -> None:
    authorizer = RbacAuthorizer.from_manifests(overlay)
    assert [r for r in HOST_POD_REQUESTS if not authorizer.allows(BOT, r)] == []
    outside = Request("create", "", "pods", "", "kube-system", "")
    assert not authorizer.allows(BOT, outside)
