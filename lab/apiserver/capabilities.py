"""Linux capabilities of a container, as a container runtime would grant them, for pod exec.

A real runtime (runc under containerd/CRI-O) starts a non-privileged container with a default
capability set, minus `securityContext.capabilities.drop`, plus `add`; `privileged: true` gets them
all. The stand-in runs exec'd commands in the node's pod network namespace as root, so without this
every command would have every capability and a manifest that drops one the probes need would still
pass in the lab. `exec_prefix(container)` is the `setpriv` argv that limits the bounding set (and so,
for root, what any exec'd program can hold) to exactly what the spec grants. A stand-in not run as
root holds no capability to begin with (and may not change its bounding set): no prefix then.
"""

from __future__ import annotations

import os
from typing import Any

RUNTIME_DEFAULT = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
"""containerd's and CRI-O's default set for a container without capability changes."""


def _names(values: Any) -> set[str]:
    return {str(v).upper().removeprefix("CAP_") for v in values or []}


def granted(container: dict[str, Any]) -> frozenset[str] | None:
    """The container's capabilities; None for all of them (privileged, or add: [ALL])."""
    security = container.get("securityContext") or {}
    if security.get("privileged"):
        return None
    changes = security.get("capabilities") or {}
    drop, add = _names(changes.get("drop")), _names(changes.get("add"))
    if "ALL" in add:
        return None
    kept = set() if "ALL" in drop else RUNTIME_DEFAULT - drop
    return frozenset(kept | add)


def exec_prefix(container: dict[str, Any], *, as_root: bool | None = None) -> list[str]:
    """argv to put before the command so it runs with the container's capabilities only."""
    caps = granted(container)
    if caps is None or not (os.geteuid() == 0 if as_root is None else as_root):
        return []
    bounding = ",".join(["-all", *(f"+{name.lower()}" for name in sorted(caps))])
    return ["setpriv", f"--bounding-set={bounding}", "--"]
