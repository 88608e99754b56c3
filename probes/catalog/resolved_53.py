"""Probe `resolved-53`: no loopback DNS stub leaks into the resolv.conf kubelet gives pods and CoreDNS.

Run by the engine. What breaks clusters is not the listener on 127.0.0.53:53 (harmless by itself)
but CoreDNS forwarding to a loopback nameserver it inherited from kubelet's resolvConf, which
makes it query itself ("Loop ... detected", docs/calico.md#dns-loop). So the probe reads the kubelet
process of this node's network namespace, its `--resolv-conf` flag or its `--config` file's
`resolvConf:`, and that file's nameservers.
"""

from __future__ import annotations

import ipaddress
import re
import shlex

from probes.context import ProbeContext
from probes.model import Layer, ProbeResult, fail, ok, warn
from probes.registry import Explains, probe
from probes.transports.base import CommandResult, run_all
from probes.transports.commands import path, render

DEFAULT_RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_UPSTREAM_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
_LISTENERS = "ss -Hlntup 'sport = :53'"
# kubelet processes in this shell's network namespace (where nodes share a PID namespace, e.g. nodes
# run as containers of one host, `pgrep` also finds other nodes' kubelets). '[k]ubelet' keeps the
# script from matching itself.
_KUBELET = (
    'self=$(readlink /proc/self/ns/net); for p in $(pgrep -f "[k]ubelet"); do '
    '[ "$(readlink /proc/$p/ns/net 2>/dev/null)" = "$self" ] && tr "\\0" " " < /proc/$p/cmdline && echo; '
    "done"
)
_CAT = "cat {file}"
_NAMESERVER = re.compile(r"^\s*nameserver\s+(\S+)", re.MULTILINE)
_RESOLV_CONF_KEY = re.compile(r"^resolvConf:\s*[\"']?([^\"'\s#]+)", re.MULTILINE)


def is_kubelet(argv: list[str]) -> bool:
    """A `kubelet` binary, or a script named `kubelet` that an interpreter runs."""
    return any(t.rsplit("/", 1)[-1] == "kubelet" for t in argv[:2])


def flag(argv: list[str], name: str) -> str | None:
    """Value of `--name=V` or `--name V`."""
    for i, token in enumerate(argv):
        if token.startswith(f"{name}="):
            return token.split("=", 1)[1]
        if token == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


def loopback_nameservers(resolv_conf: str) -> list[str]:
    found = []
    for server in _NAMESERVER.findall(resolv_conf):
        try:
            if ipaddress.ip_address(server.split("%")[0]).is_loopback:
                found.append(server)
        except ValueError:
            continue  # not an address (a comment or garbage): resolvers ignore it too
    return found


def loopback_listeners(ss_output: str) -> list[str]:
    """Local addresses of :53 sockets bound to loopback (a stub such as systemd-resolved)."""
    stubs = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        address = fields[4].rsplit(":", 1)[0].strip("[]").split("%")[0]
        try:
            if ipaddress.ip_address(address).is_loopback:
                stubs.append(fields[4])
        except ValueError:
            continue  # "*" or an interface-bound wildcard: not a loopback stub
    return stubs


async def kubelet_resolv_conf(ctx: ProbeContext, procs: CommandResult,
                              evidence: list[str]) -> tuple[str, str | None]:
    """(resolv.conf path kubelet uses, its config file or None), from `procs` (what _KUBELET printed)
    and the kubelet config file; appends what it read to evidence."""
    timeout = ctx.settings.command_timeout
    argvs = [shlex.split(line) for line in procs.stdout.splitlines() if line.strip()]
    kubelet = next((argv for argv in argvs if is_kubelet(argv)), None)
    if kubelet is None:
        evidence.append(f"no kubelet process in this network namespace; assuming {DEFAULT_RESOLV_CONF}")
        return DEFAULT_RESOLV_CONF, None
    evidence.append("kubelet: " + " ".join(kubelet))
    if resolv := flag(kubelet, "--resolv-conf"):
        return resolv, flag(kubelet, "--config")
    config = flag(kubelet, "--config")
    if config is None:
        return DEFAULT_RESOLV_CONF, None
    text = await ctx.host.run(render(_CAT, file=path(config)), timeout=timeout)
    key = _RESOLV_CONF_KEY.search(text.stdout)
    found = key.group(0) if key else f"(none: default) {text.stderr}"
    evidence.append(f"$ grep resolvConf {config}\n{found}")
    return (key.group(1) if key else DEFAULT_RESOLV_CONF), config


# CoreDNS forwarding to itself loops, so pods' lookups fail.
@probe(id="resolved-53", layer=Layer.POD_APP, needs={"host"},
       explains=(Explains("pod-dns", only_when_failing=True),))
async def resolved_53(ctx: ProbeContext) -> ProbeResult:
    """The resolv.conf kubelet hands to pods and CoreDNS has no loopback stub nameserver (127.0.0.53).

    Runs `ss -Hlntup 'sport = :53'`, finds this namespace's kubelet process (`pgrep`, /proc/PID/
    cmdline), reads its `--resolv-conf` flag or its `--config` file's `resolvConf:` (default
    /etc/resolv.conf) and `cat`s that file. fail: it lists a loopback nameserver, so CoreDNS
    forwards to itself and loops ("Loop ... detected"). warn: only a loopback stub listens on :53
    (systemd-resolved; harmless alone). ok otherwise. Remediation: point kubelet's resolvConf at
    /run/systemd/resolve/resolv.conf (real upstreams) and restart kubelet and CoreDNS; or
    (docs/troubleshooting.md#local-dns-stub-on-port-53): stop and disable systemd-resolved and
    write a real nameserver to /etc/resolv.conf.
    """
    timeout = ctx.settings.command_timeout
    # the listeners and the kubelet process in one batch (one SSH channel, one round trip)
    listeners, procs = await run_all(ctx.host, [render(_LISTENERS), render(_KUBELET)], timeout=timeout)
    evidence = [f"$ {_LISTENERS}\n{listeners.output or '(no listener on :53)'}"]
    resolv_path, config = await kubelet_resolv_conf(ctx, procs, evidence)
    resolv = await ctx.host.run(render(_CAT, file=path(resolv_path)), timeout=timeout)
    evidence.append(f"$ cat {resolv_path}\n{resolv.output}")
    loops = loopback_nameservers(resolv.stdout)
    stubs = loopback_listeners(listeners.stdout)
    gentle = (f"sudo sed -i 's|^resolvConf:.*|resolvConf: {SYSTEMD_UPSTREAM_RESOLV_CONF}|' {config}"
              if config else f"start kubelet with --resolv-conf={SYSTEMD_UPSTREAM_RESOLV_CONF}")
    remediation = (
        f"Gentle (keeps systemd-resolved): on {ctx.node.name}, give kubelet the upstream servers:\n"
        f"{gentle}\nsudo systemctl restart kubelet\n"
        "kubectl -n kube-system rollout restart deployment coredns\n"
        "Or remove the stub (docs/troubleshooting.md#local-dns-stub-on-port-53):\n"
        "sudo systemctl stop systemd-resolved\nsudo systemctl disable systemd-resolved\n"
        "echo \"nameserver <your upstream DNS>\" | sudo tee /etc/resolv.conf\n"
        "sudo systemctl restart kubelet"
    )
    if loops:
        return fail(f"kubelet's resolvConf {resolv_path} lists loopback nameserver {', '.join(loops)}: "
                    "CoreDNS forwarding there loops", "\n".join(evidence), remediation)
    if stubs:
        return warn(f"a loopback DNS stub listens on {', '.join(stubs)} "
                    f"(kubelet's {resolv_path} does not use it)",
                    "\n".join(evidence), remediation)
    return ok(f"no loopback nameserver in kubelet's {resolv_path}, no loopback stub on :53",
              "\n".join(evidence))
