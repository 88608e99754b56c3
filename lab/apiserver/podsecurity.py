"""Pod Security admission in the API stand-in: the namespace's `pod-security.kubernetes.io/enforce` level.

As the API server's built-in admission (k8s.io/pod-security-admission) does on pod create: a
namespace without the label is `privileged` (the default configuration); `baseline` refuses host
namespaces, hostPath volumes, privileged containers, capabilities beyond the default set and host
ports, with a 403 whose message names every violation the way the real one does:
`pods "x" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), ...`.
`restricted` is treated as `baseline` here (its extra rules are not emulated; netcheck's own pods
never rely on them). Called by app.py's pod create.
"""

from __future__ import annotations

from typing import Any

from .status import ApiError

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _subject(containers: list[str]) -> str:
    return f"{'container' if len(containers) == 1 else 'containers'} {_quoted(containers)}"


def baseline_violations(pod: dict[str, Any]) -> list[str]:
    """The baseline policy's failed checks, in the order the admission plugin reports them."""
    spec = pod.get("spec") or {}
    found = []
    bad_containers: list[str] = []
    bad_caps: set[str] = set()
    for container in _containers(spec):
        added = ((container.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
        bad = {str(c) for c in added if str(c).upper().removeprefix("CAP_") not in BASELINE_CAPABILITIES}
        if bad:
            bad_containers.append(container.get("name", ""))
            bad_caps |= bad
    if bad_containers:
        found.append(f"non-default capabilities ({_subject(bad_containers)} must not include "
                     f"{_quoted(sorted(bad_caps))} in securityContext.capabilities.add)")
    host = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    if host:
        found.append(f"host namespaces ({', '.join(host)})")
    host_paths = [v.get("name", "") for v in spec.get("volumes") or [] if "hostPath" in v]
    if host_paths:
        found.append(f"hostPath volumes ({'volume' if len(host_paths) == 1 else 'volumes'} "
                     f"{_quoted(host_paths)})")
    ports = [str(p["hostPort"]) for c in _containers(spec) for p in c.get("ports") or [] if p.get("hostPort")]
    if ports:
        found.append(f"hostPort ({'port' if len(ports) == 1 else 'ports'} {', '.join(ports)})")
    privileged = [c.get("name", "") for c in _containers(spec)
                  if (c.get("securityContext") or {}).get("privileged")]
    if privileged:
        found.append(f"privileged ({_subject(privileged)} must not set securityContext.privileged=true)")
    return found


def admit(namespace: dict[str, Any], pod: dict[str, Any]) -> None:
    """Raise the 403 the API server answers when the pod violates the namespace's enforced level."""
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    level = labels.get(ENFORCE_LABEL, "privileged")
    if level == "privileged":
        return
    violations = baseline_violations(pod)
    if not violations:
        return
    name = (pod.get("metadata") or {}).get("name", "")
    version = labels.get(VERSION_LABEL, "latest")
    message = f'pods "{name}" is forbidden: violates PodSecurity "{level}:{version}": {", ".join(violations)}'
    raise ApiError(403, "Forbidden", message, {"name": name, "kind": "pods"})
