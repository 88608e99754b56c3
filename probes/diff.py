"""A node compared with its reference, field by field, from the probes' typed observations.

Used by `Engine.compare` (`netcheck diff NODE [--against NODE]`, and the Slack node-join summary).
Values are compared as what matters for the network (an uplink's MTU and kind, not its name; the
kind of pod NAT, not its CIDR) and shown with the node's own names:
"worker3 differs from worker1 in: ip_forward 0 (worker1: 1); uplink wlan0 MTU 1440 wifi (worker1:
enp3s0 MTU 1500 ethernet)".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from probes.model import Report
from probes.observations import Observations

Value = tuple[object, str]
"""(what is compared, what is shown)"""


class FieldDiff(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    label: str
    node_value: str
    reference_value: str


class NodeDiff(BaseModel):
    """`node` against `reference`: the fields that differ, the ones that match, the ones not measured."""

    model_config = ConfigDict(frozen=True)

    node: str
    reference: str
    differences: list[FieldDiff]
    same: list[str]
    unmeasured: list[str]

    def lines(self) -> list[str]:
        return [f"{d.label} {d.node_value} ({self.reference}: {d.reference_value})" for d in self.differences]

    def sentence(self) -> str:
        if not self.differences:
            return f"{self.node} matches {self.reference} in every field measured ({len(self.same)})"
        return f"{self.node} differs from {self.reference} in: " + "; ".join(self.lines())


@dataclass(frozen=True)
class _Field:
    field: str
    label: str
    value: Callable[[Observations], Value | None]


def _flag(value: bool | None, on: str = "1", off: str = "0") -> Value | None:
    return None if value is None else (value, on if value else off)


def _uplink(o: Observations) -> Value | None:
    if o.uplink_mtu is None:
        return None
    kind = o.uplink_kind or "unknown kind"
    return ((o.uplink_mtu, o.uplink_kind), f"{o.uplink or '?'} MTU {o.uplink_mtu} {kind}")


_NAT_WORDS = {"explicit": "explicit MASQUERADE/SNAT rule", "nftables": "nftables NAT rule",
              "calico": "Calico natOutgoing", "none": "none"}


def _pod_nat(o: Observations) -> Value | None:
    if o.pod_nat is None:
        return None
    return (o.pod_nat, _NAT_WORDS[o.pod_nat])


def _hosts(o: Observations) -> Value | None:
    if o.unresolved_nodes is None:
        return None
    names = tuple(sorted(o.unresolved_nodes))
    return (names, "missing " + ", ".join(names) if names else "every node name resolves")


FIELDS: tuple[_Field, ...] = (
    _Field("ip_forward", "ip_forward", lambda o: _flag(o.ip_forward)),
    _Field("ipv6_forwarding", "IPv6 forwarding", lambda o: _flag(o.ipv6_forwarding)),
    _Field("forwarding_persisted", "forwarding persisted",
           lambda o: _flag(o.forwarding_persisted, "yes", "no")),
    _Field("rp_filter", "rp_filter",
           lambda o: None if o.rp_filter is None else (o.rp_filter, str(o.rp_filter))),
    _Field("uplink", "uplink", _uplink),
    _Field("path_mtu", "path MTU to the API",
           lambda o: None if o.path_mtu is None else (o.path_mtu, str(o.path_mtu))),
    _Field("iptables_backend", "iptables backend",
           lambda o: None if o.iptables_backend is None else (o.iptables_backend, o.iptables_backend)),
    _Field("pod_nat", "NAT for its pod block", _pod_nat),
    _Field("kubelet_reachable", "kubelet port 10250",
           lambda o: _flag(o.kubelet_reachable, "reachable", "not reachable")),
    _Field("unresolved_nodes", "/etc/hosts", _hosts),
)


def routes_to(node: str, reports: Sequence[Report], exclude: Sequence[str] = ()) -> dict[str, str]:
    """How every other node routes to `node`'s pod block, from their pod-block-routes observations."""
    found: dict[str, str] = {}
    for report in reports:
        if report.node == node or report.node in exclude:
            continue
        routes = report.observations().pod_block_routes or {}
        if node in routes:
            found[report.node] = routes[node]
    return found


def _routes_text(routes: Mapping[str, str]) -> str:
    by_kind: dict[str, list[str]] = {}
    for other, kind in sorted(routes.items()):
        by_kind.setdefault(kind, []).append(other)
    words = {"direct": "direct", "default": "only via the default gateway", "unreachable": "unreachable",
             "local": "local"}
    return "; ".join(f"{words.get(kind, kind)} from {', '.join(nodes)}" for kind, nodes in by_kind.items())


def compare_nodes(node: Report, reference: Report, reports: Sequence[Report]) -> NodeDiff:
    """Field-by-field diff; `reports` (every node probed in the run) give the routes toward each block."""
    mine, theirs = node.observations(), reference.observations()
    differences, same, unmeasured = [], [], []
    for f in FIELDS:
        a, b = f.value(mine), f.value(theirs)
        if a is None or b is None:
            unmeasured.append(f.label)
        elif a[0] == b[0]:
            same.append(f.label)
        else:
            differences.append(FieldDiff(field=f.field, label=f.label, node_value=a[1], reference_value=b[1]))
    both = (node.node, reference.node)
    to_node, to_ref = routes_to(node.node, reports, both), routes_to(reference.node, reports, both)
    label = "routes to its pod block"
    if not to_node or not to_ref:
        unmeasured.append(label)
    elif set(to_node.values()) == set(to_ref.values()):
        same.append(label)
    else:
        differences.append(FieldDiff(field="pod_block_routes", label=label,
                                     node_value=_routes_text(to_node), reference_value=_routes_text(to_ref)))
    return NodeDiff(node=node.node, reference=reference.node, differences=differences, same=same,
                    unmeasured=unmeasured)
