"""The `netcheck` CLI (bot/cli.py, bot/commands/check.py).

Covers, through the documented seam `main(argv, engine_factory=...)` (an Engine over fake
Transports and a private registry; nothing inside the code under test is patched):
bad config -> one line, exit 2 (also as a real subprocess); unknown node -> one line naming the
closest names, exit 2; invalid node name and unknown --probe -> exit 2; --json prints exactly one
object with the documented fields (a list for --all); exit 1 on a failing probe, 0 on ok/skip;
human output has one line per probe and details causes first; `--probe` selects probes.
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


@probe(id="masquerade", layer=Layer.IPTABLES, fixes=("masquerade",), registry=REG)
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
                            nodes=[NodeFacts(name=n) for n in ("master", "worker1", "worker2")])

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
    assert set(data) == {"node", "verdict", "started_at", "duration_s", "findings", "access"}
    assert (data["node"], data["verdict"]) == ("worker2", "fail")
    by_probe = {f["probe"]: f for f in data["findings"]}
    assert list(by_probe) == ["host-api", "pod-api", "masquerade", "kernel-modules"]
    assert set(by_probe["masquerade"]) == {"probe", "layer", "status", "summary", "evidence",
                                           "remediation", "fix", "caused_by", "duration_s"}
    assert by_probe["masquerade"]["fix"] == {"id": "masquerade",
                                             "params": {"pod_cidr": "192.168.88.0/24", "iface": "wlp59s0"}}
    assert by_probe["pod-api"]["caused_by"] == "masquerade"
    assert by_probe["host-api"]["fix"] is None


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


def test_human_output_causes_first(config_file, capsys) -> None:
    assert main(["check", "worker2", "--config", config_file], engine_factory=factory) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("node worker2: fail")
    assert out[1].split()[:2] == ["ok", "host-api"]
    assert out[2].split()[:2] == ["FAIL", "pod-api"]
    details = out[out.index("details (causes first):") + 1:]
    assert details[0].startswith("  [FAIL] masquerade (iptables): no NAT at all")
    assert "    proposed fix: masquerade pod_cidr=192.168.88.0/24 iface=wlp59s0" in details
    pod_api_line = next(i for i, line in enumerate(details) if line.startswith("  [FAIL] pod-api"))
    assert details[pod_api_line + 1] == "    explained by: masquerade"
