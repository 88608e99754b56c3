"""Pure parts of the Slack bot and the stand-in's Slack-like errors.

Covers: verdict wording (cause before consequence, all ok), mrkdwn escaping of & < > only, Block Kit
limits for oversized findings / summaries / buttons / things to do (40 causes sharing one fix) /
consequence lists / node diffs (checked by the stand-in's validator), signed button
value round trip and tamper detection, approver decisions, and the stand-in answering invalid_auth,
channel_not_found, invalid_blocks, msg_too_long through a real AsyncWebClient.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as bk
from bot.slack import messages as msg
from bot.slack.approvals import Approvers, Decision, InvalidValue, Proposal, decode, encode
from bot.slack.settings import SlackSettings
from lab.slack.limits import block_errors
from lab.slack.webapi import SlackStandIn
from probes.diff import FieldDiff, NodeDiff
from probes.model import Finding, FixProposal, Layer, Report, Status
from tests.fakes.engine import broken_findings, healthy_findings


def report(findings: list[Finding], node: str = "worker2") -> Report:
    return Report(node=node, started_at=datetime.now(UTC), duration_s=1.0, findings=findings)


def proposal(**kw) -> Proposal:
    values = {"n": "worker2", "f": "masquerade", "p": {"iface": "wlp59s0"}, "t": int(time.time()),
              "r": "UALICE", "c": "C1", "th": "1.000100"}
    return Proposal(**{**values, **kw})


def test_button_value_keeps_its_compact_keys():
    """Named fields in the code, one- or two-letter keys in the value: small, and a button posted by
    an earlier version decodes the same."""
    value = encode(proposal(), "s")
    body = json.loads(json.loads(value)["v"])
    assert body == {"n": "worker2", "f": "masquerade", "p": {"iface": "wlp59s0"}, "t": body["t"],
                    "r": "UALICE", "c": "C1", "th": "1.000100"}
    decoded = decode(value, "s")
    assert (decoded.node, decoded.fix, decoded.params, decoded.requested_by, decoded.channel,
            decoded.thread_ts) == ("worker2", "masquerade", {"iface": "wlp59s0"}, "UALICE", "C1", "1.000100")
    assert decoded.key == proposal(t=body["t"]).key


def test_verdict_wording():
    assert msg.verdict(report(broken_findings())) == (
        "worker2: 2 problems — act on masquerade: no MASQUERADE on wlp59s0 (resolves pod-api)")
    assert msg.verdict(report(healthy_findings())) == "worker2: all 4 probes ok"
    assert [f.probe for f in msg.problems(report(broken_findings()))] == ["masquerade", "pod-api"]


def test_escape_only_three_characters():
    assert msg.escape("a & <b> \"c\" 'd' *e*") == "a &amp; &lt;b&gt; \"c\" 'd' *e*"


def test_oversized_content_stays_within_limits():
    huge = Finding(probe="x", layer=Layer.IPTABLES, status=Status.FAIL, summary="<" * 5000,
                   evidence="&" * 20000, remediation=">" * 9000)
    button = bk.fix_button(proposal(f="f" * 200), "secret", "plan " * 500)
    out = bk.finding(huge, button)
    assert block_errors(out) == []
    assert "characters trimmed" in out[1]["text"]["text"]
    many = [report(healthy_findings(), node=f"node-{i:04d}-" + "x" * 200) for i in range(2000)]
    summary = bk.summary_all("netcheck all", many)
    assert len(summary) <= 50 and block_errors(summary) == []


def test_oversized_action_consequences_and_diff_stay_within_limits():
    causes = [Finding(probe=f"p{i}", layer=Layer.IPTABLES, status=Status.FAIL, summary="<" * 4000,
                      evidence="&" * 20000, remediation=">" * 9000,
                      fix=FixProposal(id="same", params={"k": "v"})) for i in range(40)]
    consequences = [Finding(probe=f"c{i}", layer=Layer.POD_APP, status=Status.FAIL, summary="x" * 3000,
                            caused_by="p0", scope="node-local", comparison="y" * 3000) for i in range(200)]
    run = [report([*causes, *consequences], node="n" * 200)]
    (act,) = msg.plan(run)
    out = bk.action(act, 1, 1, bk.fix_button(proposal(), "secret", "plan"), None, msg.evidence_note("f.txt"))
    assert len(out) <= 50 and block_errors(out) == [] and bk._text_size(out) <= bk.MESSAGE_TEXT_BUDGET
    assert out[-2]["type"] == "actions" and "more cause(s) this fix addresses" in json.dumps(out)
    listed = bk.consequences(run, None)
    assert len(listed) <= 50 and block_errors(listed) == []
    assert bk._text_size(listed) <= bk.MESSAGE_TEXT_BUDGET
    assert "more (the terminal shows all" in listed[-1]["elements"][0]["text"]
    diff = NodeDiff(node="a", reference="b", same=[], unmeasured=[], differences=[
        FieldDiff(field=f"f{i}", label="l" * 500, node_value="v" * 500, reference_value="w" * 500)
        for i in range(300)])
    shown = bk.node_diff(diff)
    assert len(shown) <= 50 and block_errors(shown) == []
    assert bk._text_size(shown) <= bk.MESSAGE_TEXT_BUDGET + 500


def test_button_too_long_params_gives_no_button():
    assert bk.fix_button(proposal(p={"k": "v" * 3000}), "s", "plan") is None
    assert "too long" in bk.finding(broken_findings()[1], None, "its parameters are too long")[-1][
        "elements"][0]["text"]


def test_value_round_trip_and_tamper():
    p = proposal()
    value = encode(p, "secret")
    assert decode(value, "secret") == p
    with pytest.raises(InvalidValue):
        decode(value, "other-secret")
    with pytest.raises(InvalidValue):
        decode(value.replace("wlp59s0", "eth0"), "secret")
    with pytest.raises(InvalidValue):
        decode("not json", "secret")


async def test_approver_decisions():
    settings = SlackSettings(approvers=["UALICE", "UBOB"], approver_group="S1", proposal_ttl_minutes=30)
    asked: list[str] = []

    async def members(group: str) -> list[str]:
        asked.append(group)
        return ["UGROUP"]

    approvers = Approvers(settings, members)
    assert await approvers.decide(proposal(), "UBOB") is Decision.APPROVED
    assert await approvers.decide(proposal(), "UGROUP") is Decision.APPROVED
    assert await approvers.decide(proposal(), "UALICE") is Decision.SELF_APPROVAL
    assert await approvers.decide(proposal(), "UEVE") is Decision.NOT_APPROVER
    assert await approvers.decide(proposal(t=int(time.time()) - 1801), "UBOB") is Decision.EXPIRED
    assert asked == ["S1"]  # membership cached


async def test_standin_errors():
    standin = SlackStandIn(channels=("C1",))
    await standin.start()
    try:
        good = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
        bad = AsyncWebClient(token="xoxb-wrong", base_url=standin.api_url)
        oversized_header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
        cases = [
            (bad.chat_postMessage(channel="C1", text="x"), "invalid_auth"),
            (good.chat_postMessage(channel="C404", text="x"), "channel_not_found"),
            (good.chat_postMessage(channel="C1", text="x", blocks=[oversized_header]), "invalid_blocks"),
            (good.chat_postMessage(channel="C1", text="x" * 40001), "msg_too_long"),
        ]
        for call, error in cases:
            with pytest.raises(SlackApiError) as info:
                await call
            assert info.value.response["error"] == error
        first = await good.chat_postMessage(channel="C1", text="a")
        second = await good.chat_postMessage(channel="C1", text="b", thread_ts=first["ts"])
        assert float(second["ts"]) > float(first["ts"])
        assert [m.text for m in standin.messages("C1")[0].replies] == ["b"]
    finally:
        await standin.stop()


def test_a_node_thread_acts_only_on_what_concerns_the_node():
    """A reference node with a problem of its own is named once, not offered as a thing to do in
    another node's thread; a peer whose cause explains this node's problem is."""
    from probes.graph import consequences_for
    from probes.model import CauseRef

    here = report(broken_findings(), node="edge-7")
    ip_forward = Finding(probe="ip-forward", layer=Layer.HOST_ROUTE, status=Status.FAIL,
                         summary="net.ipv4.ip_forward = 0", fix=FixProposal(id="ip-forward", params={}))
    its_own = Finding(probe="pod-dns", layer=Layer.POD_APP, status=Status.FAIL, summary="no DNS",
                      caused_by="ip-forward")
    reference = report([ip_forward, its_own], node="ref-3")
    blamed_cause = Finding(probe="return-path", layer=Layer.HOST_ROUTE, status=Status.FAIL,
                           summary="no route back", fix=FixProposal(id="return-route", params={}))
    blamed = report([blamed_cause], node="gw-1")
    explained_here = Finding(probe="pod-routes", layer=Layer.POD_APP, status=Status.FAIL, summary="x",
                             caused_by_node=CauseRef(node="gw-1", probe="return-path"))
    here = here.model_copy(update={"findings": [*here.findings, explained_here]})
    run = [here, reference, blamed]

    assert {(a.node, a.title) for a in msg.plan(run)} == {
        ("edge-7", "masquerade"), ("ref-3", "ip-forward"), ("gw-1", "return-route")}  # the whole run
    assert {(a.node, a.title) for a in msg.plan(run, "edge-7")} == {
        ("edge-7", "masquerade"), ("gw-1", "return-route")}
    mine, others = msg.plan_split(run, "edge-7")
    assert mine == msg.plan(run, "edge-7")
    note = msg.elsewhere(others, "edge-7")
    assert note is not None and "ref-3 `ip-forward`" in note and "`/netcheck ref-3`" in note
    assert "gw-1" not in note and msg.elsewhere(msg.plan_split(run[:1], "edge-7")[1], "edge-7") is None
    listed = [(node, f.probe) for node, f in consequences_for(run, "edge-7", msg.plan(run, "edge-7"))]
    assert listed == [("edge-7", "pod-api"), ("edge-7", "pod-routes")]  # not ref-3's own pod-dns
    assert ("ref-3", "pod-dns") in [(n, f.probe) for n, f in consequences_for(run, None)]
