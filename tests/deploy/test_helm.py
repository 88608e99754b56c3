"""The Helm chart, rendered by a real `helm template` (helm from deploy/tools/install-helm.sh).

Covers: `helm lint` passes; the default rendering and one with every value set validate (strict)
against the Kubernetes schemas; with the Namespace enabled, the chart renders the same objects as the
kustomize base (same kinds, names, namespaces, RBAC rules, Deployment spec, parsed config), apart from
Helm's own labels and the config checksum annotation; values reach the objects (approvers, channel,
debug image, SSH user/sudo, tokens into the Secrets, an existing Secret's name into the Deployment);
a token without a signing secret is refused by `required`.
"""

from __future__ import annotations

import copy
import subprocess

import yaml

from tests.deploy.conftest import CHART_DIR, TOOL_TIMEOUT, load_all, run_tool, validate

HELM_ONLY_LABELS = ("app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "helm.sh/chart")

FULL_VALUES = [
    "namespace.create=true",
    "slack.botToken=xoxb-test", "slack.signingSecret=sign", "slack.appToken=xapp-test",
    "slack.joinChannel=#infra", "slack.approvers={U0APPROVER,W0GRID}", "slack.approverGroup=S0GROUP",
    "slack.allowSelfApproval=true",
    "slack.allowedChannels={C0OPS}", "ssh.user=ops", "ssh.sudo=false",
    "ssh.privateKey=KEY", "ssh.knownHosts=worker1 ssh-ed25519 AAAA",
    "debugPod.image=registry.local/netshoot:1", "replicaCount=1",
]


def render(helm: str, *values: str) -> list[dict]:
    argv = [helm, "template", "netcheck", str(CHART_DIR), "--namespace", "netcheck"]
    for value in values:
        argv += ["--set", value]
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


def test_lint(helm):
    run_tool(helm, "lint", "--strict", str(CHART_DIR))


def test_renderings_validate(helm, k8s_version):
    for values in ([], FULL_VALUES):
        objects = render(helm, *values)
        assert objects
        for obj in objects:
            validate(obj, k8s_version)


def test_chart_renders_the_kustomize_objects(helm, kustomize_objects):
    chart = keyed(normalize(o) for o in render(helm, "namespace.create=true"))
    base = keyed(normalize(o) for o in kustomize_objects)
    assert sorted(chart, key=str) == sorted(base, key=str)
    for key, obj in base.items():
        assert chart[key] == obj, f"{key} differs between the chart and the kustomize base"


def test_values_reach_the_objects(helm):
    objects = keyed(render(helm, *FULL_VALUES))
    config = yaml.safe_load(objects[("ConfigMap", "netcheck", "netcheck-config")]["data"]["config.yaml"])
    assert config["slack"] == {
        "join_channel": "#infra", "approvers": ["U0APPROVER", "W0GRID"], "approver_group": "S0GROUP",
        "allow_self_approval": True,
        "proposal_ttl_minutes": 30, "allowed_channels": ["C0OPS"],
    }
    assert config["ssh"]["user"] == "ops" and config["ssh"]["sudo"] is False
    assert config["debug_pod"] == {"image": "registry.local/netshoot:1", "namespace": "netcheck"}
    slack = objects[("Secret", "netcheck", "netcheck-slack")]["stringData"]
    assert slack == {
        "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "sign", "SLACK_APP_TOKEN": "xapp-test"
    }
    ssh = objects[("Secret", "netcheck", "netcheck-ssh")]["stringData"]
    assert ssh == {"id_ed25519": "KEY", "known_hosts": "worker1 ssh-ed25519 AAAA"}
    assert objects[("Deployment", "netcheck", "netcheck")]["spec"]["replicas"] == 1


def test_rendered_config_loads_with_the_bot_config_model(helm, tmp_path):
    from bot import config as bot_config

    objects = keyed(render(helm, *FULL_VALUES))
    path = tmp_path / "config.yaml"
    path.write_text(objects[("ConfigMap", "netcheck", "netcheck-config")]["data"]["config.yaml"])
    loaded = bot_config.load(path, env={})
    assert loaded.slack.approvers == ["U0APPROVER", "W0GRID"] and loaded.slack.approver_group == "S0GROUP"
    assert loaded.ssh.sudo is False


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
