"""Per-node files (/etc/netns/<ns>/...) and node processes (sshd, kubelet, DNS) of the lab.

Called by lab.cluster. Every process is started through `ip netns exec`, its PID written to
<state>/pids/<name>.pid, and ended by that PID at teardown. The host's own /etc is never written:
`ip netns exec` bind-mounts the entries of /etc/netns/<ns>/ over /etc for the node's processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from lab import netns, spec
from lab.spec import Layout, NodeSpec

SSHD = "/usr/sbin/sshd"
SSHD_PRIVSEP_DIR = Path("/run/sshd")
KUBELET_CONFIG_NAME = "kubelet-config.yaml"
PORT_WAIT_S = 15.0
PORT_POLL_S = 0.05
KILL_WAIT_S = 5.0
"""A killed PID 1 of a node first ends every process of its PID namespace; teardown waits for that."""
SYSCTL_DROPIN = "99-kubernetes.conf"
LAB_ROOT = Path(__file__).resolve().parent.parent


def node_dir(state: Path, node: str) -> Path:
    return state / "nodes" / node


def etc_dir(ns: str) -> Path:
    return netns.NETNS_ETC_DIR / ns


def kubelet_config_path(state: Path, node: str) -> Path:
    """Where the node's KubeletConfiguration lives (readable from the node's SSH session)."""
    return node_dir(state, node) / KUBELET_CONFIG_NAME


def hosts_text(nodes: list[NodeSpec], only: NodeSpec | None = None) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{n.ip}\t{n.name}" for n in nodes if only is None or n.name == only.name]
    return "\n".join(lines) + "\n"


def resolv_text(layout: Layout, nameserver: str | None = None) -> str:
    """A node's resolv.conf: the control plane's DNS responder (the LAN's DNS), unless told otherwise."""
    return f"nameserver {nameserver or layout.control_plane.ip}\nsearch {layout.cluster_domain}\n"


def kubelet_config_text(layout: Layout, resolv_conf: str = "/etc/resolv.conf") -> str:
    return ("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
            f"clusterDNS:\n- {layout.dns_service_ip}\nclusterDomain: {layout.cluster_domain}\n"
            f"resolvConf: {resolv_conf}\n")


def write_node_files(layout: Layout, ns: str, node: NodeSpec, nodes: list[NodeSpec], state: Path) -> None:
    etc = etc_dir(ns)
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text(hosts_text(nodes))
    (etc / "resolv.conf").write_text(resolv_text(layout))
    (etc / "hostname").write_text(node.name + "\n")
    shutil.copytree("/etc/alternatives", etc / "alternatives", symlinks=True, dirs_exist_ok=True)
    (etc / "systemd" / "system" / "multi-user.target.wants").mkdir(parents=True, exist_ok=True)
    (etc / "sysctl.d").mkdir(exist_ok=True)
    (etc / "sysctl.d" / SYSCTL_DROPIN).write_text("net.ipv4.ip_forward=1\n")
    (etc / "modules-load.d").mkdir(exist_ok=True)
    (etc / "modules-load.d" / "k8s.conf").write_text("overlay\nbr_netfilter\nvxlan\n")
    ndir = node_dir(state, node.name)
    ndir.mkdir(parents=True, exist_ok=True)
    kubelet_config_path(state, node.name).write_text(kubelet_config_text(layout))


def write_lan_host_files(layout: Layout, ns: str, nodes: list[NodeSpec]) -> None:
    """hosts and resolv.conf for the router and ops namespaces: node names resolve, DNS stays in the lab."""
    etc = etc_dir(ns)
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text(hosts_text(nodes))
    (etc / "resolv.conf").write_text(resolv_text(layout))


def write_pod_files(layout: Layout, ns: str) -> None:
    etc = etc_dir(ns)
    etc.mkdir(parents=True, exist_ok=True)
    domain = layout.cluster_domain
    (etc / "resolv.conf").write_text(
        f"nameserver {layout.dns_service_ip}\nsearch {spec.DEBUG_POD_NAMESPACE}.svc.{domain} "
        f"svc.{domain} {domain}\noptions ndots:5\n")


def start(state: Path, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    """Start a lab process detached, log to <state>/logs/<name>.log, record its PID."""
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / "pids").mkdir(parents=True, exist_ok=True)
    with open(state / "logs" / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=env, cwd=str(LAB_ROOT))
    (state / "pids" / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def stop(state: Path, name: str) -> None:
    pid_file = state / "pids" / f"{name}.pid"
    if not pid_file.exists():
        return
    kill_pid(int(pid_file.read_text().strip() or 0))
    pid_file.unlink(missing_ok=True)


def kill_pid(pid: int) -> None:
    if pid <= 1:
        return
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # not our child: wait (bounded) until the kernel has ended it
        deadline = time.monotonic() + KILL_WAIT_S
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(PORT_POLL_S)


def alive(pid: int) -> bool:
    """Running (a zombie left for an init that does not reap counts as gone: it holds nothing)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(LAB_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def wait_port(ns: str, host: str, port: int, timeout: float = PORT_WAIT_S) -> None:
    """Wait until `host:port` accepts TCP inside namespace `ns`."""
    probe = (f"import socket,sys,time\nend=time.time()+{timeout}\n"
             "while time.time()<end:\n"
             f"    try: socket.create_connection(('{host}',{port}),0.5).close(); sys.exit(0)\n"
             f"    except OSError: time.sleep({PORT_POLL_S})\nsys.exit(1)\n")
    proc = netns.ns_run(ns, [sys.executable, "-c", probe], check=False, timeout=timeout + 5)
    if proc.returncode != 0:
        raise netns.LabCommandError(f"{host}:{port} in {ns} did not accept within {timeout}s")


def make_client_keys(state: Path) -> None:
    ssh = state / "ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    key = ssh / "id_ed25519"
    if not key.exists():
        netns.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "netcheck-lab", "-f", str(key)])
    shutil.copy(ssh / "id_ed25519.pub", ssh / "authorized_keys")


def make_host_key(state: Path, node: NodeSpec) -> str:
    ndir = node_dir(state, node.name)
    key = ndir / "ssh_host_ed25519_key"
    netns.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node.name}", "-f", str(key)])
    pub = Path(str(key) + ".pub").read_text().split()
    return f"{node.name},{node.ip} {pub[0]} {pub[1]}"


ROOT_DOTFILES = ("/root/.bashrc", "/root/.profile", "/root/.bash_profile", "/root/.bash_login")


def sshd_config(state: Path, node: NodeSpec) -> Path:
    ndir = node_dir(state, node.name)
    cfg = ndir / "sshd_config"
    cfg.write_text("\n".join([
        "Port 22", "ListenAddress 0.0.0.0",
        f"HostKey {ndir / 'ssh_host_ed25519_key'}",
        f"PidFile {ndir / 'sshd.pid'}",
        "PermitRootLogin prohibit-password", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        f"AuthorizedKeysFile {state / 'ssh' / 'authorized_keys'}",
        "StrictModes no", "UsePAM no", "UseDNS no", "PrintMotd no",
        f"SetEnv LAB_NODE={node.name} LAB_STATE={state}",
        "Subsystem sftp internal-sftp",
    ]) + "\n")
    return cfg


def start_sshd(state: Path, ns: str, node: NodeSpec) -> None:
    """sshd inside the node (lab.nodeinit: its hostname, PID namespace, lab/bin over /usr/local/sbin)."""
    from lab import nodeinit  # nodeinit builds on this module

    SSHD_PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)  # what the openssh package's unit would create
    cfg = sshd_config(state, node)
    argv = nodeinit.node_argv(state, node.name, ns, [SSHD, "-D", "-e", "-f", str(cfg)])
    start(state, f"sshd-{node.name}", argv)


def start_kubelet(state: Path, ns: str, node: NodeSpec, cert: Path, key: Path) -> None:
    from lab import nodeinit

    # started by the name a real kubelet runs under (lab/bin/kubelet), as netcheck finds it on any node
    argv = [sys.executable, str(Path(__file__).parent / "bin" / "kubelet"), "--node", node.name,
            "--config", str(kubelet_config_path(state, node.name)),
            "--cert", str(cert), "--key", str(key), "--port", str(spec.KUBELET_PORT)]
    start(state, f"kubelet-{node.name}", nodeinit.node_argv(state, node.name, ns, argv), env=python_env())


def start_dns(state: Path, ns: str, name: str, listen: str, layout: Layout) -> None:
    """The lab's DNS responder on `listen`:53, answering the API service name with the layout's IP."""
    argv = [sys.executable, "-m", "lab.dns", "--listen", listen, "--port", "53",
            "--domain", layout.cluster_domain, "--api-service-ip", layout.api_service_ip]
    start(state, name, netns.exec_argv(ns, argv), env=python_env())
