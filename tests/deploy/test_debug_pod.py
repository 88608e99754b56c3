"""The debug pod's manifest (probes/transports/pod.py `pod_manifest`) as a cluster would judge it.

Covers: it validates (strict) against the Kubernetes Pod schema; hardened — no ServiceAccount token,
no service links, seccomp RuntimeDefault, no privilege escalation, read-only root (a small /tmp
emptyDir), every capability dropped but NET_RAW, requests and limits from the settings; it passes
the "baseline" Pod Security level the shipped namespace enforces (no host namespaces, no privileged
mode, added capabilities within baseline's list); the default image is pinned by digest and is the
one the chart and the kustomize base configure; image and resources are configurable; the lab's
API stand-in runs exec'd commands with exactly the capabilities the manifest grants.
"""

from __future__ import annotations

import re

import yaml

from lab.apiserver.capabilities import RUNTIME_DEFAULT, exec_prefix, granted
from probes.transports.pod import CAPABILITIES, DEFAULT_IMAGE, DebugPodSettings, pod_manifest
from tests.deploy.conftest import CHART_DIR, validate

BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT", "NET_RAW",
}
"""What the Pod Security "baseline" level lets a container add (kubernetes.io Pod Security Standards)."""
PINNED = re.compile(r"^[\w.\-/:]+@sha256:[0-9a-f]{64}$")


def manifest(**settings: object) -> dict:
    return pod_manifest("worker-7.example", DebugPodSettings(namespace="platform", **settings))


def test_manifest_validates_against_the_pod_schema(k8s_version):
    validate(manifest(), k8s_version)


def test_manifest_is_hardened():
    spec = manifest()["spec"]
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert container["resources"] == {"requests": {"cpu": "10m", "memory": "32Mi"},
                                      "limits": {"cpu": "200m", "memory": "128Mi"}}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}]


def test_manifest_meets_pod_security_baseline():
    spec = manifest()["spec"]
    assert not any(spec.get(key) for key in ("hostNetwork", "hostPID", "hostIPC"))
    for container in spec["containers"]:
        security = container.get("securityContext", {})
        assert not security.get("privileged")
        assert set(security["capabilities"]["add"]) <= BASELINE_CAPABILITIES
        assert not container.get("ports")  # no hostPort
    assert not [v for v in spec.get("volumes", []) if "hostPath" in v]


def test_default_image_is_pinned_and_shipped():
    assert PINNED.match(DEFAULT_IMAGE)
    assert DebugPodSettings().image == DEFAULT_IMAGE
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["debugPod"]["image"] == DEFAULT_IMAGE
    from tests.deploy.conftest import KUSTOMIZE_DIR, load_all

    (config_map,) = load_all((KUSTOMIZE_DIR / "configmap.yaml").read_text())
    assert yaml.safe_load(config_map["data"]["config.yaml"])["debug_pod"]["image"] == DEFAULT_IMAGE


def test_image_and_resources_are_configurable():
    (container,) = manifest(image="registry.local/tools:1", cpu_limit="1", memory_limit="256Mi")["spec"][
        "containers"]
    assert container["image"] == "registry.local/tools:1"
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "256Mi"}


def test_stand_in_grants_exactly_the_manifests_capabilities():
    (container,) = manifest()["spec"]["containers"]
    assert granted(container) == frozenset(CAPABILITIES)
    assert exec_prefix(container, as_root=True) == ["setpriv", "--bounding-set=-all,+net_raw", "--"]
    assert exec_prefix(container, as_root=False) == []  # an unprivileged stand-in has no capability
    assert granted({"name": "plain"}) == RUNTIME_DEFAULT  # no securityContext: the runtime's default set
    no_raw = {"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}
    assert granted(no_raw) == RUNTIME_DEFAULT - {"NET_RAW"}
    assert granted({"securityContext": {"privileged": True}}) is None
    assert exec_prefix({"securityContext": {"privileged": True}}, as_root=True) == []
