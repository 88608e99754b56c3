"""The `netcheck` CLI (bot/cli.py, bot/commands/check.py).

Covers, through the documented seam `main(argv, engine_factory=...)` (an Engine over fake
Transports and a private registry; nothing inside the code under test is patched):
bad config -> one line, exit 2 (also as a real subprocess); unknown node -> one line naming the
closest names, exit 2; invalid node name and unknown --probe -> exit 2; --json prints exactly one
object with the documented fields (a list for --all); exit 1 on a failing probe, 0 on ok/skip;
human output: one line per probe with its role, then one thing to do per fix (cause, scope against the
reference, proving evidence, one remediation, the fix command) and the consequences; --verbose for full
evidence; --all names the node to act on first; `--probe` selects probes; `diff` against a node.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bot.cli import main
from bot.wiring import build_engine
from probes.engine import Transports
from probes.facts import ClusterFacts, NodeFacts
from probes.model import FixProposal, Layer, fail, ok, skip
from probes.registry import Registry, probe
from tests.fakes import FakeCluster

REG = Registry()
BROKEN = {"worker2"}


@probe(id="host-api", layer=Layer.PHYSICAL, registry=REG)
async def host_api(ctx):
    """HTTPS /version from the node."""
    return ok("API answered 401")


@probe(id="pod-api", layer=Layer.POD_APP, registry=REG)
async def pod_api(ctx):
    """HTTPS /version from the pod."""
    if ctx.node.name in BROKEN:
        return fail("no answer from 10.96.0.1:443", evidence="curl: (28) timed out")
    return ok("API answered 401")


@probe(id="masquerade", layer=Layer.IPTABLES, fixes=("masquerade",), explains=("pod-api",), registry=REG)
async def masquerade(ctx):
    """Pod egress is source-NATed."""
    if ctx.node.name in BROKEN:
        return fail("no NAT at all", remediation="iptables -t nat -A POSTROUTING ...",
                    fix=FixProposal(id="masquerade",
                                    params={"pod_cidr": "192.168.88.0/24", "iface": "wlp59s0"}))
    return ok("Calico NAT present")


@probe(id="kernel-modules", layer=Layer.HOST_ROUTE, registry=REG)
async def kernel_modules(ctx):
    """Modules."""
    return skip("no SSH")


def factory(config):
    async def discover() -> ClusterFacts:
        return ClusterFacts(api_service_ip="10.96.0.1",
                            nodes=[NodeFacts(name=n, ready=True) for n in ("master", "worker1", "worker2")])

    return build_engine(config, transports=Transports(cluster=FakeCluster(), discover=discover), registry=REG)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "netcheck.yaml"
    path.write_text("probes: {default_timeout: 5}\n")
    return str(path)


def test_bad_config_one_line_exit_2(tmp_path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("ssh: {port: abc}\n")
    assert main(["check", "worker2", "--config", str(path)], engine_factory=factory) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "netcheck check: config error: ssh.port: Input should be a valid integer, "
        "unable to parse string as an integer"
    ]


def test_bad_config_in_a_real_process(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("ssh: {prot: 22}\n")
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "check", "worker2", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == ["netcheck check: config error: ssh.prot: unknown key"]


def test_unknown_node_names_closest(config_file, capsys) -> None:
    assert main(["check", "wroker2", "--config", config_file], engine_factory=factory) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "netcheck check: unknown node 'wroker2': did you mean worker2, worker1?"
    ]


def test_invalid_node_name_and_unknown_probe(config_file, capsys) -> None:
    assert main(["check", "Worker 2", "--config", config_file], engine_factory=factory) == 2
    assert "invalid node name 'Worker 2'" in capsys.readouterr().err
    assert main(["check", "worker2", "--probe", "pod-apj", "--config", config_file],
                engine_factory=factory) == 2
    assert capsys.readouterr().err.strip().startswith(
        "netcheck check: unknown probe 'pod-apj' (did you mean pod-api")


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["check", "worker2", "--all"])
    assert exc.value.code == 2


def test_json_one_object_and_exit_1(config_file, capsys) -> None:
    assert main(["check", "worker2", "--json", "--config", config_file], engine_factory=factory) == 1
    data = json.loads(capsys.readouterr().out)  # exactly one JSON document, nothing else on stdout
    assert set(data) == {"node", "verdict", "started_at", "duration_s", "findings", "access", "reference",
                         "peers", "timings"}
    assert [s["what"] for s in data["timings"]["spans"]][0] == "discovery"
    assert (data["node"], data["verdict"]) == ("worker2", "fail")
    by_probe = {f["probe"]: f for f in data["findings"]}
    assert list(by_probe) == ["host-api", "pod-api", "masquerade", "kernel-modules"]
    assert set(by_probe["masquerade"]) == {"probe", "layer", "status", "summary", "evidence", "proof",
                                           "remediation", "fix", "caused_by", "caused_by_node", "peer",
                                           "scope", "comparison", "observed", "duration_s", "timing"}
    timing = by_probe["masquerade"]["timing"]  # it ran after pod-api: that wait is on record
    assert timing["queued_s"] <= timing["started_s"] <= timing["finished_s"]
    assert "probe pod-api" in [w["on"] for w in timing["waited"]] or \
        by_probe["pod-api"]["timing"]["finished_s"] <= timing["started_s"]
    assert by_probe["masquerade"]["fix"] == {"id": "masquerade",
                                             "params": {"pod_cidr": "192.168.88.0/24", "iface": "wlp59s0"}}
    assert by_probe["pod-api"]["caused_by"] == "masquerade"
    assert by_probe["host-api"]["fix"] is None
    assert data["reference"] == "master"  # the first Ready healthy node tried (no pool labels here)
    assert by_probe["masquerade"]["scope"] == "node-local"
    assert by_probe["masquerade"]["comparison"] == "on master: Calico NAT present"
    assert [p["node"] for p in data["peers"]] == ["master"]


def test_healthy_node_exit_0_and_all_is_a_list(config_file, capsys) -> None:
    assert main(["check", "worker1", "--json", "--config", config_file], engine_factory=factory) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "skip"  # ok + skip only: still exit 0
    assert main(["check", "--all", "--json", "--config", config_file], engine_factory=factory) == 1
    data = json.loads(capsys.readouterr().out)
    assert [r["node"] for r in data] == ["master", "worker1", "worker2"]


def test_probe_selection(config_file, capsys) -> None:
    assert main(["check", "worker2", "--json", "--probe", "host-api", "--config", config_file],
                engine_factory=factory) == 0
    assert [f["probe"] for f in json.loads(capsys.readouterr().out)["findings"]] == ["host-api"]


def test_human_output_the_graph_not_the_pile(config_file, capsys) -> None:
    assert main(["check", "worker2", "--config", config_file], engine_factory=factory) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("node worker2: fail")
    assert out[1].split()[:2] == ["ok", "host-api"]
    assert out[2].split()[:2] == ["FAIL", "pod-api"] and out[2].endswith("[consequence of masquerade]")
    assert out[3].endswith("[cause]")
    plan = out[out.index("1 thing to do (most problems resolved first):") + 1:]
    assert plan[0] == "1. on worker2: masquerade — resolves pod-api"
    assert plan[1] == "  cause: [FAIL] masquerade (iptables): no NAT at all"
    assert plan[2] == "    node-local — on master: Calico NAT present"
    fix = "  fix: netcheck fix worker2 masquerade --param pod_cidr=192.168.88.0/24 --param iface=wlp59s0"
    assert fix in plan
    consequences = out[out.index("consequences (no fix of their own):") + 1:]
    assert consequences[0] == ("  [FAIL] worker2/pod-api: no answer from 10.96.0.1:443 — consequence of "
                               "masquerade")
    assert sum("iptables -t nat -A POSTROUTING" in line for line in out) == 1  # one remediation block


def test_evidence_lines_and_verbose(config_file, capsys) -> None:
    assert main(["check", "worker2", "--config", config_file], engine_factory=factory) == 1
    assert "curl: (28) timed out" not in capsys.readouterr().out  # a consequence's evidence: --verbose only
    assert main(["check", "worker2", "--verbose", "--config", config_file], engine_factory=factory) == 1
    assert "curl: (28) timed out" in capsys.readouterr().out


def test_all_names_the_node_to_act_on_first(config_file, capsys) -> None:
    assert main(["check", "--all", "--config", config_file], engine_factory=factory) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "cluster: act first on worker2: masquerade (resolves 1 problem on 1 node)"
    assert [line for line in out if line.startswith("node ")][:3] == [
        line for line in out if line.startswith("node ")]


def test_diff_against_a_reference(config_file, capsys) -> None:
    assert main(["diff", "worker2", "--against", "master", "--config", config_file],
                engine_factory=factory) == 0  # this registry observes nothing: no field differs
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "worker2 matches master in every field measured (0)"
    assert main(["diff", "worker2", "--against", "worker2", "--config", config_file],
                engine_factory=factory) == 2
    assert "--against names the node itself" in capsys.readouterr().err


def test_help_and_lab_import_no_client_library() -> None:
    """`netcheck --help`, a configuration error and `netcheck lab` start without the Kubernetes,
    SSH or Slack clients (start-up time is the CLI's first cost)."""
    import subprocess
    import sys

    probe = ("import sys; from bot.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "heavy = ('kubernetes', 'asyncssh', 'slack_bolt', 'slack_sdk', 'aiohttp')\n"
             "print(sorted(m for m in heavy if m in sys.modules))")
    bad_config = ["check", "worker2", "--config", "/nonexistent/netcheck.yaml"]
    for argv in (["--help"], bad_config, ["lab", "--help"]):
        done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True,
                              timeout=60)
        assert done.stdout.strip().splitlines()[-1] == "[]", (argv, done.stdout, done.stderr)


def test_every_command_keeps_its_help_line() -> None:
    """The lazily listed help lines are the modules' own."""
    import argparse

    from bot.cli import COMMANDS, build_parser

    parser = build_parser()
    actions = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {c.dest: c.help for c in actions._choices_actions} == COMMANDS


def test_timings_print_the_critical_path(config_file, capsys) -> None:
    assert main(["check", "worker2", "--timings", "--config", config_file], engine_factory=factory) == 1
    out = capsys.readouterr().out
    timings = out[out.index("where the time went"):]
    lines = timings.splitlines()
    table = lines.index(next(ln for ln in lines if ln.startswith(("transports:", "findings"))))
    path = lines[lines.index("critical path:") + 1:table]
    assert any("start-up" in ln for ln in path) and any(ln.endswith("discovery") for ln in path)
    starts = [float(ln.split()[0]) for ln in path if "→" in ln]
    assert starts == sorted(starts)  # earliest first, one screen
    assert len(lines) < 60


def test_exit_now_keeps_the_output_and_the_exit_handlers() -> None:
    """`exit_now` leaves without the interpreter's teardown, yet what was printed (to a pipe, with no
    newline at its end) arrives and the exit handlers ran first (logging, the kubeconfig loader's
    temporary files); the console script goes out that way with main's status."""
    import subprocess
    import sys

    script = ("import atexit, sys\n"
              "from bot.cli import exit_now\n"
              "atexit.register(lambda: print('exit handler ran', file=sys.stderr))\n"
              "print('report', end='')\n"
              "exit_now(3)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (3, "report", "exit handler ran\n")
    bad_name = subprocess.run([sys.executable, "-m", "bot.cli", "check", "Bad_Node"], capture_output=True,
                              text=True, timeout=60)
    assert bad_name.returncode == 2
    assert bad_name.stderr.startswith("netcheck check: ") and bad_name.stderr.count("\n") == 1
