"""The kustomize base: every file parses and validates (strict) against the Kubernetes schemas of the
newest release kubernetes-validate ships; the least-privilege RBAC is exactly the documented table
(no wildcards, no Secrets, pods created/read/exec'd only in the bot's namespace, elsewhere only
listed, names pinned where Kubernetes allows); the Deployment is hardened (non-root, read-only root,
no capabilities, seccomp, probes, resources, SSH Secret and ConfigMap mounted, Slack Secret as env,
POD_NAMESPACE from the downward API); the ConfigMap carries the documented keys and no namespace
(the bot's own comes from POD_NAMESPACE); the Service carries /metrics and the PodDisruptionBudget
selects the bot's pods; the kubectl rendering equals the documented fallback assembly (also in
another namespace).
"""

from __future__ import annotations

import yaml

from bot.ops.settings import OpsSettings
from tests.deploy.conftest import (
    KUSTOMIZE_DIR,
    assemble_kustomization,
    kustomize_in_namespace,
    load_all,
    tool,
    validate,
)

EXPECTED_RULES = {
    # (kind, namespace): sorted (apiGroups, resources, resourceNames, verbs)
    ("ClusterRole", None): [
        (("",), ("nodes",), (), ("list", "watch")),
        (("",), ("pods",), (), ("list",)),
        (("crd.projectcalico.org",), ("ippools",), (), ("list",)),
        (("operator.tigera.io",), ("installations",), ("default",), ("get", "patch")),
        (("operator.tigera.io",), ("tigerastatuses",), ("calico",), ("get",)),
    ],
    ("Role", "calico-system"): [
        (("apps",), ("daemonsets",), ("calico-node",), ("get",)),
    ],
    ("Role", "default"): [
        (("",), ("endpoints", "services"), ("kubernetes",), ("get",)),
    ],
    ("Role", "netcheck"): [
        (("",), ("pods",), (), ("create", "delete", "get", "list", "patch", "watch")),
        (("",), ("pods/exec",), (), ("create", "get")),
        (("",), ("pods/log",), (), ("get",)),
        (("coordination.k8s.io",), ("leases",), (), ("create",)),
        (("coordination.k8s.io",), ("leases",), (), ("get", "update")),
    ],
}

SERVICE_ACCOUNT = {"kind": "ServiceAccount", "name": "netcheck", "namespace": "netcheck"}


def rules_of(objects):
    found = {}
    for obj in objects:
        if obj["kind"] in ("Role", "ClusterRole"):
            key = (obj["kind"], obj["metadata"].get("namespace"))
            assert key not in found, f"two {key}"
            found[key] = sorted(
                (
                    tuple(sorted(r.get("apiGroups", []))),
                    tuple(sorted(r.get("resources", []))),
                    tuple(sorted(r.get("resourceNames", []))),
                    tuple(sorted(r["verbs"])),
                )
                for r in obj["rules"]
            )
    return found


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def test_every_file_parses_and_validates(k8s_version):
    files = sorted(KUSTOMIZE_DIR.glob("*.yaml"))
    expected = {"namespace.yaml", "rbac.yaml", "deployment.yaml", "secret-template.yaml"}
    assert {f.name for f in files} >= expected
    for path in files:
        if path.name == "kustomization.yaml":
            assert yaml.safe_load(path.read_text())["resources"]
            continue
        docs = load_all(path.read_text())
        assert docs, path
        for obj in docs:
            validate(obj, k8s_version)


def test_rendered_base_validates(kustomize_objects, k8s_version):
    kinds = sorted(o["kind"] for o in kustomize_objects)
    assert kinds == sorted(
        ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "Role", "Role",
         "RoleBinding", "RoleBinding", "RoleBinding", "ConfigMap", "Deployment", "Service",
         "PodDisruptionBudget"]
    )
    for obj in kustomize_objects:
        validate(obj, k8s_version)


def test_rbac_is_exactly_least_privilege(kustomize_objects):
    assert rules_of(kustomize_objects) == EXPECTED_RULES
    for kind, rules in rules_of(kustomize_objects).items():
        for groups, resources, _names, verbs in rules:
            assert "*" not in groups + resources + verbs, kind
            assert "secrets" not in resources, "the bot never reads Secrets through the API"
            assert not {"escalate", "bind", "impersonate"} & set(verbs)


def test_bindings_tie_roles_to_the_service_account(kustomize_objects):
    roles = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in kustomize_objects
             if o["kind"] in ("Role", "ClusterRole")}
    bindings = by_kind(kustomize_objects, "RoleBinding") + by_kind(kustomize_objects, "ClusterRoleBinding")
    assert len(bindings) == len(roles) == 4
    for binding in bindings:
        assert binding["subjects"] == [SERVICE_ACCOUNT]
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        assert (ref["kind"], ref["name"], namespace) in roles


def test_deployment_is_hardened(kustomize_objects):
    (deployment,) = by_kind(kustomize_objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["serviceAccountName"] == "netcheck"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # SIGKILL only after the drain, the unwinding and every cleanup up to the Lease's release
    assert pod["terminationGracePeriodSeconds"] > OpsSettings().shutdown_worst_case_s
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"requests", "limits"} <= set(container["resources"])
    assert container["envFrom"] == [{"secretRef": {"name": "netcheck-slack"}}]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["ssh"]["secret"]["secretName"] == "netcheck-ssh"
    assert mounts["ssh"]["readOnly"] is True
    assert volumes["config"]["configMap"]["name"] == "netcheck-config"
    assert "emptyDir" in volumes["tmp"]  # the only writable path under a read-only root
    assert container["image"] == "ghcr.io/netcheck/netcheck:0.1.0"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_service_and_disruption_budget(kustomize_objects):
    (deployment,) = by_kind(kustomize_objects, "Deployment")
    (service,) = by_kind(kustomize_objects, "Service")
    (pdb,) = by_kind(kustomize_objects, "PodDisruptionBudget")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"] == pdb["spec"]["selector"]["matchLabels"] == selector
    (metrics,) = service["spec"]["ports"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    health = {p["name"]: p["containerPort"] for p in container["ports"]}["health"]
    assert (metrics["name"], metrics["targetPort"]) == ("metrics", "health")
    config = yaml.safe_load(by_kind(kustomize_objects, "ConfigMap")[0]["data"]["config.yaml"])
    assert config["ops"]["health_port"] == health  # /metrics is served where the Service points
    assert pdb["spec"]["minAvailable"] == 1 < deployment["spec"]["replicas"]


def test_config_map_and_secret_template_match_the_deployment(kustomize_objects):
    (config_map,) = by_kind(kustomize_objects, "ConfigMap")
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert "kubeconfig" not in config and "context" not in config  # in-cluster credentials
    assert set(config["ssh"]) == {"user", "private_key", "known_hosts", "sudo"}
    assert config["ssh"]["private_key"].startswith("/etc/netcheck/ssh/")
    assert set(config["debug_pod"]) == {"image"}  # the namespace is the bot's own (POD_NAMESPACE)
    assert "@sha256:" in config["debug_pod"]["image"]  # pinned by digest
    assert set(config["slack"]) == {
        "approvers", "approver_group", "allow_self_approval", "proposal_ttl_minutes", "allowed_channels",
    }  # join_channel: unset (no summaries) until a channel ID is given
    assert config["slack"]["allow_self_approval"] is False
    template = load_all((KUSTOMIZE_DIR / "secret-template.yaml").read_text())
    secrets = {s["metadata"]["name"]: s for s in template}
    assert set(secrets["netcheck-slack"]["stringData"]) == {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
                                                           "SLACK_APP_TOKEN"}
    ssh_files = {config["ssh"][key].rsplit("/", 1)[1] for key in ("private_key", "known_hosts")}
    assert set(secrets["netcheck-ssh"]["stringData"]) == ssh_files


def test_fallback_assembly_equals_kubectl_kustomize(kustomize_objects, tmp_path):
    if tool("kubectl") is None:
        import pytest

        pytest.skip("kubectl not installed (deploy/tools/install-helm.sh): fallback assembly in use")

    def key(o):
        return (o["kind"], o["metadata"].get("namespace") or "", o["metadata"]["name"])

    assert sorted(assemble_kustomization(), key=key) == sorted(kustomize_objects, key=key)
    elsewhere = kustomize_in_namespace(tmp_path, "platform")  # kubectl
    assert sorted(assemble_kustomization(tmp_path / "kustomize"), key=key) == sorted(elsewhere, key=key)


def test_config_map_loads_with_the_bot_config_model(kustomize_objects, tmp_path):
    from bot import config as bot_config

    (config_map,) = by_kind(kustomize_objects, "ConfigMap")
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SLACK_APP_TOKEN": "xapp-1",
           "POD_NAMESPACE": "netcheck"}
    loaded = bot_config.load(path, env=env)
    assert loaded.kubeconfig is None  # in-cluster
    assert str(loaded.ssh.private_key) == "/etc/netcheck/ssh/id_ed25519"
    assert loaded.debug_pod.namespace == "netcheck"
    assert loaded.slack.app_token is not None  # the Secret's env reaches the Slack settings
    assert loaded.ops.lease_namespace == "netcheck"
    assert loaded.log_level == "info"  # leader_elected, serving, commands show in the pod's log
    elsewhere = bot_config.load(path, env={**env, "POD_NAMESPACE": "platform"})
    assert elsewhere.debug_pod.namespace == elsewhere.ops.lease_namespace == "platform"
    from lab.apiserver.auth import Request, User
    from lab.apiserver.rbac import RbacAuthorizer, service_account_groups, service_account_user

    bot = User(service_account_user("netcheck", "netcheck"), service_account_groups("netcheck"), False)
    rbac = RbacAuthorizer.from_manifests([o for o in kustomize_objects if "Role" in o["kind"]])
    for verb in ("get", "update"):  # the configured leader Lease and a node's fix lock
        for name in (loaded.ops.lease_name, "netcheck-fix-worker2"):
            request = Request(verb, "coordination.k8s.io", "leases", "", loaded.ops.lease_namespace, name)
            assert rbac.allows(bot, request), (verb, name)
