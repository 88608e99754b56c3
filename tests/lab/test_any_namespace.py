"""netcheck installed in a namespace other than "netcheck", under the RBAC its manifests render there.

The Helm chart (release "ops") and the kustomize base (docs/deploy.md's way: namespace.yaml renamed) are
rendered into another namespace; their RBAC objects are applied to the lab's RBAC-enforcing API
stand-in and a token for the rendered ServiceAccount is added (what a cluster's token issuer does).
A real `netcheck serve` process (HTTP mode) then runs in the lab's ops namespace with exactly the
rendered config.yaml (lab specifics — kubeconfig, SSH key — go in through the chart's `config:`
passthrough or into the kustomize ConfigMap) and POD_NAMESPACE set as the Deployment sets it.

Covers: the bot leads (its Lease, named per release, in that namespace, holds its identity); it
answers a signed /netcheck for the case-study node with the fix button; an approver's click applies
the masquerade fix (the rule appears once on the node); the continuous watch, switched on through the
same config (chart `config:` / the ConfigMap's `watch:`), sweeps meanwhile and its series are on
/metrics of the health port (the Service's `metrics` port); debug pods ran in that namespace; the API
denied the bot nothing. The lab's own RBAC is put back afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from lab import apiconfig
from lab.apiserver.rbac import service_account_groups, service_account_user
from lab.cluster import Lab
from lab.slack.driver import SlackDriver
from lab.slack.webapi import SlackStandIn
from tests.deploy.conftest import CHART_DIR, kustomize_in_namespace, load_all, run_tool, tool

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "C0NETCHECK"
WATCH_CHANNEL = "C0WATCH"
SECRET = "lab-signing-secret"
APPROVER, REQUESTER = "U0APPROVER", "U0ASKER"
PROBES = ["masquerade", "pod-api"]
"""Enough for the case study: the cause (with its fix) and a probe that needs a debug pod."""
WAIT_S = 150.0
POLL_S = 0.2
OPS = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.2, "health_host": "127.0.0.1",
       "shutdown_grace": 5.0, "cleanup_timeout": 5.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_config(lab: Lab, kubeconfig: Path, health_port: int) -> dict[str, Any]:
    """What differs from a cluster: the API and credentials, SSH as root with the lab's key, the
    cluster facts the lab cannot be asked for; plus a short probe list and fast election timings."""
    lab_file = yaml.safe_load(lab.config_file.read_text())
    return {
        "kubeconfig": str(kubeconfig),
        "ssh": {**lab_file["ssh"]},
        "cluster": lab_file["cluster"],
        "slack": {"probes": PROBES, "approvers": [APPROVER]},
        "ops": {**OPS, "health_port": health_port},
        "watch": {"interval": "10s", "channel": WATCH_CHANNEL, "probes": PROBES},
    }


def render_chart(lab: Lab, tmp: Path, namespace: str, kubeconfig: Path, health_port: int) -> list[dict]:
    helm = tool("helm")
    if helm is None:
        pytest.skip("helm not installed: run deploy/tools/install-helm.sh")
    values = tmp / "values.yaml"
    values.write_text(yaml.safe_dump({"config": lab_config(lab, kubeconfig, health_port),
                                      "healthPort": health_port}))
    return load_all(run_tool(helm, "template", "ops", str(CHART_DIR), "--namespace", namespace,
                             "--values", str(values)))


def render_kustomize(lab: Lab, tmp: Path, namespace: str, kubeconfig: Path, health_port: int) -> list[dict]:
    objects = kustomize_in_namespace(tmp, namespace)
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"]
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    for section, values in lab_config(lab, kubeconfig, health_port).items():  # as a user edits the file
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    config_map["data"]["config.yaml"] = yaml.safe_dump(config)
    return objects


RENDERINGS = {"chart": ("ops-netcheck", "platform", render_chart),
              "kustomize": ("netcheck", "edge", render_kustomize)}
"""rendering -> (ServiceAccount, namespace, how the objects are rendered there)."""


def install(lab: Lab, objects: list[dict], namespace: str, account: str, token: str) -> None:
    """What `kubectl apply` and the token issuer would do: the namespace, RBAC, the bot's token."""
    try:
        apiconfig.request(lab, "POST", "/api/v1/namespaces",
                          {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    except RuntimeError as exc:
        if "HTTP 409" not in str(exc):  # left by an earlier run in this lab
            raise
    rbac = [o for o in objects if o["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]
    assert apiconfig.control(lab, "POST", "/lab/v1/rbac", {"objects": rbac})["added"] == len(rbac) >= 6
    apiconfig.control(lab, "POST", "/lab/v1/tokens", {
        "token": token, "user": service_account_user(namespace, account),
        "groups": list(service_account_groups(namespace))})


def lease_holder(lab: Lab, namespace: str, name: str) -> str | None:
    try:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        lease = apiconfig.request(lab, "GET", path)
    except RuntimeError:
        return None
    return lease["spec"].get("holderIdentity") or None


async def until(condition, what: str, timeout: float = WAIT_S):  # noqa: ANN001, ANN201
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await condition()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(POLL_S)


async def scenario(lab: Lab, tmp: Path, rendering: str, node: str) -> dict[str, Any]:
    account, namespace, render = RENDERINGS[rendering]
    token = f"{rendering}-bot-token-{os.getpid()}"
    kubeconfig = tmp / "kubeconfig-bot"
    user = service_account_user(namespace, account)
    kubeconfig.write_text(yaml.safe_dump(apiconfig.kubeconfig(lab, token, user)))
    health_port, port = free_port(), free_port()
    objects = render(lab, tmp, namespace, kubeconfig, health_port)
    install(lab, objects, namespace, account, token)
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"]
    config_file = tmp / "config.yaml"  # what the Deployment mounts at /etc/netcheck/config.yaml
    config_file.write_text(config_map["data"]["config.yaml"])
    lease = yaml.safe_load(config_file.read_text())["ops"]["lease_name"]
    identity = f"{account}-7d9f-{rendering}"

    standin = SlackStandIn(channels=(CHANNEL, WATCH_CHANNEL))
    await standin.start()
    env = {**os.environ, "NETCHECK_CONFIG": str(config_file), "POD_NAME": identity,
           "POD_NAMESPACE": namespace, "SLACK_BOT_TOKEN": standin.bot_token, "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_URL": standin.api_url}
    for unset in ("KUBECONFIG", "SLACK_APP_TOKEN", "NETCHECK_LOG_LEVEL"):
        env.pop(unset, None)
    log = tmp / "serve.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
            cwd=ROOT, env=env, stdout=out, stderr=out)
    driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SECRET, standin)
    try:
        async def leads() -> bool:
            assert process.returncode is None, log.read_text()[-3000:]
            return await asyncio.to_thread(lease_holder, lab, namespace, lease) == identity

        await until(leads, f"{identity} to hold {namespace}/{lease}")

        async def answered() -> bool:
            try:
                return (await driver.command(node, user=REQUESTER, channel=CHANNEL)).status == 200
            except OSError:
                return False

        await until(answered, "the slash command to be answered", timeout=30)

        async def fix_button():  # noqa: ANN202
            messages = standin.messages(CHANNEL)
            if not messages or "running" in messages[0].text:  # the parent gets its verdict last
                return None
            return next((r for r in messages[0].replies if SlackDriver.buttons(r)), None)

        button = await until(fix_button, "the verdict and a reply with the fix button")
        before = standin.messages(CHANNEL)[0].text
        button_text = SlackDriver.buttons(button)[0][1]["text"]["text"]
        await driver.click(button, user=APPROVER)

        async def applied() -> bool:
            return any("*applied*" in r.text for r in standin.messages(CHANNEL)[0].replies)

        await until(applied, "the fix to be applied")

        async def swept() -> str | None:  # /metrics after the watch's first sweep
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{health_port}/metrics") as resp:
                    text = await resp.text()
            done = [ln for ln in text.splitlines() if ln.startswith("netcheck_watch_sweeps_total ")]
            return text if done and float(done[0].split()[1]) >= 1 else None

        metrics = await until(swept, "a sweep of the watch")
        denials = apiconfig.control(lab, "GET", "/lab/v1/rbac/denials")["denials"]
        return {
            "before": before, "button": button_text,
            "replies": [r.text for r in standin.messages(CHANNEL)[0].replies],
            "log": log.read_text(), "metrics": metrics,
            "bot_denials": [d for d in denials if d["namespace"] in (namespace, "default", "")
                            and d not in EARLIER_DENIALS],
        }
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        await standin.stop()


EARLIER_DENIALS: list[dict] = []
"""Denials recorded before the scenario (other tests' deliberate 403s), not the bot's."""


def nat_rules(lab: Lab, node: str) -> list[str]:
    saved = lab.node_exec(node, "iptables-nft-save", "-t", "nat", check=True).stdout
    return [line.split(" [")[0] for line in saved.splitlines() if line.startswith("-A")]


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_leads_answers_and_fixes_in_another_namespace(lab: Lab, case_study: str, rendering: str,
                                                      tmp_path: Path) -> None:
    node = case_study
    spec = lab.node(node)
    rule = f"-A POSTROUTING -s {spec.pod_cidr} -o {spec.iface} -j MASQUERADE"
    EARLIER_DENIALS[:] = apiconfig.control(lab, "GET", "/lab/v1/rbac/denials")["denials"]
    assert rule not in nat_rules(lab, node)
    try:
        with lab.enter_ops():
            seen = asyncio.run(scenario(lab, tmp_path, rendering, node))
    finally:
        # the kustomize base names its cluster-scoped objects "netcheck", as the lab's own install does:
        # applying it elsewhere rebinds them (as in a real cluster); put the lab's install back
        shipped = load_all(apiconfig.SHIPPED_RBAC.read_text())
        apiconfig.control(lab, "POST", "/lab/v1/rbac", {"objects": shipped})
    account, namespace, _ = RENDERINGS[rendering]
    assert "NAT skipped" in seen["before"], seen["before"]
    assert seen["button"] == "Apply fix: masquerade"
    assert any("*applied*" in text for text in seen["replies"]), seen["replies"]
    assert nat_rules(lab, node).count(rule) == 1
    assert seen["bot_denials"] == []
    events = [json.loads(line) for line in seen["log"].splitlines() if line.startswith("{")]
    pods = {e.get("namespace") for e in events if e.get("event") == "debug pod running"}
    assert pods == {namespace}, pods  # the debug pods ran in the bot's own namespace
    assert any(e.get("event") == "leader_elected" for e in events)  # log_level info shows it
    assert any(e.get("event") == "watch_started" for e in events)
    for other in lab.nodes:  # the watch checked every node, under the rendered RBAC
        assert f'netcheck_node_probe_status{{node="{other.name}",probe="pod-api",status=' in seen["metrics"]
