"""The Helm chart, rendered by a real `helm template` (helm from deploy/tools/install-helm.sh).

Covers: `helm lint --strict` passes and values.schema.json makes an invalid values file fail (lint
and template); the default rendering and one with every value set validate (strict) against the
Kubernetes schemas; with the Namespace enabled the chart renders the same objects as the kustomize
base — in "netcheck" and in another namespace (docs/deploy.md's way for each) — apart from Helm's own
labels and the config checksum; a release in another namespace under another name: every object of
the bot in that namespace (the Role in "default" stays there), names from fullname (no collision
with a second release), the Lease name in the config equals the Role's resourceName; nameOverride /
fullnameOverride; instance labels and selectors; the Service (metrics always, Slack events in HTTP
mode), the PDB only with more than one replica, the ServiceMonitor only when enabled; image.tag
defaults to appVersion (digest optional); joinChannel unset by default; `config:` reaches every
configuration key and the result loads with the bot's config model; values reach the objects;
existing Secrets are referenced; a token without a signing secret is refused; docs/deploy.md's install
step 4, run as written with another namespace, renders the bot into that namespace (helm and kustomize).
"""

from __future__ import annotations

import copy
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from tests.deploy.conftest import (
    CHART_DIR,
    TOOL_TIMEOUT,
    kustomize_in_namespace,
    load_all,
    run_tool,
    validate,
)

HELM_ONLY_LABELS = ("app.kubernetes.io/managed-by", "app.kubernetes.io/version", "helm.sh/chart")
CRD_KINDS = {"ServiceMonitor"}
"""Kinds kubernetes-validate has no schema for (CustomResourceDefinitions): checked by hand."""

FULL_VALUES = [
    "namespace.create=true",
    "slack.botToken=xoxb-test", "slack.signingSecret=sign", "slack.appToken=xapp-test",
    "slack.joinChannel=C0INFRA", "slack.approvers={U0APPROVER,W0GRID}", "slack.approverGroup=S0GROUP",
    "slack.allowSelfApproval=true",
    "slack.allowedChannels={C0OPS}", "ssh.user=ops", "ssh.sudo=false",
    "ssh.privateKey=KEY", "ssh.knownHosts=worker1 ssh-ed25519 AAAA",
    "debugPod.image=registry.local/netshoot:1", "replicaCount=1", "metrics.serviceMonitor.enabled=true",
    "slack.httpMode=true", "image.digest=sha256:" + "ab" * 32, "logLevel=debug",
    "podAnnotations.team=ops", "nodeSelector.kubernetes\\.io/os=linux",
    "priorityClassName=system-cluster-critical",
]

INVALID_VALUES = {
    "join channel by name": {"slack": {"joinChannel": "#k8s-ops"}},
    "unknown top-level key": {"replicas": 2},
    "replicas not a number": {"replicaCount": "two"},
    "approver not a user ID": {"slack": {"approvers": ["alice"]}},
    "unknown log level": {"logLevel": "verbose"},
}


def render(helm: str, *values: str, namespace: str = "netcheck", release: str = "netcheck",
           values_file: Path | None = None) -> list[dict]:
    argv = [helm, "template", release, str(CHART_DIR), "--namespace", namespace]
    for value in values:
        argv += ["--set", value]
    if values_file is not None:
        argv += ["--values", str(values_file)]
    return load_all(run_tool(*argv))


def normalize(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    labels = obj["metadata"].get("labels", {})
    for key in HELM_ONLY_LABELS:
        labels.pop(key, None)
    if obj["kind"] == "Deployment":
        obj["spec"]["template"]["metadata"].pop("annotations", None)
    if obj["kind"] == "ConfigMap":
        obj["data"] = {k: yaml.safe_load(v) for k, v in obj["data"].items()}
    return obj


def keyed(objects):
    return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}


def config_of(objects) -> dict:
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"]
    return yaml.safe_load(config_map["data"]["config.yaml"])


def test_lint(helm):
    out = run_tool(helm, "lint", "--strict", str(CHART_DIR))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("case", sorted(INVALID_VALUES))
def test_invalid_values_fail_lint_and_template(helm, tmp_path, case):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(INVALID_VALUES[case]))
    for argv in ([helm, "lint", "--strict", str(CHART_DIR), "--values", str(values)],
                 [helm, "template", "netcheck", str(CHART_DIR), "--values", str(values)]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False)
        assert done.returncode != 0, f"{case}: {' '.join(argv[:2])} accepted it"
        assert "values don't meet the specifications of the schema" in done.stderr + done.stdout


def test_renderings_validate(helm, k8s_version):
    for values in ([], FULL_VALUES):
        objects = render(helm, *values)
        assert objects
        for obj in objects:
            if obj["kind"] not in CRD_KINDS:
                validate(obj, k8s_version)


def test_chart_renders_the_kustomize_objects(helm, kustomize_objects):
    chart = keyed(normalize(o) for o in render(helm, "namespace.create=true"))
    base = keyed(normalize(o) for o in kustomize_objects)
    assert sorted(chart, key=str) == sorted(base, key=str)
    for key, obj in base.items():
        assert chart[key] == obj, f"{key} differs between the chart and the kustomize base"


def test_chart_and_kustomize_agree_in_another_namespace(helm, tmp_path):
    chart = keyed(normalize(o) for o in render(helm, "namespace.create=true", namespace="platform"))
    base = keyed(normalize(o) for o in kustomize_in_namespace(tmp_path, "platform"))
    assert sorted(chart, key=str) == sorted(base, key=str)
    for key, obj in base.items():
        assert chart[key] == obj, f"{key} differs between the chart and the kustomize base in platform"


def bot_objects_are_in(objects: list[dict], namespace: str, service_account: str) -> None:
    """Every namespaced object of the bot in `namespace`; only the read-only Roles/Bindings for the API
    endpoints (default) and calico-node (calico-system) elsewhere; every ServiceAccount subject is the
    bot's, in `namespace`."""
    for obj in objects:
        kind, meta = obj["kind"], obj["metadata"]
        if kind in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert "namespace" not in meta, kind
        elif meta["name"].endswith("-apiserver-endpoints"):
            assert meta["namespace"] == "default"
        elif meta["name"].endswith("-calico-node"):
            assert meta["namespace"] == "calico-system"
        else:
            assert meta["namespace"] == namespace, (kind, meta["name"], meta.get("namespace"))
        for subject in obj.get("subjects", []):
            assert subject == {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
    (namespace_object,) = [o for o in objects if o["kind"] == "Namespace"]
    assert namespace_object["metadata"]["name"] == namespace


def test_another_namespace_and_release_name(helm, tmp_path):
    objects = render(helm, "namespace.create=true", namespace="platform", release="ops")
    bot_objects_are_in(objects, "platform", "ops-netcheck")
    bot_objects_are_in(kustomize_in_namespace(tmp_path, "platform"), "platform", "netcheck")
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("ClusterRole", "ops-netcheck") in names and ("Role", "ops-netcheck-apiserver-endpoints") in names
    config = config_of(objects)
    assert "namespace" not in config.get("debug_pod", {}) and "lease_namespace" not in config.get("ops", {})
    assert config["ops"]["lease_name"] == "ops-netcheck-leader"  # two releases never share a leader
    from lab.apiserver.auth import Request, User
    from lab.apiserver.rbac import RbacAuthorizer, service_account_groups, service_account_user

    bot = User(service_account_user("platform", "ops-netcheck"), service_account_groups("platform"), False)
    rbac = RbacAuthorizer.from_manifests(objects)
    for verb in ("get", "update"):
        lease = Request(verb, "coordination.k8s.io", "leases", "", "platform", "ops-netcheck-leader")
        assert rbac.allows(bot, lease)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # a second release beside the first: no object shares kind, namespace and name with it
    first = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in render(helm)}
    second = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
              for o in render(helm, release="second")}
    assert first & second == set()


def test_name_overrides_and_instance_labels(helm):
    objects = render(helm, "nameOverride=probe", release="team")
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] == "team-probe"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "probe", "app.kubernetes.io/instance": "team",
                        "app.kubernetes.io/component": "bot"}
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "team"
    objects = render(helm, "fullnameOverride=nc", release="team")
    assert {o["metadata"]["name"] for o in objects if o["kind"] in ("Deployment", "ServiceAccount")} == {"nc"}


def test_service_pdb_and_service_monitor(helm):
    objects = keyed(render(helm))
    service = objects[("Service", "netcheck", "netcheck")]
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("metrics", 8080, "health")]
    deployment = objects[("Deployment", "netcheck", "netcheck")]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    pdb = objects[("PodDisruptionBudget", "netcheck", "netcheck")]
    assert pdb["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert ("ServiceMonitor", "netcheck", "netcheck") not in objects

    objects = keyed(render(helm, "replicaCount=1", "slack.httpMode=true",
                           "metrics.serviceMonitor.enabled=true"))
    assert not [key for key in objects if key[0] == "PodDisruptionBudget"]
    ports = objects[("Service", "netcheck", "netcheck")]["spec"]["ports"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in ports] == [
        ("metrics", 8080, "health"), ("slack-events", 3000, "slack-events")]
    container = objects[("Deployment", "netcheck", "netcheck")]["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "slack-events": 3000}
    assert container["args"] == ["--port", "3000"]
    monitor = objects[("ServiceMonitor", "netcheck", "netcheck")]
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    assert monitor["spec"]["selector"]["matchLabels"] == objects[("Service", "netcheck", "netcheck")][
        "spec"]["selector"]


def test_image_tag_defaults_to_app_version_and_takes_a_digest(helm):
    app_version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]

    def image(*values: str) -> str:
        (deployment,) = [o for o in render(helm, *values) if o["kind"] == "Deployment"]
        return deployment["spec"]["template"]["spec"]["containers"][0]["image"]

    assert image() == f"ghcr.io/netcheck/netcheck:{app_version}"
    assert image("image.tag=9.9") == "ghcr.io/netcheck/netcheck:9.9"
    digest = "sha256:" + "0f" * 32
    assert image(f"image.digest={digest}") == f"ghcr.io/netcheck/netcheck:{app_version}@{digest}"


def test_join_channel_is_off_by_default(helm):
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["slack"]["joinChannel"] == ""
    assert "join_channel" not in config_of(render(helm))["slack"]


def leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every configuration key, as a path, from the config model itself."""
    paths = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += leaves(annotation, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


SAMPLE = {  # a value for every key whose default is None (None would not show it arrived)
    ("kubeconfig",): "/etc/netcheck/kubeconfig", ("context",): "prod",
    ("ssh", "private_key"): "/etc/netcheck/ssh/key", ("slack", "bot_token"): "xoxb-1",
    ("slack", "signing_secret"): "s", ("slack", "app_token"): "xapp-1",
    ("slack", "api_url"): "https://slack.internal/api/", ("slack", "join_channel"): "C0JOIN",
    ("slack", "approver_group"): "S0OPS", ("slack", "probes"): ["pod-api"],
    ("cluster", "service_cidr"): "10.43.0.0/16", ("cluster", "pod_cidr"): "10.42.0.0/16",
    ("cluster", "api_service_ip"): "10.43.0.1", ("cluster", "api_service_port"): 443,
    ("cluster", "dns_service_ip"): "10.43.0.10",
    ("host_pod", "image"): "registry.local/tools/nsenter@sha256:" + "1f" * 32,
    ("probes", "reference_node"): "worker1",
    ("watch", "interval"): 300.0, ("watch", "channel"): "C0WATCH", ("watch", "probes"): ["pod-api"],
}


def test_config_passthrough_reaches_every_key(helm, tmp_path):
    from bot.config import Config, load

    defaults = Config().model_dump(mode="json")
    wanted: dict[str, Any] = {}
    for path in leaves(Config):
        value = SAMPLE.get(path, defaults)
        if path not in SAMPLE:
            for part in path:
                value = value[part]
        assert value is not None, f"give {'.'.join(path)} a SAMPLE value"
        node = wanted
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"config": wanted}))
    config = config_of(render(helm, values_file=values))
    missing = []
    for path in leaves(Config):
        got, want = config, wanted
        for part in path:
            got, want = (got or {}).get(part), want[part]
        if got != want:
            missing.append((".".join(path), got, want))
    assert missing == []  # `config:` wins over the chart's own values (ssh.user, debug_pod.image, …)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert load(path, env={}).slack.join_channel == "C0JOIN"


def test_values_reach_the_objects(helm):
    objects = keyed(render(helm, *FULL_VALUES))
    config = config_of(objects.values())
    assert config["slack"] == {
        "join_channel": "C0INFRA", "approvers": ["U0APPROVER", "W0GRID"], "approver_group": "S0GROUP",
        "allow_self_approval": True,
        "proposal_ttl_minutes": 30, "allowed_channels": ["C0OPS"],
    }
    assert config["ssh"]["user"] == "ops" and config["ssh"]["sudo"] is False
    assert config["debug_pod"] == {"image": "registry.local/netshoot:1"}
    assert config["log_level"] == "debug"
    slack = objects[("Secret", "netcheck", "netcheck-slack")]["stringData"]
    assert slack == {
        "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "sign", "SLACK_APP_TOKEN": "xapp-test"
    }
    ssh = objects[("Secret", "netcheck", "netcheck-ssh")]["stringData"]
    assert ssh == {"id_ed25519": "KEY", "known_hosts": "worker1 ssh-ed25519 AAAA"}
    pod = objects[("Deployment", "netcheck", "netcheck")]["spec"]
    assert pod["replicas"] == 1
    assert pod["template"]["metadata"]["annotations"]["team"] == "ops"
    assert pod["template"]["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_rendered_config_loads_with_the_bot_config_model(helm, tmp_path):
    from bot import config as bot_config

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_of(render(helm, *FULL_VALUES))))
    loaded = bot_config.load(path, env={"POD_NAMESPACE": "platform"})
    assert loaded.slack.approvers == ["U0APPROVER", "W0GRID"] and loaded.slack.approver_group == "S0GROUP"
    assert loaded.ssh.sudo is False
    assert loaded.debug_pod.namespace == loaded.ops.lease_namespace == "platform"  # from the Deployment's env


def test_existing_secrets_are_referenced_not_rendered(helm):
    objects = render(helm, "slack.existingSecret=team-slack", "ssh.existingSecret=team-ssh")
    assert not [o for o in objects if o["kind"] == "Secret"]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "team-slack"}}]
    assert {v["name"]: v for v in pod["volumes"]}["ssh"]["secret"]["secretName"] == "team-ssh"


def test_token_without_signing_secret_is_refused(helm):
    argv = [helm, "template", "netcheck", str(CHART_DIR), "--set", "slack.botToken=xoxb-test"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False)
    assert done.returncode != 0
    assert "slack.signingSecret is required" in done.stderr


def install_apply_commands() -> list[str]:
    """The shell commands of docs/deploy.md's install step 4 ("Apply"), continuation lines joined."""
    page = (CHART_DIR.parents[2] / "docs" / "deploy.md").read_text()
    step = page[page.index("4. **Apply**"):]
    block = step[step.index("```sh") + len("```sh"):step.index("```", step.index("```sh") + 5)]
    text = block.replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_install_commands_work_for_another_namespace(helm, tmp_path):
    """Step 4 as written, with NS=platform: the helm command (as `helm template`) and the kustomize
    commands (the sed on a copy of the base, then `kubectl kustomize` for `kubectl apply -k`)."""
    from tests.deploy.conftest import KUSTOMIZE_DIR, render_kustomize

    commands = install_apply_commands()
    (helm_line,) = [c for c in commands if c.startswith("helm install")]
    argv = shlex.split(helm_line.replace('"$NS"', "platform"))
    assert argv[:4] == ["helm", "install", "netcheck", "deploy/helm/netcheck"]
    done = subprocess.run([helm, "template", *argv[2:]], capture_output=True, text=True,
                          cwd=CHART_DIR.parents[2], timeout=TOOL_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    objects = load_all(done.stdout)
    bot_objects_are_in([*objects, {"kind": "Namespace", "metadata": {"name": "platform"}}],
                       "platform", "netcheck")
    assert config_of(objects)["slack"]["join_channel"].startswith("C")

    (sed_line,) = [c for c in commands if c.startswith("sed ")]
    assert "kubectl apply -k deploy/kubernetes" in commands
    shutil.copytree(KUSTOMIZE_DIR, tmp_path / "deploy" / "kubernetes")
    ran = subprocess.run(["bash", "-c", f"NS=platform; {sed_line}"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=TOOL_TIMEOUT, check=False)
    assert ran.returncode == 0, ran.stderr
    bot_objects_are_in(render_kustomize(tmp_path / "deploy" / "kubernetes"), "platform", "netcheck")


def test_node_access_overlay_and_chart_follow_the_namespace(helm, tmp_path):
    """With host pods (overlay / nodeAccess=pod) in another namespace, the node-access RoleBinding
    still names the bot's ServiceAccount where it runs."""
    from tests.deploy.conftest import DEPLOY, render_kustomize

    shutil.copytree(DEPLOY, tmp_path / "deploy")
    namespace_file = tmp_path / "deploy" / "kubernetes" / "namespace.yaml"
    text = namespace_file.read_text()
    namespace_file.write_text(text.replace("  name: netcheck\n", "  name: platform\n", 1))
    for objects, account in (
        (render_kustomize(tmp_path / "deploy" / "overlays" / "node-access-pod"), "netcheck"),
        (render(helm, "nodeAccess=pod", namespace="platform", release="ops"), "ops-netcheck"),
    ):
        (binding,) = [o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"].endswith(
            "node-access")]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "platform"}]
        assert config_of(objects)["node_access"] == "pod"
        host = [o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == "netcheck-host"]
        assert host and host[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
