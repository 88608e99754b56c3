"""Probe `iptables-mode`: is `iptables` the backend (nft or legacy) the cluster's rules live in?

Run by the engine. `detect_backend()` is pure and exported: the masquerade fix uses its
`IptablesBackend.rules_backend` / `.binary("iptables")` to call the binary whose rules are live
(docs/calico.md#iptables-legacy-vs-nft: a rule added with the other backend is silently ignored or
mis-ordered).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from probes.context import ProbeContext
from probes.model import Layer, ProbeResult, fail, ok, skip
from probes.observations import Observations
from probes.registry import probe
from probes.transports.base import run_all
from probes.transports.commands import render

Backend = Literal["nft", "legacy"]

_ALTERNATIVES = "update-alternatives --query iptables"
_READLINK = 'readlink -f "$(command -v iptables)"'
_VERSION = "iptables --version"
_NFT_SAVE = "iptables-nft-save"
# The legacy tools autoload the legacy x_tables modules; only run them where those tables exist.
_LEGACY_SAVE = "test -e /proc/net/ip_tables_names && iptables-legacy-save"
_HINTS = ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY")
_CHAIN = re.compile(r"^:(\S+) ", re.MULTILINE)


class ChainCensus(BaseModel):
    """What one backend's `*-save` output holds of Kubernetes' and Calico's chains."""

    model_config = ConfigDict(frozen=True)

    backend: Backend
    kubelet_hint: bool
    kube_chains: int
    cali_chains: int

    @property
    def cluster_chains(self) -> int:
        return self.kube_chains + self.cali_chains

    def line(self) -> str:
        hint = "kubelet hint present" if self.kubelet_hint else "no kubelet hint"
        return f"{self.backend}: {hint}, {self.kube_chains} KUBE-* chains, {self.cali_chains} cali-* chains"


class IptablesBackend(BaseModel):
    """The node's iptables situation: which backend `iptables` is, and where the rules are."""

    model_config = ConfigDict(frozen=True)

    binary_backend: Backend | None
    rules_backend: Backend | None
    nft: ChainCensus
    legacy: ChainCensus | None  # None: legacy tables absent on the node (never inspected)

    @property
    def split(self) -> bool:
        """Kubernetes/Calico chains exist in both backends at once."""
        return self.legacy is not None and self.nft.cluster_chains > 0 and self.legacy.cluster_chains > 0

    @property
    def mismatch(self) -> bool:
        return (self.binary_backend is not None and self.rules_backend is not None
                and self.binary_backend != self.rules_backend)

    @property
    def backend(self) -> Backend | None:
        """The backend a fix must write to: where the live rules are, else what `iptables` is."""
        return self.rules_backend or self.binary_backend

    def binary(self, tool: str = "iptables") -> str:
        """`iptables-nft`, `iptables-legacy-save`, ... for the detected backend (plain tool if unknown)."""
        if tool not in ("iptables", "iptables-save", "iptables-restore", "ip6tables"):
            raise ValueError(f"unknown iptables tool {tool!r}")
        if self.backend is None:
            return tool
        head, _, tail = tool.partition("-")
        return f"{head}-{self.backend}" + (f"-{tail}" if tail else "")

    def evidence_line(self) -> str:
        """Parseable: `backend=nft iptables=nft rules=nft split=no`."""
        return (f"backend={self.backend or 'unknown'} iptables={self.binary_backend or 'unknown'} "
                f"rules={self.rules_backend or 'none'} split={'yes' if self.split else 'no'}")


def census(backend: Backend, save_output: str) -> ChainCensus:
    chains = _CHAIN.findall(save_output)
    return ChainCensus(
        backend=backend,
        kubelet_hint=any(c in _HINTS for c in chains),
        kube_chains=sum(1 for c in chains if c.startswith("KUBE-")),
        cali_chains=sum(1 for c in chains if c.startswith("cali-")),
    )


def binary_backend_of(version: str = "", alternatives: str = "", readlink: str = "") -> Backend | None:
    """What `iptables` on the node is: its `--version`, else the alternative's Value, else its target."""
    if "(nf_tables)" in version:
        return "nft"
    if "(legacy)" in version:
        return "legacy"
    value = re.search(r"^Value:\s*(\S+)", alternatives, re.MULTILINE)
    for text in (value.group(1) if value else "", readlink):
        if "legacy" in text:
            return "legacy"
        if "nft" in text:
            return "nft"
    return None


def detect_backend(
    *, nft_save: str, legacy_save: str | None, version: str = "", alternatives: str = "", readlink: str = ""
) -> IptablesBackend:
    """Pure detection (kubernetes-sigs/iptables-wrappers order): the kubelet hint in nft, then in
    legacy, then whichever backend holds more KUBE-*/cali-* chains. `legacy_save=None` means the
    legacy tables are absent (not inspected)."""
    nft = census("nft", nft_save)
    legacy = census("legacy", legacy_save) if legacy_save is not None else None
    rules: Backend | None
    if nft.kubelet_hint:
        rules = "nft"
    elif legacy is not None and legacy.kubelet_hint:
        rules = "legacy"
    elif legacy is not None and legacy.cluster_chains > nft.cluster_chains:
        rules = "legacy"
    elif nft.cluster_chains > 0:
        rules = "nft"
    else:
        rules = None
    return IptablesBackend(
        binary_backend=binary_backend_of(version, alternatives, readlink),
        rules_backend=rules, nft=nft, legacy=legacy,
    )


def _restart_steps(node: str) -> str:
    return (
        "sudo systemctl restart kubelet\n"
        f"kubectl delete pod -n calico-system -l k8s-app=calico-node --field-selector spec.nodeName={node}\n"
        f"kubectl delete pod -n kube-system -l k8s-app=kube-proxy --field-selector spec.nodeName={node}"
    )


def _remediation(found: IptablesBackend, node: str) -> str:
    target = found.nft.backend if found.nft.kubelet_hint else found.rules_backend or "nft"
    other = "legacy" if target == "nft" else "nft"
    lines = [
        f"Make every tool on {node} use the {target} backend (where kubelet's KUBE-IPTABLES-HINT is):",
        f"sudo update-alternatives --set iptables /usr/sbin/iptables-{target}",
        f"sudo update-alternatives --set ip6tables /usr/sbin/ip6tables-{target}",
        _restart_steps(node),
    ]
    if found.split:
        lines.append(f"Then remove the stale KUBE-*/cali-* chains left in {other} "
                     f"(review with `sudo iptables-{other}-save`; a reboot clears them).")
    return "\n".join(lines)


@probe(id="iptables-mode", layer=Layer.IPTABLES, needs={"host"})
async def iptables_mode(ctx: ProbeContext) -> ProbeResult:
    """`iptables` on the node uses the backend (nft/legacy) that kubelet, kube-proxy and Calico use.

    Runs `update-alternatives --query iptables`, `readlink -f $(command -v iptables)`,
    `iptables --version`, `iptables-nft-save`, and `iptables-legacy-save` only when
    /proc/net/ip_tables_names exists (the legacy tools would load the legacy modules). The rules'
    backend is where kubelet's KUBE-IPTABLES-HINT / KUBE-KUBELET-CANARY is, else the one with more
    KUBE-*/cali-* chains. The first evidence line is parseable (`backend=nft iptables=nft ...`).
    ok: `iptables` and all KUBE-/cali- chains are in one backend. fail: chains split across both
    backends, or `iptables` is the other backend than the rules
    (docs/troubleshooting.md#iptables-backend-mismatch: rules that "don't apply"); remediation
    sets the alternatives to the rules' backend and restarts kubelet, calico-node and kube-proxy
    on this node. skip: no KUBE-/cali- chains in either backend.
    """
    timeout = ctx.settings.command_timeout
    # One batch: one SSH channel (sshd caps channels per connection, MaxSessions, and every probe
    # of the node shares them) and one round trip instead of five in sequence.
    alternatives, readlink, version, nft_save, legacy_save = await run_all(
        ctx.host, [render(cmd) for cmd in (_ALTERNATIVES, _READLINK, _VERSION, _NFT_SAVE, _LEGACY_SAVE)],
        timeout=timeout)
    found = detect_backend(
        nft_save=nft_save.stdout,
        legacy_save=legacy_save.stdout if legacy_save.ok else None,
        version=version.output, alternatives=alternatives.stdout, readlink=readlink.stdout,
    )
    legacy_line = (found.legacy.line() if found.legacy
                   else "legacy: not inspected (/proc/net/ip_tables_names absent)")
    evidence = "\n".join([
        found.evidence_line(),
        f"$ {_VERSION}\n{version.output}",
        f"$ {_READLINK}\n{readlink.output}",
        f"$ {_ALTERNATIVES} | Value\n"
        + next((ln for ln in alternatives.stdout.splitlines() if ln.startswith("Value:")),
               alternatives.output),
        found.nft.line(),
        legacy_line,
        *(ln for ln in nft_save.stderr.splitlines() if ln.startswith("# Warning")),  # "legacy tables present"
    ])
    observed = Observations(iptables_backend=found.backend)
    proof = "\n".join([found.evidence_line(), found.nft.line(), legacy_line])
    if found.split:
        assert found.legacy is not None
        return fail(
            f"KUBE-/cali- rules split across backends: {found.nft.cluster_chains} chains in nft, "
            f"{found.legacy.cluster_chains} in legacy (kubelet hint in {found.rules_backend or 'neither'})",
            evidence, _remediation(found, ctx.node.name), proof=proof, observed=observed,
        )
    if found.mismatch:
        return fail(
            f"`iptables` is {found.binary_backend} but kubelet/kube-proxy/Calico rules are in "
            f"{found.rules_backend}: rules added with `iptables` do not apply",
            evidence, _remediation(found, ctx.node.name), proof=proof, observed=observed,
        )
    if found.rules_backend is None:
        return skip("no KUBE-/cali- chains in either backend "
                    f"(iptables is {found.binary_backend or 'unknown'})",
                    evidence)
    where = "nf_tables" if found.rules_backend == "nft" else "legacy x_tables"
    census_of = found.nft if found.rules_backend == "nft" else found.legacy
    hint = ", kubelet hint" if census_of is not None and census_of.kubelet_hint else ""
    return ok(f"{found.rules_backend}: iptables{hint} and KUBE-/cali- chains all in {where}", evidence,
              observed=observed)
