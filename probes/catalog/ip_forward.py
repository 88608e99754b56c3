"""Probe `ip-forward`: the node forwards IPv4 (and IPv6 where it has global IPv6), persistently.

Run by the engine. The persisted value is computed the way systemd-sysctl/procps apply files:
sysctl.d files from /usr/lib, /lib, /run and /etc ordered by file name (a name in /etc hides the
same name in /run or /usr/lib), then /etc/sysctl.conf; the last assignment wins.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from probes.context import ProbeContext
from probes.model import FixProposal, Layer, ProbeResult, fail, ok, warn
from probes.observations import Observations
from probes.registry import Explains, probe
from probes.transports.commands import render

_RUNTIME = "sysctl net.ipv4.ip_forward"
_RUNTIME_V6 = "sysctl net.ipv6.conf.all.forwarding"
# read for node diffs: a strict rp_filter drops replies that come back on another interface
_RP_FILTER = "sysctl net.ipv4.conf.all.rp_filter"
_GLOBAL_V6 = "ip -6 -o addr show scope global"
_SYSCTL_DIRS = ("/usr/lib/sysctl.d", "/lib/sysctl.d", "/run/sysctl.d", "/etc/sysctl.d")  # low → high
_PERSISTED = (
    r"grep -HsE '^[[:space:]]*net[./]ipv(4[./]ip_forward|6[./]conf[./]all[./]forwarding)[[:space:]]*=' "
    + " ".join(f"{d}/*.conf" for d in _SYSCTL_DIRS) + " /etc/sysctl.conf"
)
PERSIST_FILE = "/etc/sysctl.d/99-netcheck-ip-forward.conf"
"""Where forwarding is persisted: the remediation names it and the `ip-forward` fix writes it."""
PERSIST_LINE = "net.ipv4.ip_forward = 1"
PERSISTED_COMMAND = _PERSISTED
"""Read-only: every forwarding assignment a boot (`sysctl --system`) would apply; `persisted_values`."""
_ASSIGN = re.compile(r"^(?P<file>[^:]+):\s*(?P<key>[^=\s]+)\s*=\s*(?P<value>\S+)")
_KEYS = {"ipv4": "net.ipv4.ip_forward", "ipv6": "net.ipv6.conf.all.forwarding"}


def _file_order(path: str) -> tuple[int, str, int]:
    """Sort key: sysctl.d files by name (higher-priority dir wins a name), /etc/sysctl.conf last."""
    p = PurePosixPath(path)
    if path == "/etc/sysctl.conf":
        return (1, "", 0)
    return (0, p.name, _SYSCTL_DIRS.index(str(p.parent)) if str(p.parent) in _SYSCTL_DIRS else 0)


def persisted_values(grep_output: str) -> dict[str, tuple[str, str]]:
    """{key: (value, file)} as applied at boot, from `grep -H` lines over the sysctl files."""
    by_name: dict[str, list[tuple[str, str, str]]] = {}
    for line in grep_output.splitlines():
        m = _ASSIGN.match(line)
        if m:
            key = m["key"].replace("/", ".")
            by_name.setdefault(m["file"], []).append((key, m["value"], m["file"]))
    # A file name in a higher-priority directory hides the same name elsewhere.
    winners: dict[str, str] = {}
    for file in sorted(by_name, key=_file_order):
        winners[PurePosixPath(file).name if file != "/etc/sysctl.conf" else file] = file
    result: dict[str, tuple[str, str]] = {}
    for file in sorted(winners.values(), key=_file_order):
        for key, value, source in by_name[file]:
            result[key] = (value, source)
    return result


def _runtime_value(output: str) -> str | None:
    m = re.search(r"=\s*(\S+)", output)
    return m.group(1) if m else None


# A node that forwards nothing fails every pod-traffic check, including "is it NATed" (masquerade fails
# when pod-api does and no NAT applies), and every other node's pod-to-pod toward its pods.
@probe(id="ip-forward", layer=Layer.HOST_ROUTE, needs={"host"}, fixes=("ip-forward",), explains=(
    Explains("pod-api", only_when_failing=True), Explains("masquerade", only_when_failing=True),
    Explains("return-path", only_when_failing=True), Explains("pod-dns", only_when_failing=True),
    Explains("encapsulation", only_when_failing=True, across=True),
))
async def ip_forward(ctx: ProbeContext) -> ProbeResult:
    """The node forwards packets (net.ipv4.ip_forward=1, IPv6 forwarding too with global IPv6), persistently.

    Runs `sysctl net.ipv4.ip_forward`, `ip -6 -o addr show scope global` (and then
    `sysctl net.ipv6.conf.all.forwarding`), and greps /etc/sysctl.conf and the sysctl.d
    directories (/etc, /run, /usr/lib, /lib) for the keys; the last assignment at boot wins.
    fail: forwarding is 0 now, so pod packets are dropped at the host (pod-api, return-path and
    pod-to-pod fail as consequences). warn: 1 now but not persisted (a reboot or a reset turns it off;
    Felix re-enables it only while calico-node runs). Remediation: `sysctl -w` now and a line in
    /etc/sysctl.d; fix `ip-forward` does both.
    """
    timeout = ctx.settings.command_timeout
    v4 = await ctx.host.run(render(_RUNTIME), timeout=timeout)
    v6_addrs = await ctx.host.run(render(_GLOBAL_V6), timeout=timeout)
    families = {"ipv4": _runtime_value(v4.stdout)}
    evidence = [f"$ {_RUNTIME}\n{v4.output}"]
    if v6_addrs.ok and v6_addrs.stdout.strip():
        v6 = await ctx.host.run(render(_RUNTIME_V6), timeout=timeout)
        families["ipv6"] = _runtime_value(v6.stdout)
        evidence.append(f"(global IPv6 present)\n$ {_RUNTIME_V6}\n{v6.output}")
    grep = await ctx.host.run(render(_PERSISTED), timeout=timeout)
    persisted = persisted_values(grep.stdout)
    evidence.append("persisted: " + (", ".join(f"{k} = {v} ({f})" for k, (v, f) in persisted.items())
                                     or "no assignment in sysctl.conf or sysctl.d"))
    off = [_KEYS[f] for f, value in families.items() if value != "1"]
    unpersisted = [_KEYS[f] for f in families if persisted.get(_KEYS[f], ("", ""))[0] != "1"]
    rp_filter = await ctx.host.run(render(_RP_FILTER), timeout=timeout)
    rp_value = _runtime_value(rp_filter.stdout)
    observed = Observations(
        ip_forward=families["ipv4"] == "1" if families["ipv4"] is not None else None,
        ipv6_forwarding=families["ipv6"] == "1" if families.get("ipv6") is not None else None,
        forwarding_persisted=not unpersisted,
        rp_filter=int(rp_value) if rp_value is not None and rp_value.isdigit() else None,
    )
    proof = "\n".join(ln for ln in "\n".join(evidence).splitlines() if ln.startswith(("net.", "persisted:")))
    sysctl_now = "\n".join(f"sudo sysctl -w {key}=1" for key in (off or unpersisted))
    persist = "\n".join(f"echo '{key} = 1' | sudo tee -a {PERSIST_FILE}" for key in unpersisted)
    remediation = f"{sysctl_now}\n# Make it permanent:\n{persist}" if unpersisted else sysctl_now
    # The fix turns on and persists IPv4 forwarding only: offered when IPv4 is all that is wrong.
    wrong = {_KEYS[f] for f, value in families.items() if value != "1"} | set(unpersisted)
    fixable = wrong <= {_KEYS["ipv4"]}
    fix = FixProposal(id="ip-forward", params={}) if fixable else None
    if off:
        now = ", ".join(f"{_KEYS[f]}={value or '?'}" for f, value in families.items() if value != "1")
        return fail(f"forwarding is off on {ctx.node.name}: {now}", "\n".join(evidence), remediation, fix,
                    proof=proof, observed=observed)
    if unpersisted:
        return warn(f"forwarding is on but not persisted: {', '.join(unpersisted)} "
                    "is not 1 in sysctl.conf/sysctl.d",
                    "\n".join(evidence), remediation, fix, proof=proof, observed=observed)
    return ok("forwarding on and persisted: " + ", ".join(f"{_KEYS[f]}=1" for f in families),
              "\n".join(evidence), observed=observed)
