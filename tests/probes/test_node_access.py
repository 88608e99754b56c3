"""`node_access` (probes/transports/access.py, hostpod.py) and the engine's use of it, with fakes.

Covers: the choice per node (ssh, pod, per-node override; auto takes SSH only with a key file and the
node's host key in known_hosts and says what was missing otherwise, from real files); get/release
route to SSH or to the read-only / privileged host pods and release only what a get took; the host
pod manifests (read-only: not privileged, all capabilities dropped but four, / read-only at /host;
privileged only for the fix kind; pinned, tolerating every taint) validate against the Kubernetes
schema; the wrapped command hands the exact node command to `sh -c`; a report names its path, a host
pod that cannot start is a `host-pod` error finding with the reason and the host probes' skip says
"no host pod on"; the read-only host pod of a check is released at its end; `node_session`: outside
it a fix gets the read-only shell, inside a privileged session the privileged one (acquired once,
released at the end, never when unused).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import asyncssh
import pytest

from probes.engine import Engine, NodeAccessShells, Transports
from probes.errors import PodUnavailable
from probes.facts import ClusterFacts, NodeFacts
from probes.model import Access, AccessPath, Layer, Status, ok
from probes.registry import Registry, probe
from probes.settings import ProbeSettings
from probes.transports.access import NodeAccess, NodeAccessMode
from probes.transports.hostpod import READ_ONLY_CAPABILITIES, host_command, host_pod_manifest
from probes.transports.ssh import SSHPool, SSHSettings
from tests.deploy.conftest import validate
from tests.fakes import FakeCluster, FakeShell, HostPodRouter

NODE = NodeFacts(name="edge-1", internal_ip="10.20.0.5", ready=True)


class FakeHostPods:
    def __init__(self, kind: str, error: Exception | None = None) -> None:
        self.kind = kind
        self.error = error
        self.got: list[str] = []
        self.released: list[str] = []

    async def get(self, node: NodeFacts) -> FakeShell:
        self.got.append(node.name)
        if self.error is not None:
            raise self.error
        return FakeShell(node=f"{node.name}/{self.kind}")

    async def release(self, node: str) -> None:
        self.released.append(node)

    async def aclose(self) -> None:
        pass


def access(mode: str, tmp_path: Path, *, overrides: dict[str, str] | None = None,
           key: bool = True, known: str | None = "") -> tuple[NodeAccess, FakeHostPods, FakeHostPods]:
    """NodeAccess over real SSH settings files in tmp_path (`known`: known_hosts text, None: no file)."""
    settings: dict[str, object] = {"known_hosts": tmp_path / "known_hosts"}
    if key:
        private = asyncssh.generate_private_key("ssh-ed25519")
        (tmp_path / "id").write_bytes(private.export_private_key())
        settings["private_key"] = tmp_path / "id"
    if known is not None:
        (tmp_path / "known_hosts").write_text(known)
    read_only, privileged = FakeHostPods("read-only"), FakeHostPods("privileged")
    router = NodeAccess(NodeAccessMode(mode), {k: NodeAccessMode(v) for k, v in (overrides or {}).items()},
                        SSHPool(SSHSettings(**settings)), read_only, privileged)  # type: ignore[arg-type]
    return router, read_only, privileged


def host_key_line(host: str) -> str:
    public = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    return f"{host} {public[0]} {public[1]}\n"


def test_modes_and_overrides(tmp_path: Path) -> None:
    router, _, _ = access("ssh", tmp_path, overrides={"edge-1": "pod"})
    assert router.choose(NODE) == Access(path=AccessPath.HOST_POD, reason="node_access_overrides: pod")
    other = NODE.model_copy(update={"name": "core-1"})
    assert router.choose(other) == Access(path=AccessPath.SSH, reason="node_access: ssh")
    router, _, _ = access("pod", tmp_path)
    assert router.choose(NODE).path == AccessPath.HOST_POD


@pytest.mark.parametrize(
    ("key", "known", "path", "reason"),
    [
        (False, "", AccessPath.HOST_POD, "auto, no ssh.private_key configured"),
        (True, None, AccessPath.HOST_POD, "auto, known_hosts {kh} does not exist"),
        (True, "10.20.0.9 ", AccessPath.HOST_POD, "auto, no host key for 10.20.0.5 in known_hosts {kh}"),
        (True, "10.20.0.5 ", AccessPath.SSH, "auto, SSH key and host key configured"),
    ],
)
def test_auto_uses_ssh_only_where_key_and_host_key_are_configured(
    tmp_path: Path, key: bool, known: str | None, path: AccessPath, reason: str
) -> None:
    text = None if known is None else host_key_line(known.strip()) if known else ""
    router, _, _ = access("auto", tmp_path, key=key, known=text)
    chosen = router.choose(NODE)
    assert chosen == Access(path=path, reason="node_access: " + reason.format(kh=tmp_path / "known_hosts"))


def test_auto_names_a_missing_key_file(tmp_path: Path) -> None:
    router, _, _ = access("auto", tmp_path, known=host_key_line("10.20.0.5"))
    (tmp_path / "id").unlink()
    assert router.choose(NODE).reason == f"node_access: auto, SSH key {tmp_path / 'id'} does not exist"


async def test_get_and_release_route_by_path_and_kind(tmp_path: Path) -> None:
    router, read_only, privileged = access("pod", tmp_path)
    assert (await router.get(NODE)).node == "edge-1/read-only"
    assert (await router.get(NODE, privileged=True)).node == "edge-1/privileged"
    await router.release("edge-1", privileged=True)
    await router.release("edge-1", privileged=True)  # one get, one release: the second does nothing
    assert (privileged.released, read_only.released) == (["edge-1"], [])
    ssh_router, read_only, privileged = access("ssh", tmp_path)
    await ssh_router.release("edge-1")  # nothing was taken from a host pod pool
    assert read_only.got == read_only.released == privileged.released == []


def test_manifests_read_only_and_privileged(k8s_version: str) -> None:
    read_only = host_pod_manifest("edge-1.example", "registry.local/netshoot:1", "netcheck-host",
                                  privileged=False)
    privileged = host_pod_manifest("edge-1.example", "registry.local/netshoot:1", "netcheck-host",
                                   privileged=True)
    for manifest in (read_only, privileged):
        validate(manifest, k8s_version)
        spec = manifest["spec"]
        assert spec["nodeName"] == "edge-1.example" and spec["tolerations"] == [{"operator": "Exists"}]
        assert (spec["hostNetwork"], spec["hostPID"], spec["hostIPC"]) == (True, True, True)
        assert spec["volumes"] == [{"name": "host-root", "hostPath": {"path": "/", "type": "Directory"}}]
        (container,) = spec["containers"]
        assert container["image"] == "registry.local/netshoot:1"
        assert container["volumeMounts"] == [{"name": "host-root", "mountPath": "/host", "readOnly": True}]
        assert spec["automountServiceAccountToken"] is False
        assert "." not in manifest["metadata"]["name"]
    assert read_only["spec"]["containers"][0]["securityContext"] == {
        "privileged": False, "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": list(READ_ONLY_CAPABILITIES)}}
    assert read_only["metadata"]["labels"]["netcheck/host-access"] == "read-only"
    assert privileged["spec"]["containers"][0]["securityContext"] == {"privileged": True}
    assert privileged["metadata"]["labels"]["netcheck/host-access"] == "privileged"


def test_host_command_hands_the_exact_command_to_sh() -> None:
    command = "printf '%s' 'a b' > /etc/x; echo \"$HOME\""
    for privileged, prefix in ((True, ["exec", "nsenter", "--target", "1", "--mount", "--uts", "--ipc",
                                       "--net", "--pid", "--", "sh", "-c"]),
                               (False, ["exec", "nsenter", "--root=/host", "--wd=/host", "--", "sh", "-c"])):
        assert shlex.split(host_command(command, privileged=privileged)) == [*prefix, command]


def engine_with(shells: HostPodRouter) -> Engine:
    async def discover() -> ClusterFacts:
        return ClusterFacts(api_service_ip="10.96.0.1", nodes=[NODE])

    registry = Registry()

    @probe(id="on-host", layer=Layer.HOST_ROUTE, needs={"host"}, registry=registry)
    async def on_host(ctx):
        return ok(f"ran on {ctx.host.node}")

    transports = Transports(cluster=FakeCluster(), discover=discover, shells=shells)
    return Engine(transports=transports, settings=ProbeSettings(), registry=registry)


async def test_report_names_the_path_and_releases_the_read_only_pod() -> None:
    router = HostPodRouter()
    assert isinstance(router, NodeAccessShells)
    report = await engine_with(router).check("edge-1")
    assert report.access == Access(path=AccessPath.HOST_POD, reason="node_access: pod")
    assert report.finding("on-host").summary == "ran on edge-1/read-only"
    assert router.got == [("edge-1", False)] and router.released == [("edge-1", False)]


async def test_a_host_pod_that_cannot_start_is_a_host_pod_finding() -> None:
    reason = 'host pod netcheck-host/x not Running after 60 s (RunContainerError: no nsenter)'
    router = HostPodRouter(PodUnavailable(reason))
    report = await engine_with(router).check("edge-1")
    assert report.finding("on-host").status is Status.SKIP
    assert report.finding("on-host").summary == f"no host pod on edge-1: {reason}"
    transport = report.finding("host-pod")
    assert transport is not None and report.finding("ssh") is None
    assert transport.status is Status.ERROR
    assert transport.summary == f"host pod (node_access: pod) unavailable: {reason}"
    assert router.released == []  # nothing was acquired


async def test_node_session_gives_fixes_the_privileged_shell_only_inside() -> None:
    router = HostPodRouter()
    engine = engine_with(router)
    outside = await engine.node_shell("edge-1")
    assert outside.node == "edge-1/read-only"
    async with engine.node_session("edge-1", privileged=True):
        first = await engine.node_shell("edge-1")
        again = await engine.node_shell("edge-1")
        report = await engine.check("edge-1")  # a check inside a fix (verification) stays read-only
    assert first is again and first.node == "edge-1/privileged"
    assert report.finding("on-host").summary == "ran on edge-1/read-only"
    assert router.got == [("edge-1", False), ("edge-1", True), ("edge-1", False)]
    assert ("edge-1", True) in router.released
    released_before = list(router.released)
    async with engine.node_session("edge-1", privileged=True):
        pass  # never used: nothing to create, nothing to release
    assert router.released == released_before and router.got.count(("edge-1", True)) == 1
