"""The hostile-input table: inputs across every surface netcheck reads, each with its expected outcome.

Run by tests/lab/test_hostile_inputs.py against the lab. Values are templates filled from the running
lab (never lab literals): `<canary>` is a shell command that would create the marker file,
`<marker>` that file, `<node>`/`<iface>`/`<block>`/`<node_ip>` a worker node's name, its interface
toward the LAN, its pod block and its address. What each `expect` means is in the runner:

- slash:   invalid (ephemeral validator line) | usage | unknown (node not in the cluster) | malformed
- http:    the HTTP status
- button:  tampered | refused:<text in the outcome> | not-approver | expired | malformed (no reply)
- fix:     the one line `netcheck fix` prints, exit 2 (a substring of it)
- config:  the one ConfigError line (a substring of it)
- cluster: dropped (not in the facts) | blanked (bad fields None) | pool-dropped | rejected (the API
           answers 422) | ignored (Installation fields a probe never runs)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CANARY_FORMS = ("; <canary>", "$(<canary>)", "`<canary>`", " && <canary>", "|<canary>", "\n<canary>")


@dataclass(frozen=True)
class Case:
    surface: str
    name: str
    value: Any
    expect: str


def fill(value: Any, context: dict[str, str]) -> Any:
    """The template with the lab's values in (strings, bytes, lists and dicts, recursively)."""
    if isinstance(value, str):
        for key, text in context.items():
            value = value.replace(f"<{key}>", text)
        return value
    if isinstance(value, bytes):
        return fill(value.decode("utf-8", "surrogateescape"), context).encode("utf-8", "surrogateescape")
    if isinstance(value, list | tuple):
        return type(value)(fill(v, context) for v in value)
    if isinstance(value, dict):
        return {fill(k, context): fill(v, context) for k, v in value.items()}
    return value


SLASH = [
    *(Case("slash", f"node then {form.strip()[:2]}", f"<node>{form}", "invalid") for form in CANARY_FORMS),
    Case("slash", "only a command substitution", "$(<canary>)", "invalid"),
    Case("slash", "all then canary", "all;<canary>", "invalid"),
    Case("slash", "help then canary", "help`<canary>`", "invalid"),
    Case("slash", "trailing newline", "<node>\n", "invalid"),
    Case("slash", "carriage return", "<node>\r", "invalid"),
    Case("slash", "NUL byte", "<node>\x00", "invalid"),
    Case("slash", "RTL override", "<node>\u202e", "invalid"),
    Case("slash", "zero-width space", "<node>\u200b", "invalid"),
    Case("slash", "uppercase", "<NODE>", "invalid"),
    Case("slash", "fullwidth letters", "\uff57\uff4f\uff52\uff4b", "invalid"),
    Case("slash", "path traversal", "../../etc/passwd", "invalid"),
    Case("slash", "ssh option", "-oProxyCommand=<canary>", "invalid"),
    Case("slash", "channel mention", "<!channel>", "invalid"),
    Case("slash", "user mention", "<@UBOB>", "invalid"),
    Case("slash", "254-char name", "a" * 254, "invalid"),
    Case("slash", "10,000 characters", "x" * 10_000, "invalid"),
    Case("slash", "trailing dot", "<node>.", "invalid"),
    Case("slash", "valid but unknown node", "no-such-node", "unknown"),
    Case("slash", "help", "help", "usage"),
    Case("slash", "no user id", {"text": "<node>", "user_id": None}, "malformed"),
    Case("slash", "mention as user id", {"text": "<node>", "user_id": "U1> <!channel"}, "malformed"),
]

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
DEEP = "[" * 50_000 + "]" * 50_000
COMMAND = "command=%2Fnetcheck&text=<node>&user_id=UALICE&channel_id=C0NETCHECK"


def http(name: str, body: bytes | str, expect: int, *, sign: str = "ok", content_type: str = FORM,
         method: str = "POST", path: str = "/slack/events", timestamp: str | None = None) -> Case:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return Case("http", name, {"body": raw, "sign": sign, "content_type": content_type, "method": method,
                               "path": path, "timestamp": timestamp}, str(expect))


HTTP = [
    http("form body sent as JSON, unsigned", COMMAND, 401, sign="none", content_type=JSON),
    http("payload= that is not JSON, unsigned", "payload=%7Bnot-json", 401, sign="none"),
    http("broken JSON, unsigned", '{"type": "block_actions", ', 401, sign="none", content_type=JSON),
    http("JSON nested 50,000 deep, unsigned", DEEP, 401, sign="none", content_type=JSON),
    http("valid command, unsigned", COMMAND, 401, sign="none"),
    http("valid command, wrong signature", COMMAND, 401, sign="bad"),
    http("signature of another body", COMMAND, 401, sign="other"),
    http("v1 signature scheme", COMMAND, 401, sign="v1"),
    http("timestamp not a number", COMMAND, 401, timestamp="abc"),
    http("timestamp ten minutes old", COMMAND, 401, timestamp="-600"),
    http("timestamp ten minutes ahead", COMMAND, 401, timestamp="+600"),
    http("empty body, unsigned", b"", 401, sign="none"),
    http("body over the size cap", b"text=" + b"x" * (300 * 1024), 413, sign="none"),
    http("ssl_check, unsigned", "ssl_check=1&token=x", 200, sign="none"),
    http("form body sent as JSON, signed", COMMAND, 400, content_type=JSON),
    http("payload= that is not JSON, signed", "payload=%7Bnot-json", 400),
    http("JSON nested 50,000 deep, signed", DEEP, 400, content_type=JSON),
    http("invalid UTF-8, signed", b"payload=\xff\xfe", 400),
    http("JSON list, signed", "[1, 2]", 400, content_type=JSON),
    http("block_actions without actions, signed", '{"type": "block_actions", "actions": []}', 400,
         content_type=JSON),
    http("event that is a string, signed", '{"type": "event_callback", "event": "x"}', 400,
         content_type=JSON),
    http("JSON without a type, signed", '{"token": "<canary>"}', 404, content_type=JSON),
    http("another slash command, signed",
         "command=%2Fother&text=<canary>&user_id=UALICE&channel_id=C0NETCHECK", 200),
    http("GET on the events path", b"", 405, method="GET"),
    http("POST elsewhere", COMMAND, 404, path="/slack/<canary>"),
]


def button(name: str, expect: str, **value: Any) -> Case:
    return Case("button", name, value, expect)


HOSTILE_PARAMS = "refused:"
BUTTON = [
    button("value not JSON", "tampered", raw="not json; <canary>"),
    button("value without a signature", "tampered", raw='{"v": "{}"}'),
    button("value signed with another secret", "tampered", secret="not-the-secret"),
    button("signed value edited afterwards", "tampered", edit={"n": "<node>;<canary>"}),
    button("value of 100,000 characters", "tampered", raw="x" * 100_000),
    button("click without a user", "malformed", user=None),
    button("user id with a mention", "malformed", user="U1> <!channel"),
    button("non-approver", "not-approver", user="UMALLORY"),
    button("expired proposal", "expired", age_s=10 * 86400),
    button("signed prefix-0 pod CIDR", f"{HOSTILE_PARAMS}prefix-0",
           proposal={"f": "masquerade", "p": {"pod_cidr": "0.0.0.0/0", "interface": "<iface>"}}),
    button("signed canary pod CIDR", f"{HOSTILE_PARAMS}invalid CIDR",
           proposal={"f": "masquerade", "p": {"pod_cidr": "<block>;<canary>", "interface": "<iface>"}}),
    button("signed interface with newline", f"{HOSTILE_PARAMS}invalid interface name",
           proposal={"f": "masquerade", "p": {"pod_cidr": "<block>", "interface": "<iface>\n"}}),
    button("signed node with canary", f"{HOSTILE_PARAMS}invalid node name",
           proposal={"n": "<node>;<canary>", "f": "ip-forward", "p": {}}),
    button("signed unknown fix", f"{HOSTILE_PARAMS}unknown fix",
           proposal={"f": "ip-forward;<canary>", "p": {}}),
    button("signed MTU with canary", f"{HOSTILE_PARAMS}invalid MTU",
           proposal={"f": "calico-mtu", "p": {"mtu": "1400;<canary>"}}),
    button("signed module with canary", f"{HOSTILE_PARAMS}kernel-modules takes",
           proposal={"f": "kernel-modules", "p": {"module": "ipip;<canary>"}}),
]


def fix(name: str, argv: list[str], expect: str) -> Case:
    return Case("fix", name, argv, expect)


MASQ = ["<node>", "masquerade", "--yes"]
IFACE = ["--param", "interface=<iface>"]
FIX = [
    fix("prefix-0 IPv4", [*MASQ, "--param", "pod_cidr=0.0.0.0/0", *IFACE], "prefix-0"),
    fix("prefix-0 IPv6", [*MASQ, "--param", "pod_cidr=::/0", "--param", "interface=<iface>"], "prefix-0"),
    fix("IPv4-mapped network", [*MASQ, "--param", "pod_cidr=::ffff:10.2.3.0/120", *IFACE], "IPv4-mapped"),
    fix("scoped IPv6", [*MASQ, "--param", "pod_cidr=fe80::%wlan0/64", "--param", "interface=<iface>"],
        "invalid CIDR"),
    fix("IPv6 pod CIDR for iptables", [*MASQ, "--param", "pod_cidr=fd00:10:244::/64", "--param",
                                      "interface=<iface>"], "IPv4 only"),
    fix("a LAN range", [*MASQ, "--param", "pod_cidr=10.0.0.0/8", "--param", "interface=<iface>"],
        "not a pod block of <node>"),
    fix("the node's own address as /32", [*MASQ, "--param", "pod_cidr=<node_ip>/32", "--param",
                                          "interface=<iface>"], "host network"),
    fix("CIDR with canary", [*MASQ, "--param", "pod_cidr=<block>; <canary>", "--param", "interface=<iface>"],
        "invalid CIDR"),
    fix("CIDR with trailing newline", [*MASQ, "--param", "pod_cidr=<block>\n", *IFACE], "invalid CIDR"),
    fix("interface with newline", [*MASQ, "--param", "pod_cidr=<block>", "--param", "interface=<iface>\n"],
        "invalid interface name"),
    fix("interface with canary", [*MASQ, "--param", "pod_cidr=<block>", "--param", "interface=$(<canary>)"],
        "invalid interface name"),
    fix("interface not on the node", [*MASQ, "--param", "pod_cidr=<block>", "--param", "interface=nosuch0"],
        "does not exist on <node>"),
    fix("loopback interface", [*MASQ, "--param", "pod_cidr=<block>", "--param", "interface=lo"], "loopback"),
    fix("repeated --param", [*MASQ, "--param", "pod_cidr=10.0.0.0/8; <canary>", "--param", "pod_cidr=<block>",
                             "--param", "interface=<iface>"], "--param pod_cidr given twice"),
    fix("parameter name with canary", [*MASQ, "--param", "pod_cidr;<canary>=x"], "invalid parameter name"),
    fix("MTU too large", ["<node>", "calico-mtu", "--yes", "--param", "mtu=100000"], "invalid MTU"),
    fix("MTU with underscore", ["<node>", "calico-mtu", "--yes", "--param", "mtu=1_400"], "invalid MTU"),
    fix("MTU in Arabic-Indic digits",
        ["<node>", "calico-mtu", "--yes", "--param", "mtu=\u0661\u0664\u0660\u0660"], "invalid MTU"),
    fix("MTU with canary", ["<node>", "calico-mtu", "--yes", "--param", "mtu=1400;<canary>"], "invalid MTU"),
    fix("MTU above the link", ["<node>", "calico-mtu", "--yes", "--param", "mtu=9000"], "does not fit"),
    fix("module with canary", ["<node>", "kernel-modules", "--yes", "--param", "module=ipip;<canary>"],
        "kernel-modules takes"),
    fix("ip-forward with a parameter", ["<node>", "ip-forward", "--yes", "--param", "x=$(<canary>)"],
        "takes no parameters"),
    fix("node with canary", ["<node>;<canary>", "ip-forward", "--yes"], "invalid node name"),
    fix("node with newline", ["<node>\n", "ip-forward", "--yes"], "invalid node name"),
    fix("node path", ["../etc", "ip-forward", "--yes"], "invalid node name"),
    fix("fix id with canary", ["<node>", "ip-forward;<canary>", "--yes"], "unknown fix"),
]


def config(name: str, text: str, expect: str) -> Case:
    return Case("config", name, text, expect)


CONFIG = [
    config("disabled probe with canary", "probes: {disabled: ['no-such-probe; <canary>']}",
           "probes.disabled: unknown probe id"),
    config("disabled probe typo", "probes: {disabled: [pod-apii]}", "closest: pod-api"),
    config("timeout for unknown probe", "probes: {timeouts: {'$(<canary>)': 5}}", "probes.timeouts: unknown"),
    config("negative probe timeout", "probes: {timeouts: {mtu: -1}}", "probes.timeouts.mtu"),
    config("slack probe unknown", "slack: {probes: ['mtu;<canary>']}", "slack.probes: unknown probe id"),
    config("ssh host with canary", "ssh: {hosts: {<node>: {host: 'h; <canary>'}}}", "invalid host"),
    config("ssh host as option", "ssh: {hosts: {<node>: {host: '-oProxyCommand=<canary>'}}}", "invalid host"),
    config("ssh host with newline", "ssh: {hosts: {<node>: {host: \"<node_ip>\\n\"}}}", "invalid"),
    config("ssh hosts key not a node", "ssh: {hosts: {'<node>; x': {host: <node_ip>}}}", "invalid node name"),
    config("ssh user as option", "ssh: {user: '-oProxyCommand=<canary>'}", "invalid SSH user"),
    config("prefix-0 pod CIDR", "cluster: {pod_cidr: 0.0.0.0/0}", "prefix-0"),
    config("API IP with canary", "cluster: {api_service_ip: '10.96.0.1; <canary>'}", "invalid IP address"),
    config("mapped DNS IP", "cluster: {dns_service_ip: '::ffff:10.96.0.10'}", "IPv4-mapped"),
    config("approver with mention", "slack: {approvers: ['U1> <!channel>']}", "invalid Slack user id"),
    config("join channel with canary", "slack: {join_channel: '#ops; <canary>'}", "invalid Slack channel"),
    config("YAML object tag", "!!python/object/apply:os.system ['<canary>']", "config error"),
    config("debug pod namespace path", "debug_pod: {namespace: '../kube-system'}", "debug_pod.namespace"),
]


def cluster(name: str, expect: str, **value: Any) -> Case:
    return Case("cluster", name, value, expect)


def node_body(name: str, ip: str = "<node_ip>", pod_cidr: str = "<block>",
              annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": annotations or {}, "labels": {}},
            "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       # not Ready: the real check at the end must not pick one as its peer node
                       "conditions": [{"type": "Ready", "status": "Unknown"}]}}


CLUSTER = [
    cluster("node name with semicolon", "dropped", node=node_body("evil;reboot")),
    cluster("node name with command substitution", "dropped", node=node_body("evil$(id)")),
    cluster("node name with backticks", "dropped", node=node_body("evil`id`")),
    cluster("node name with space", "dropped", node=node_body("evil node")),
    # (a newline cannot be routed by the stand-in to delete it again; the real API refuses it at create)
    cluster("node name with a tab", "dropped", node=node_body("evil\tnode")),
    cluster("node name uppercase", "dropped", node=node_body("EvilNode")),
    cluster("node name of 300 characters", "dropped", node=node_body("n" * 300)),
    cluster("node name as ssh option", "dropped", node=node_body("-oProxyCommand=x")),
    cluster("InternalIP with canary", "blanked", node=node_body("hostile-ip", ip="10.9.9.9; <canary>",
                                                                pod_cidr="0.0.0.0/0")),
    cluster("InternalIP as substitution", "blanked", node=node_body("hostile-sub", ip="$(<canary>)",
                                                                    pod_cidr="10.250.0.0/24 && <canary>")),
    cluster("Calico address annotation with canary", "blanked",
            node=node_body("hostile-annotation", ip="10.9.9.8\n",
                           annotations={"projectcalico.org/IPv4Address": "10.9.9.8/24; <canary>"})),
    cluster("IPPool CIDR with canary", "pool-dropped",
            pool={"metadata": {"name": "hostile-pool"}, "spec": {"cidr": "10.0.0.0/8; <canary>"}}),
    cluster("IPPool prefix-0", "pool-dropped",
            pool={"metadata": {"name": "hostile-all"}, "spec": {"cidr": "0.0.0.0/0", "natOutgoing": True}}),
    cluster("IPPool name with substitution", "pool-dropped",
            pool={"metadata": {"name": "pool$(reboot)"}, "spec": {"cidr": "10.251.0.0/16"}}),
    cluster("IPPool mode with canary", "ignored",
            pool={"metadata": {"name": "hostile-mode"},
                  "spec": {"cidr": "10.252.0.0/16", "ipipMode": "Always; <canary>", "disabled": True}}),
    cluster("Installation MTU as a string", "rejected",
            installation={"spec": {"calicoNetwork": {"mtu": "1400; <canary>"}}}),
    cluster("Installation autodetection with canary", "ignored",
            installation={"spec": {"calicoNetwork": {
                "nodeAddressAutodetectionV4": {"interface": "eth0; <canary>", "cidrs": ["$(<canary>)"]}}}}),
    cluster("Installation ipPools with canary", "ignored",
            installation={"spec": {"calicoNetwork": {"ipPools": [{"cidr": "0.0.0.0/0; <canary>",
                                                                   "encapsulation": "$(<canary>)"}]}}}),
]

TABLE: list[Case] = [*SLASH, *HTTP, *BUTTON, *FIX, *CONFIG, *CLUSTER]
