"""The lab runs netcheck under the shipped RBAC (lab/apiconfig.py: the API stand-in enforces
deploy/kubernetes/rbac.yaml for the bot's ServiceAccount token; netcheck.yaml uses kubeconfig-bot).

Covers, from the lab's ops namespace over the lab network:
- netcheck.yaml points at kubeconfig-bot; the bot token is refused reading a pod outside its
  namespace (it may only list those; 403 naming the verb and resource) while the admin token used by
  the lab itself is not;
- `netcheck check --all` under RBAC: every node ok but the WiFi node, which fails for the case
  study's cause, and RBAC denied nothing;
- a fix under RBAC: `netcheck fix NODE masquerade --yes` on the WiFi node applies, verifies with a
  re-check (debug pods: create/get/exec/delete); the node is put back in its case-study state
  afterwards (the `case_study` fixture).
"""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from lab import apiconfig
from lab.cluster import Lab

pytestmark = pytest.mark.lab

CHECK_TIMEOUT_S = 120.0
NETCHECK = [sys.executable, "-m", "bot.cli"]


def test_netcheck_uses_the_bot_token_and_rbac_is_enforced(lab: Lab) -> None:
    config = yaml.safe_load(lab.config_file.read_text())
    assert config["kubeconfig"] == str(apiconfig.bot_kubeconfig_path(lab))
    # outside its own namespace the bot may list pods (calico-mtu names those left on the old MTU)
    # but never read one: authorization comes before the lookup, so the pod need not exist
    path = "/api/v1/namespaces/kube-system/pods/coredns-x"
    with pytest.raises(RuntimeError) as denied:
        apiconfig.request(lab, "GET", path, token=apiconfig.bot_token(lab))
    assert "HTTP 403" in str(denied.value)
    assert 'cannot get resource \\"pods\\"' in str(denied.value), denied.value
    with pytest.raises(RuntimeError) as missing:  # the lab's admin token gets past RBAC to the lookup
        apiconfig.request(lab, "GET", path)
    assert "HTTP 404" in str(missing.value)


def test_check_all_passes_under_rbac(lab: Lab) -> None:
    proc = lab.run_ops([*NETCHECK, "check", "--all", "--json"], timeout=CHECK_TIMEOUT_S)
    reports = {r["node"]: r for r in json.loads(proc.stdout)}
    verdicts = {node: r["verdict"] for node, r in reports.items()}
    not_ok = [(node, f["probe"], f["status"], f["summary"]) for node, r in reports.items()
              for f in r["findings"] if f["status"] != "ok"]
    wifi = lab.wifi_node.name
    assert verdicts == {n.name: "fail" if n.name == wifi else "ok" for n in lab.nodes}, not_ok
    failing = {f["probe"] for f in reports[wifi]["findings"] if f["status"] == "fail"}
    assert "masquerade" in failing  # the case study's cause, found with the bot's permissions
    denials = [line for line in proc.stderr.splitlines() if "forbidden" in line]
    assert denials == []


def test_masquerade_fix_under_rbac(lab: Lab, case_study: str) -> None:
    node = lab.wifi_node
    proc = lab.run_ops(
        [*NETCHECK, "fix", node.name, "masquerade", "--param", f"pod_cidr={node.pod_cidr}",
         "--param", f"interface={node.iface}", "--yes"],
        timeout=CHECK_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "applied:" in proc.stdout
    assert "forbidden" not in proc.stdout
