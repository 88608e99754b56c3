"""The lab as one object: `Lab.up()`, `Lab.attach()`, `Lab.teardown()`, exec helpers, faults, ops.

Used by tests (tests/labfixtures.py), by `netcheck lab ...` (lab.cli) and by the demo. Every name
and address comes from the lab's Layout (lab.spec; its name is saved in the lab state, so `attach`
gets the same one back); prefix and state dir from NETCHECK_LAB_PREFIX / NETCHECK_LAB_STATE unless
given. Tests and the demo name nodes by role, never by name: `control_plane`, `wifi_node` (the
WiFi worker), `wired_worker` (the first worker that is not WiFi), `worker_nodes`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab import certs, netns, nodeinit, nodes, spec, topology
from lab.spec import Layout, NodeSpec

CLONE_NEWNET = 0x40000000
UP_PARALLELISM = 8
STATE_FILE = "lab.json"
API_START_WAIT_S = 20.0


def _lab_argv_env(state: Path, node: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{state / 'bin'}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    env["LAB_NODE"] = node
    env["LAB_STATE"] = str(state)
    return env


class Lab:
    """A running lab (built by `up` or found by `attach`)."""

    def __init__(self, prefix: str, state: Path, workers: int, admin_token: str, control_token: str,
                 readonly_token: str, layout: Layout = spec.DEFAULT) -> None:
        self.prefix = prefix
        self.state = state
        self.workers = workers
        self.layout = layout
        self.names = topology.Names(prefix)
        self.nodes: list[NodeSpec] = layout.nodes(workers)
        self.admin_token = admin_token
        self.control_token = control_token
        self.readonly_token = readonly_token

    # ---- nodes by role (tests and the demo never name a node)
    @property
    def control_plane(self) -> NodeSpec:
        """The control-plane node (it runs the API server and the cluster DNS)."""
        return self.nodes[0]

    @property
    def worker_nodes(self) -> list[NodeSpec]:
        return self.nodes[1:]

    @property
    def wifi_node(self) -> NodeSpec:
        """The WiFi worker (the case study's node); ValueError when the lab is too small to have one."""
        for n in self.worker_nodes:
            if n.wifi:
                return n
        raise ValueError(f"this {self.layout.name} lab with {self.workers} worker(s) has no WiFi node "
                         "(bring it up with --workers 2 or more)")

    @property
    def wired_worker(self) -> NodeSpec:
        """The first worker that is not on WiFi."""
        for n in self.worker_nodes:
            if not n.wifi:
                return n
        raise ValueError(f"this {self.layout.name} lab has no wired worker")

    # ---- names and paths
    @property
    def router_ns(self) -> str:
        return self.names.router

    @property
    def ops_ns(self) -> str:
        return self.names.ops

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ValueError(f"no node {name!r} in this lab (nodes: {', '.join(n.name for n in self.nodes)})")

    def ns(self, node: str) -> str:
        return self.names.node(self.node(node).name)

    def pod_ns(self, node: str) -> str:
        return self.names.pod(self.node(node).name)

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def readonly_kubeconfig(self) -> Path:
        return self.state / "kubeconfig-readonly"

    @property
    def config_file(self) -> Path:
        return self.state / "netcheck.yaml"

    @property
    def ssh_key(self) -> Path:
        return self.state / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state / "ssh" / "known_hosts"

    @property
    def ca_cert(self) -> Path:
        return self.state / "pki" / "netcheck-lab-ca.crt"

    @property
    def api_url(self) -> str:
        return f"https://{self.control_plane.ip}:{self.layout.api_port}"

    def kubelet_config(self, node: str) -> Path:
        return nodes.kubelet_config_path(self.state, self.node(node).name)

    # ---- lifecycle
    @classmethod
    def up(cls, workers: int = 2, layout: str = spec.DEFAULT_LAYOUT, *, prefix: str | None = None,
           state: Path | None = None) -> Lab:
        """Build a lab of `layout` (a name in lab.spec.LAYOUTS) with `workers` workers.

        Prefix and state dir default to NETCHECK_LAB_PREFIX / NETCHECK_LAB_STATE; two labs can run
        at once when neither prefix starts with the other.
        """
        chosen = spec.layout(layout)  # validates the name
        node_specs = chosen.nodes(workers)  # validates workers
        prefix, state = prefix or spec.prefix(), state or spec.state_dir()
        if netns.list_prefixed(prefix) or (state / STATE_FILE).exists():
            raise RuntimeError(f"a lab with prefix {prefix!r} already exists; run `netcheck lab down` first")
        lab = cls(prefix, state, workers, secrets.token_hex(16), secrets.token_hex(16), secrets.token_hex(16),
                  chosen)
        try:
            lab._build(node_specs)
        except BaseException:
            cls.teardown(prefix, state)
            raise
        return lab

    def _build(self, node_specs: list[NodeSpec]) -> None:
        state = self.state
        state.mkdir(parents=True, exist_ok=True)
        # Written first so teardown after a half-failed up knows what to remove.
        self._save_state()
        shutil.copytree(Path(__file__).parent / "bin", state / "bin", dirs_exist_ok=True)
        nodes.make_client_keys(state)
        ca = certs.make_ca(state / "pki")
        layout = self.layout
        topology.build_router(self.names, layout, node_specs)
        topology.build_ops(self.names, layout)
        nodes.write_lan_host_files(layout, self.names.ops, node_specs)
        nodes.write_lan_host_files(layout, self.names.router, node_specs)

        def build_one(node: NodeSpec) -> str:
            ns = self.names.node(node.name)
            nodes.write_node_files(layout, ns, node, node_specs, state)
            nodes.write_pod_files(layout, self.names.pod(node.name))
            topology.build_node(self.names, layout, node, node_specs)
            kubelet = certs.issue(ca, nodes.node_dir(state, node.name), "kubelet", ips=[node.ip],
                                  dns=[node.name])
            known = nodes.make_host_key(state, node)
            nodeinit.start_init(state, ns, node)  # sshd and kubelet run inside the node's own PID 1
            nodes.start_sshd(state, ns, node)
            nodes.start_kubelet(state, ns, node, kubelet.cert, kubelet.key)
            return known

        with ThreadPoolExecutor(UP_PARALLELISM) as pool:
            known_lines = list(pool.map(build_one, node_specs))
        self.known_hosts.write_text("\n".join(known_lines) + "\n")
        control_plane, cp_ns = self.control_plane, self.ns(self.control_plane.name)
        nodes.start_dns(state, cp_ns, f"dns-{control_plane.name}", control_plane.ip, layout)
        self._start_apiserver(ca)
        self._write_client_files()
        from lab import faults  # late import: faults uses Lab

        faults.apply_defaults(self)
        for node in node_specs:
            nodes.wait_port(self.names.node(node.name), "127.0.0.1", 22)
            nodes.wait_port(self.names.node(node.name), "127.0.0.1", spec.KUBELET_PORT)
        nodes.wait_port(cp_ns, control_plane.ip, 53)

    def _api_config(self, ca: certs.CertPair) -> dict[str, object]:
        from lab import apiconfig

        return apiconfig.build(self, ca)

    def _start_apiserver(self, ca: certs.CertPair) -> None:
        cfg_path = self.state / "apiserver.json"
        cfg_path.write_text(json.dumps(self._api_config(ca), indent=1))
        argv = [sys.executable, "-m", "lab.apiserver", "--config", str(cfg_path)]
        cp_ns = self.ns(self.control_plane.name)
        nodes.start(self.state, "apiserver", netns.exec_argv(cp_ns, argv), env=nodes.python_env())
        nodes.wait_port(cp_ns, self.control_plane.ip, self.layout.api_port, API_START_WAIT_S)

    def _write_client_files(self) -> None:
        from lab import apiconfig

        apiconfig.write_client_files(self)

    def _save_state(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / STATE_FILE).write_text(json.dumps({
            "prefix": self.prefix, "layout": self.layout.name, "workers": self.workers,
            "admin_token": self.admin_token,
            "control_token": self.control_token, "readonly_token": self.readonly_token,
        }))

    @classmethod
    def attach(cls, state: Path | None = None) -> Lab:
        """The running lab whose state is in `state` (default: NETCHECK_LAB_STATE), with its layout."""
        state = state or spec.state_dir()
        try:
            data = json.loads((state / STATE_FILE).read_text())
        except FileNotFoundError:
            raise RuntimeError(f"no lab running (no {state / STATE_FILE}); run `netcheck lab up`") from None
        return cls(data["prefix"], state, int(data["workers"]), data["admin_token"], data["control_token"],
                   data["readonly_token"], spec.layout(data.get("layout", spec.DEFAULT_LAYOUT)))

    @staticmethod
    def teardown(prefix: str | None = None, state: Path | None = None) -> None:
        """Remove every process, namespace, /etc/netns entry and state file of the lab. Idempotent."""
        prefix = prefix or spec.prefix()
        state = state or spec.state_dir()
        pid_dir = state / "pids"
        if pid_dir.is_dir():
            for pid_file in pid_dir.glob("*.pid"):
                with contextlib.suppress(ValueError):
                    nodes.kill_pid(int(pid_file.read_text().strip() or 0))
        for ns in netns.list_prefixed(prefix):
            for pid in netns.pids_in(ns):  # anything still running in a lab namespace is the lab's
                nodes.kill_pid(pid)
        for ns in netns.list_prefixed(prefix):
            netns.delete(ns)
        if netns.NETNS_ETC_DIR.is_dir():
            for entry in netns.NETNS_ETC_DIR.iterdir():
                if entry.name.startswith(prefix):
                    shutil.rmtree(entry, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)

    def down(self) -> None:
        Lab.teardown(self.prefix, self.state)

    def status(self) -> dict[str, object]:
        from lab import faults

        live = set(netns.list_prefixed(self.prefix))
        procs = {}
        for pid_file in sorted((self.state / "pids").glob("*.pid")):
            pid = int(pid_file.read_text().strip() or 0)
            procs[pid_file.stem] = {"pid": pid, "alive": nodes.alive(pid)}
        return {
            "prefix": self.prefix, "layout": self.layout.name, "state": str(self.state),
            "api_url": self.api_url,
            "nodes": [{"name": n.name, "role": n.role, "wifi": n.wifi, "ip": n.ip, "iface": n.iface,
                       "pod_cidr": n.pod_cidr, "pod_ip": n.pod_ip,
                       "netns": self.names.node(n.name), "up": self.names.node(n.name) in live}
                      for n in self.nodes],
            "processes": procs,
            "faults": {k: sorted(v) for k, v in faults.active(self).items()},
        }

    # ---- running things
    def node_exec(self, node: str, *argv: str, check: bool = False, input: str | None = None,
                  timeout: float = netns.COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        spec_ = self.node(node)
        return netns.run(netns.exec_argv(self.ns(node), argv), check=check, input=input, timeout=timeout,
                         env=_lab_argv_env(self.state, spec_.name))

    def pod_exec(self, node: str, *argv: str, check: bool = False, input: str | None = None,
                 timeout: float = netns.COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return netns.run(netns.exec_argv(self.pod_ns(node), argv), check=check, input=input, timeout=timeout)

    def router_exec(self, *argv: str, check: bool = False,
                    timeout: float = netns.COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return netns.run(netns.exec_argv(self.router_ns, argv), check=check, timeout=timeout)

    def ops_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["NETCHECK_CONFIG"] = str(self.config_file)
        return env

    def run_ops(self, argv: Sequence[str], *, check: bool = False, input: str | None = None,
                timeout: float = netns.COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return netns.run(netns.exec_argv(self.ops_ns, list(argv)), check=check, input=input, timeout=timeout,
                         env=self.ops_env())

    @contextlib.contextmanager
    def enter_ops(self) -> Iterator[None]:
        """Move this thread into the ops network namespace for the block (setns), then back."""
        libc = ctypes.CDLL(None, use_errno=True)
        original = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        target = os.open(str(netns.NETNS_RUN_DIR / self.ops_ns), os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the ops namespace failed")
            try:
                yield
            finally:
                if libc.setns(original, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")
        finally:
            os.close(target)
            os.close(original)

    # ---- faults and nodes
    def fault(self, name: str, node: str | None = None, on: bool = True) -> None:
        """Switch fault `name` on or off on `node` (default: the WiFi node)."""
        from lab import faults

        faults.set_fault(self, name, self.node(node).name if node else self.wifi_node.name, on)

    def active_faults(self) -> dict[str, set[str]]:
        from lab import faults

        return faults.active(self)

    def add_node(self, name: str, internal_ip: str, pod_cidr: str, *, ready: bool = True,
                 annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None,
                 pods_like: str | None = None) -> dict:
        """A node in the API only; `pods_like`: its debug pods run in that lab node's pod namespace."""
        from lab import apiconfig

        body = {"name": name, "internal_ip": internal_ip, "pod_cidr": pod_cidr, "ready": ready,
                "annotations": annotations or {}, "labels": labels or {"kubernetes.io/hostname": name}}
        if pods_like is not None:
            body |= {"pod_ip": self.node(pods_like).pod_ip, "pod_netns": self.pod_ns(pods_like)}
        return apiconfig.control(self, "POST", "/lab/v1/nodes", body)

    def remove_node(self, name: str) -> dict:
        from lab import apiconfig

        return apiconfig.control(self, "DELETE", f"/lab/v1/nodes/{name}")

    def set_ready(self, name: str, ready: bool) -> dict:
        from lab import apiconfig

        return apiconfig.control(self, "PUT", f"/lab/v1/nodes/{name}/ready", {"ready": ready})

    def hold_pods(self, name: str, reason: str | None) -> dict:
        """New pods on the node stay Pending, containers waiting with `reason` (None: start again)."""
        from lab import apiconfig

        return apiconfig.control(self, "PUT", f"/lab/v1/nodes/{name}/pods", {"hold": reason})

    def break_watches(self, resource: str, fail_next: int = 0, status: int = 500) -> dict:
        """End every open watch of `resource`; the next `fail_next` watch requests get `status`."""
        from lab import apiconfig

        return apiconfig.control(self, "POST", "/lab/v1/watches/break",
                                 {"resource": resource, "fail_next": fail_next, "status": status})
