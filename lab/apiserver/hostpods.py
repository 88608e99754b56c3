"""Host pods (hostNetwork + hostPID) in the API stand-in: they run in their node's own namespaces.

A real kubelet starts such a pod's container in the node's network, PID and IPC namespaces, with its
own mount namespace holding the image and the pod's volumes (hostPath `/` at `/host`), and with the
capabilities of its securityContext. The lab does the same for a node that has its own init
(lab/nodeinit.py): `start` enters the init's namespaces with nsenter and runs lab/container.py in a
fresh private mount namespace, which builds the container root and execs the pod's command;
`exec_argv` enters that container (namespaces, root directory, capability bounding set) for
`kubectl exec`. So `nsenter -t 1 ...` inside a host pod reaches the node's init, never this
machine's PID 1: the node's PID 1 is checked before a container starts and before every exec, and
the container itself refuses to start if its /proc/1 were this machine's.

Called by lab/apiserver/pods.py (start, exec, delete) and app.py (shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import nodeinit

from .config import NodeConfig

CONTAINER_START_S = 20.0
"""Seconds the container may take to build its root and report `ready`."""
CONTAINER_STOP_S = 5.0
DEFAULT_CAPABILITIES = ("audit_write", "chown", "dac_override", "fowner", "fsetid", "kill", "mknod",
                        "net_bind_service", "net_raw", "setfcap", "setgid", "setpcap", "setuid", "sys_chroot")
"""What a container runtime (containerd, CRI-O) grants a non-privileged container by default."""
_CAPABILITY = re.compile(r"^[a-z_]{2,32}$")
_HOST_PATH = re.compile(r"^/[A-Za-z0-9_./-]*$")


class HostPodRefused(Exception):
    """The pod cannot run as a host pod here; the message becomes the container's waiting reason."""


@dataclass
class Container:
    starter: asyncio.subprocess.Process
    """The nsenter that started the container (our child: it reaps the container when it ends)."""
    pid: int
    """The container's main process, in this machine's PID numbering."""
    node: NodeConfig
    capabilities: str | None
    """Comma-separated bounding set; None: privileged (all capabilities)."""


def is_host_pod(pod: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return any(spec.get(key) for key in ("hostNetwork", "hostPID", "hostIPC"))


def _container_spec(pod: dict[str, Any]) -> dict[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or []
    if len(containers) != 1:
        raise HostPodRefused("the lab runs host pods with exactly one container")
    return containers[0]


def capabilities(container: dict[str, Any]) -> str | None:
    """The container's capability set as a runtime computes it (None when privileged)."""
    context = container.get("securityContext") or {}
    if context.get("privileged"):
        return None
    caps = context.get("capabilities") or {}
    drop = {str(c).lower().removeprefix("cap_") for c in caps.get("drop") or []}
    add = {str(c).lower().removeprefix("cap_") for c in caps.get("add") or []}
    kept = (set() if "all" in drop else set(DEFAULT_CAPABILITIES) - drop) | add
    bad = [c for c in kept if not _CAPABILITY.match(c)]
    if bad:
        raise HostPodRefused(f"unknown capability {bad[0]!r}")
    return ",".join(sorted(kept))


def host_paths(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """`SRC:DEST[:ro]` for every hostPath volume the container mounts (other volume kinds: none yet)."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    found = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name")) or {}
        source = (volume.get("hostPath") or {}).get("path")
        if source is None:
            continue
        dest = str(mount.get("mountPath", ""))
        if not (_HOST_PATH.match(source) and _HOST_PATH.match(dest)) or ".." in f"{source}/{dest}".split("/"):
            raise HostPodRefused(f"hostPath {source!r} at {dest!r}: not a plain absolute path")
        found.append(f"{source}:{dest}" + (":ro" if mount.get("readOnly") else ""))
    return found


def node_pid1(node: NodeConfig) -> int:
    """The node's init, checked (lab.nodeinit.checked_pid1): never this machine's PID namespace."""
    if node.host_pid1_file is None or node.host_netns is None:
        raise HostPodRefused(f"node {node.name} has no PID namespace of its own: host pods cannot run there")
    try:
        return nodeinit.checked_pid1(node.host_pid1_file, node.name, node.host_netns)
    except nodeinit.NodeInitError as exc:
        raise HostPodRefused(str(exc)) from exc


def _same_namespaces(pid: int, pid1: int, node: NodeConfig) -> bool:
    try:
        return (os.stat(f"/proc/{pid}/ns/pid").st_ino == os.stat(f"/proc/{pid1}/ns/pid").st_ino
                and os.stat(f"/proc/{pid}/ns/net").st_ino
                == os.stat(f"/run/netns/{node.host_netns}").st_ino)
    except OSError:
        return False


async def start(pod: dict[str, Any], node: NodeConfig, containers_dir: Path | None) -> Container:
    """Build and start the pod's container inside `node`; HostPodRefused with the reason otherwise."""
    spec = pod.get("spec") or {}
    if not (spec.get("hostNetwork") and spec.get("hostPID")):
        raise HostPodRefused("the lab runs host namespaces only together: hostNetwork and hostPID")
    if containers_dir is None:
        raise HostPodRefused("this API stand-in has no containers_dir: host pods cannot run")
    container = _container_spec(pod)
    command = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    if not command:
        raise HostPodRefused("the lab needs the container's command (it has no image entrypoints)")
    caps = capabilities(container)
    pid1 = node_pid1(node)
    argv = ["nsenter", "-t", str(pid1), "-m", "-u", "-i", "-n", "-p", "--",
            "unshare", "--mount", "--propagation", "private", "--",
            sys.executable, "-m", "lab.container", "--root", str(containers_dir),
            "--machine-pid-ns", str(os.stat("/proc/self/ns/pid").st_ino)]
    argv += ["--privileged"] if caps is None else ["--caps", caps]
    for volume in host_paths(pod, container):
        argv += ["--host-path", volume]
    starter = await asyncio.create_subprocess_exec(
        *argv, "--", *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    assert starter.stdout is not None and starter.stderr is not None
    try:
        async with asyncio.timeout(CONTAINER_START_S):
            line = await starter.stdout.readline()
            if line != b"ready\n":
                await starter.wait()
                why = (await starter.stderr.read()).decode(errors="replace").strip()
                last = why.splitlines()[-1] if why else f"container setup exited {starter.returncode}"
                raise HostPodRefused(last)
        pid = next(iter(nodeinit.children(starter.pid)), None)
        if pid is None or not _same_namespaces(pid, pid1, node):
            raise HostPodRefused("the container is not in the node's namespaces")
    except BaseException:
        await _end(starter, None)
        raise
    return Container(starter, pid, node, caps)


def exec_argv(container: Container, command: list[str]) -> list[str]:
    """`command` inside the running container, as `runc exec` would start it."""
    if container.starter.returncode is not None:
        raise HostPodRefused("the container is not running")
    pid1 = node_pid1(container.node)
    if not _same_namespaces(container.pid, pid1, container.node):
        raise HostPodRefused("the container is not in the node's namespaces")
    argv = ["nsenter", "-t", str(container.pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--"]
    if container.capabilities is not None:
        keep = "".join(f",+{cap}" for cap in container.capabilities.split(",") if cap)
        argv += ["setpriv", "--no-new-privs", f"--bounding-set=-all{keep}", "--"]
    return argv + command


async def _end(starter: asyncio.subprocess.Process, pid: int | None) -> None:
    for target in (pid, starter.pid):
        if target is not None and starter.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CONTAINER_STOP_S):
            await starter.wait()


async def stop(container: Container) -> None:
    """Kill the container's main process (what deleting the pod does); its starter reaps it."""
    await _end(container.starter, container.pid)
