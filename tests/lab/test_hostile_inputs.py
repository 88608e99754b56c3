"""The hostile-input suite (tests/lab/hostile_table.py) against the lab, in one batch.

Every case carries a canary where it can: a shell command that would create a marker file. The
real engine (SSH to the lab nodes, the API stand-in), the real FixRunner and the real Bolt app behind
`events_app` (signed requests from `lab.slack.driver`, the Slack Web API stand-in) take every input;
each outcome must be the one in the table. Then: no marker exists (on this host's /tmp and as each
node sees it), nothing changed on any node (iptables-save, systemd units, sysctls, /etc/hosts,
sysctl.d, modules-load.d), the Installation and IP pools are as before, and the bot still answers a
real `/netcheck NODE` with a report. The three refusals the issue names (`pod_cidr=0.0.0.0/0`,
`interface=$'IFACE\\n'`, a repeated `--param`) also go through the real `netcheck fix` process.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest

from lab.cluster import Lab
from tests.lab.hostile_table import TABLE, Case, fill

pytestmark = pytest.mark.lab

CHANNEL = "C0NETCHECK"
SECRET = "lab-hostile-signing-secret"
INSTALLATION = "/apis/operator.tigera.io/v1/installations/default"
REQUESTER, APPROVER = "UALICE", "UBOB"
STATE_SCRIPT = (
    "iptables-nft-save | sed -e 's/ \\[[0-9]*:[0-9]*\\]//' | grep -v '^#'; "
    "echo '== units'; cd /etc/systemd/system && find . | sort | while read f; do echo \"-- $f\"; "
    "[ -f \"$f\" ] && cat \"$f\"; done; systemctl is-enabled netcheck-masquerade.service; "
    "echo '== sysctl'; sysctl -n net.ipv4.ip_forward net.ipv4.conf.all.rp_filter; "
    "echo '== files'; cat /etc/hosts /etc/sysctl.d/* /etc/modules-load.d/* 2>/dev/null; true"
)


@dataclass
class Outcome:
    case: Case
    got: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.got == self.case.expect


def lab_context(lab: Lab) -> dict[str, str]:
    workers = [n for n in lab.nodes if n.role == "worker"]
    node = next((n for n in workers if getattr(n, "wifi", False)), workers[-1])
    marker = f"/tmp/netcheck-canary-{secrets.token_hex(6)}"
    return {"canary": f"touch {marker}", "marker": marker, "node": node.name, "NODE": node.name.upper(),
            "iface": node.iface, "block": node.pod_cidr, "node_ip": node.ip}


def node_state(lab: Lab) -> dict[str, str]:
    return {n.name: lab.node_exec(n.name, "sh", "-c", STATE_SCRIPT).stdout for n in lab.nodes}


def cluster_state(lab: Lab) -> dict[str, Any]:
    from lab import apiconfig

    installation = apiconfig.request(lab, "GET", "/apis/operator.tigera.io/v1/installations/default")
    pools = apiconfig.request(lab, "GET", "/apis/crd.projectcalico.org/v1/ippools")["items"]
    nodes = apiconfig.request(lab, "GET", "/api/v1/nodes")["items"]
    return {"installation": installation.get("spec"),
            "pools": sorted((p["metadata"]["name"], json.dumps(p.get("spec"), sort_keys=True))
                            for p in pools),
            "nodes": sorted(n["metadata"]["name"] for n in nodes)}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


class Harness:
    """The bot as `netcheck serve` runs it in HTTP mode, with the lab's engine, inside the ops ns."""

    def __init__(self, lab: Lab, context: dict[str, str]) -> None:
        self.lab, self.context = lab, context

    async def __aenter__(self) -> Harness:
        from aiohttp import web

        from bot import config as config_module
        from bot import wiring
        from bot.slack.app import build_app
        from bot.slack.http import events_app
        from bot.slack.settings import SlackSettings
        from fixes.runner import FixRunner
        from lab.slack.driver import SlackDriver
        from lab.slack.webapi import SlackStandIn

        self.standin = SlackStandIn(channels=(CHANNEL,))
        await self.standin.start()
        self.engine = wiring.build_engine(config_module.load(self.lab.config_file))
        self.runner = FixRunner(self.engine)
        self.settings = SlackSettings.model_validate({
            "bot_token": "xoxb-test", "signing_secret": SECRET, "api_url": self.standin.api_url,
            "approvers": [APPROVER]})
        self.app, self.rt = build_app(self.settings, self.engine, self.runner,
                                      probe_count=len(list(self.engine.registry)))
        self.site_runner = web.AppRunner(events_app(self.app, self.settings))
        await self.site_runner.setup()
        site = web.TCPSite(self.site_runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        self.driver = SlackDriver(f"{self.base}/slack/events", SECRET, self.standin)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rt.tasks.close(5)
        await self.site_runner.cleanup()
        await self.standin.stop()
        await self.engine.aclose()

    async def idle(self) -> None:
        await self.rt.tasks.idle(timeout=120)

    # -- slash text ------------------------------------------------------------------------------
    async def slash(self, case: Case) -> Outcome:
        from bot.slack import messages as msg

        value = fill(case.value, self.context)
        hooks_before = len(self.standin.webhooks)
        if isinstance(value, dict):
            fields = {"command": "/netcheck", "text": value["text"], "channel_id": CHANNEL,
                      "response_url": self.standin.response_url("hostile")}
            if value["user_id"] is not None:
                fields["user_id"] = value["user_id"]
            reply = await self.driver.post(urlencode(fields))
        else:
            reply = await self.driver.command(value, user=REQUESTER, channel=CHANNEL)
        await self.idle()
        text = json.loads(reply.text).get("text", "") if reply.text.startswith("{") else ""
        if reply.status != 200:
            return Outcome(case, f"status {reply.status}")
        if text.startswith("invalid "):
            return Outcome(case, "invalid")
        if text == msg.malformed_command():
            return Outcome(case, "malformed")
        if text == msg.USAGE:
            return Outcome(case, "usage")
        hooks = [h.get("text", "") for h in self.standin.webhooks[hooks_before:]]
        if any(h.startswith("Unknown node") for h in hooks):
            return Outcome(case, "unknown")
        return Outcome(case, "other", f"ack {text[:80]!r}, webhooks {hooks}")

    # -- raw HTTP --------------------------------------------------------------------------------
    async def http(self, case: Case) -> Outcome:
        value = fill(case.value, self.context)
        body: bytes = value["body"]
        now = int(time.time())
        ts = {None: str(now), "-600": str(now - 600), "+600": str(now + 600)}.get(value["timestamp"],
                                                                                 value["timestamp"])
        headers = {"content-type": value["content_type"], "x-slack-request-timestamp": ts}
        signature = {"ok": sign(SECRET, ts, body), "bad": sign("wrong", ts, body),
                     "other": sign(SECRET, ts, body + b"&x=1"),
                     "v1": sign(SECRET, ts, body).replace("v0=", "v1=")}
        if value["sign"] != "none":
            headers["x-slack-signature"] = signature[value["sign"]]
        url = self.base + quote(value["path"], safe="/")
        async with aiohttp.ClientSession() as session:
            async with session.request(value["method"], url, data=body, headers=headers) as resp:
                await resp.read()
                await self.idle()
                return Outcome(case, str(resp.status))

    # -- button values ---------------------------------------------------------------------------
    def _proposal_value(self, value: dict[str, Any], parent_ts: str) -> str:
        from bot.slack.approvals import Proposal, encode

        base = {"n": self.context["node"], "f": "ip-forward", "p": {},
                "t": int(time.time()) - value.get("age_s", 0), "r": REQUESTER, "c": CHANNEL, "th": parent_ts}
        proposal = Proposal.model_validate({**base, **value.get("proposal", {})})
        if "raw" in value:
            return value["raw"]
        signed = encode(proposal, value.get("secret", SECRET))
        if "edit" in value:
            wrapper = json.loads(signed)
            wrapper["v"] = json.dumps({**json.loads(wrapper["v"]), **value["edit"]}, sort_keys=True,
                                      separators=(",", ":"))
            return json.dumps(wrapper)
        return signed

    async def button(self, case: Case, parent_ts: str) -> Outcome:
        value = fill(case.value, self.context)
        user = value.get("user", APPROVER)
        payload: dict[str, Any] = {
            "type": "block_actions", "api_app_id": "A0NETCHECK", "team": {"id": "T0LAB"},
            "container": {"type": "message", "message_ts": parent_ts, "channel_id": CHANNEL},
            "channel": {"id": CHANNEL}, "message": {"ts": parent_ts, "text": "parent", "blocks": []},
            "response_url": self.standin.response_url("hostile-click"), "trigger_id": "1.2",
            "actions": [{"action_id": "apply_fix", "block_id": "fix-0", "type": "button",
                         "value": self._proposal_value(value, parent_ts), "action_ts": f"{time.time():.6f}"}],
        }
        if user is not None:
            payload["user"] = {"id": user}
        calls_before = len(self.standin.calls)
        reply = await self.driver.post(urlencode({"payload": json.dumps(payload)}))
        await self.idle()
        calls = self.standin.calls[calls_before:]
        texts = [c.params.get("text", "") for c in calls]
        if reply.status != 200:
            return Outcome(case, f"status {reply.status}")
        if any("failed verification" in t for t in texts):
            return Outcome(case, "tampered")
        if any("not an approver" in t for t in texts):
            return Outcome(case, "not-approver")
        if any("has expired" in t for t in texts):
            return Outcome(case, "expired")
        refused = [t for t in texts if "*refused*" in t]
        if refused:
            wanted = case.expect.removeprefix("refused:")
            return Outcome(case, case.expect if wanted in refused[0] else "refused:?", refused[0][:300])
        if not calls:
            return Outcome(case, "malformed")
        return Outcome(case, "other", str(texts)[:300])

    # -- fix parameters (the `netcheck fix` command, in this process) ------------------------------
    async def fix(self, case: Case) -> Outcome:
        import argparse

        from bot.commands import fix as fix_command

        parser = argparse.ArgumentParser()
        fix_command.add_parser(parser.add_subparsers())
        args = parser.parse_args(["fix", *fill(case.value, self.context)])
        out, err = io.StringIO(), io.StringIO()
        code = await fix_command.execute(args, self.engine, stdin=io.StringIO(""), stdout=out, stderr=err)
        printed = err.getvalue()  # a refusal is one line on stderr, nothing on stdout
        wanted = fill(case.expect, self.context)
        one_line = printed.count("\n") == 1 and printed.startswith("netcheck fix: ") and not out.getvalue()
        got = case.expect if code == 2 and one_line and wanted in printed else f"exit {code}"
        return Outcome(case, got, printed[:300])


def config_outcome(case: Case, context: dict[str, str], tmp: Path) -> Outcome:
    from bot import config as config_module
    from probes.errors import ConfigError

    path = tmp / f"hostile-{secrets.token_hex(4)}.yaml"
    path.write_text(fill(case.value, context))
    try:
        config_module.load(path, env={})
    except ConfigError as exc:
        line = str(exc)
        wanted = fill(case.expect, context)
        return Outcome(case, case.expect if wanted in line and "\n" not in line else "other", line[:300])
    return Outcome(case, "accepted")


async def cluster_outcomes(lab: Lab, harness: Harness, cases: list[Case]) -> list[Outcome]:
    """Store the hostile objects in the API stand-in, let discovery read them, judge each case."""
    from lab import apiconfig

    async def api(method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        return await asyncio.to_thread(apiconfig.request, lab, method, path, body, content_type=content_type)

    results: dict[str, str] = {}
    for case in cases:
        value = fill(case.value, harness.context)
        try:
            if "node" in value:
                await api("POST", "/api/v1/nodes", value["node"])
            elif "pool" in value:
                await api("POST", "/apis/crd.projectcalico.org/v1/ippools", value["pool"])
            else:
                await api("PATCH", "/apis/operator.tigera.io/v1/installations/default", value["installation"],
                          "application/merge-patch+json")
        except RuntimeError as exc:
            results[case.name] = "rejected" if "HTTP 422" in str(exc) else f"api error {exc}"
    facts = await harness.engine.facts(refresh=True)
    names = {n.name: n for n in facts.nodes}
    pools = {p.name: p for p in facts.ippools}
    outcomes = []
    for case in cases:
        value = fill(case.value, harness.context)
        got = results.get(case.name)
        if got is None and "node" in value:
            node = names.get(value["node"]["metadata"]["name"])
            got = "dropped" if node is None else ("blanked" if node.internal_ip is None else "kept")
        elif got is None and "pool" in value:
            pool = pools.get(value["pool"]["metadata"]["name"])
            got = "pool-dropped" if pool is None else ("ignored" if pool.ipip_mode == "Never" else "kept")
        elif got is None:
            got = "ignored" if facts.installation is not None else "installation lost"
        outcomes.append(Outcome(case, got))
    return outcomes


async def remove_cluster_objects(lab: Lab, context: dict[str, str], cases: list[Case],
                                 installation_spec: dict[str, Any]) -> None:
    from lab import apiconfig

    for case in cases:
        value = fill(case.value, context)
        for kind, path in (("node", "/api/v1/nodes/"), ("pool", "/apis/crd.projectcalico.org/v1/ippools/")):
            if kind in value:
                name = quote(value[kind]["metadata"]["name"], safe="")
                try:
                    await asyncio.to_thread(apiconfig.request, lab, "DELETE", path + name)
                except RuntimeError:
                    pass  # the API refused to store it in the first place
    current = await asyncio.to_thread(apiconfig.request, lab, "GET", INSTALLATION)
    current["spec"] = installation_spec
    current["metadata"].pop("resourceVersion", None)
    await asyncio.to_thread(apiconfig.request, lab, "PUT", INSTALLATION, current)


async def run_table(lab: Lab, context: dict[str, str], tmp: Path, installation_spec: dict[str, Any]
                    ) -> tuple[list[Outcome], str]:
    by_surface: dict[str, list[Case]] = {}
    for case in TABLE:
        by_surface.setdefault(case.surface, []).append(case)
    outcomes: list[Outcome] = []
    async with Harness(lab, context) as harness:
        for case in by_surface["slash"]:
            outcomes.append(await harness.slash(case))
        for case in by_surface["http"]:
            outcomes.append(await harness.http(case))
        parent = await harness.rt.client.chat_postMessage(channel=CHANNEL, text="hostile clicks land here")
        for case in by_surface["button"]:
            outcomes.append(await harness.button(case, str(parent["ts"])))
        for case in by_surface["fix"]:
            outcomes.append(await harness.fix(case))
        outcomes += [config_outcome(case, context, tmp) for case in by_surface["config"]]
        try:
            outcomes += await cluster_outcomes(lab, harness, by_surface["cluster"])
            # With the hostile objects stored, the bot still checks a real node through Slack.
            reply = await harness.driver.command(context["node"], user=REQUESTER, channel=CHANNEL)
            await harness.idle()
            parents = [m for m in harness.standin.messages(CHANNEL) if context["node"] in m.text]
            verdict = f"{reply.status} {parents[-1].text if parents else '(no parent message)'}"
        finally:
            await remove_cluster_objects(lab, context, by_surface["cluster"], installation_spec)
    return outcomes, verdict


def test_hostile_inputs_change_nothing_and_the_bot_still_answers(lab: Lab, tmp_path: Path) -> None:
    context = lab_context(lab)
    nodes_before, cluster_before = node_state(lab), cluster_state(lab)
    with lab.enter_ops():
        outcomes, verdict = asyncio.run(run_table(lab, context, tmp_path, cluster_before["installation"]))

    wrong = [f"{o.case.surface}/{o.case.name}: expected {o.case.expect}, got {o.got} {o.detail}"
             for o in outcomes if not o.ok]
    assert not wrong, "\n".join(wrong)
    assert len(outcomes) == len(TABLE) >= 100
    marker = context["marker"]
    assert not Path(marker).exists()
    for node in lab.nodes:
        assert lab.node_exec(node.name, "test", "-e", marker).returncode == 1, f"marker on {node.name}"
    assert node_state(lab) == nodes_before
    assert cluster_state(lab) == cluster_before
    status, text = verdict.split(" ", 1)
    assert status == "200" and text.startswith(":") and not text.startswith(":boom:"), verdict


@pytest.mark.parametrize(
    ("params", "line"),
    [
        (["pod_cidr=0.0.0.0/0", "interface=<iface>"],
         "netcheck fix: invalid CIDR '0.0.0.0/0': a prefix-0 network is every address, not a pod or service "
         "range\n"),
        (["pod_cidr=<block>", "interface=<iface>\n"], "netcheck fix: invalid interface name '<iface>\\n': "
                                                       "must be 1-15 of letters, digits, '_.:@-'\n"),
        (["pod_cidr=10.0.0.0/8; <canary>", "pod_cidr=<block>", "interface=<iface>"],
         "netcheck fix: --param pod_cidr given twice; give each parameter once\n"),
    ],
    ids=["prefix-0", "interface-newline", "repeated-param"],
)
def test_the_real_cli_refuses_in_one_line_exit_2_and_changes_nothing(lab: Lab, params: list[str],
                                                                     line: str) -> None:
    context = lab_context(lab)
    before = node_state(lab), cluster_state(lab)
    argv = [arg for p in fill(params, context) for arg in ("--param", p)]
    argv = [sys.executable, "-m", "bot.cli", "fix", context["node"], "masquerade", *argv, "--yes"]
    proc = lab.run_ops(argv, timeout=120)
    said = "".join(f"{text}\n" for text in proc.stderr.splitlines() if not text.startswith("{"))  # not logs
    assert (proc.returncode, proc.stdout, said) == (2, "", fill(line, context)), proc.stderr
    assert (node_state(lab), cluster_state(lab)) == before
    assert not Path(context["marker"]).exists()
