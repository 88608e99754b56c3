"""`netcheck demo` end to end, as a newcomer runs it: `python -m bot.cli demo` in a subprocess with its
own lab prefix and state dir (never the session lab's; derived from NETCHECK_LAB_PREFIX).

Covers: the full flow exits 0 and prints the parent message, the threaded findings naming the
masquerade cause (wlp59s0, 192.168.88.0/24), the fix button, where the layer picture went (and, with
--save-images, the PNG saved), the approver's click and the outcome, and the green re-check;
afterwards no namespace with the demo's prefix and no state dir is left.
SIGTERM (right after the lab came up) and SIGINT (inside the event loop, with the bot running in the
ops namespace) still tear the lab down. The SIGINT lands before the check opens SSH sessions on
purpose: on this machine root's ~/.bashrc runs `pyenv rehash`, and a node shell killed inside it
leaves pyenv's lock behind, stalling every lab's SSH commands (reported to the lead).
On the edge layout (healthy by default) the demo switches the case study on for the WiFi node and
ends green. An unknown fault or layout is one line, exit 2, before anything is built; not root is
one line, exit 2; the demo's node defaults to the layout's WiFi node and is checked up front.
Without a lab: the terminal renderer (mentions, emoji, code-block trimming, buttons, colour by status)
and the judgement of a finished conversation (each fix applied once, re-check green or not).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.commands import demo
from lab import netns, spec
from lab.demo import flow
from lab.demo.options import DemoOptions
from lab.demo.render import GREEN, RED, Renderer
from lab.slack.webapi import Call, Message
from lab.spec import NodeSpec

REPO = Path(__file__).resolve().parents[2]
DEMO_DEADLINE_S = 90.0
SIGNAL_WAIT_S = 30.0


def demo_prefix(tag: str) -> str:
    """A prefix of the demo's own, derived from this run's lab prefix (so that runs with other
    prefixes, e.g. in parallel, never share one), and never starting with that prefix."""
    return spec.prefix().rstrip("-") + tag + "-"


def demo_env(prefix: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"NETCHECK_LAB_PREFIX": prefix, "NO_COLOR": "1",
                "NETCHECK_LAB_STATE": f"/run/netcheck-lab/{prefix.rstrip('-')}"})
    return env


def leftovers(prefix: str) -> list[str]:
    state = Path(f"/run/netcheck-lab/{prefix.rstrip('-')}")
    return netns.list_prefixed(prefix) + ([str(state)] if state.exists() else [])


def wifi_node(layout: str) -> NodeSpec:
    return next(n for n in spec.layout(layout).nodes(2) if n.wifi)


@pytest.mark.lab
def test_demo_runs_the_case_study_end_to_end(tmp_path: Path) -> None:
    prefix, node = demo_prefix("demo"), wifi_node(spec.DEFAULT_LAYOUT)
    images = tmp_path / "images"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bot.cli", "demo", "--save-images", str(images)], cwd=REPO,
                          env=demo_env(prefix), capture_output=True, text=True, timeout=DEMO_DEADLINE_S)
    elapsed = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "lab: up in" in out
    assert f"@newcomer typed: /netcheck {node.name}" in out
    assert f"#netcheck · netcheck bot:\n  netcheck {node.name} — running" in out  # the parent message
    thread = [line for line in out.splitlines() if line.startswith("      │ ")]
    cause = [line for line in thread if "✖ NAT skipped" in line]
    assert cause and node.pod_cidr in cause[0] and node.iface in cause[0], thread[:5]
    assert "      │ [ Apply fix: masquerade ] (asks to confirm)" in out
    shown = [line for line in out.splitlines() if line.startswith("      ↳ image into the thread of ")]
    (saved,) = images.iterdir()
    assert len(shown) == 1 and saved.name in shown[0] and " PNG, " in shown[0], shown
    assert f"saved to {saved}" in out and saved.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "@approver (an approver, not the requester) clicked [ Apply fix: masquerade ]" in out
    assert "applying… approved by @approver" in out
    assert f"      │ ✔ fix `masquerade` on {node.name}: applied (approved by @approver)" in out
    assert f"re-check after fix: ✔ {node.name}: all " in out and " probes ok" in out
    assert out.index(f"✖ {node.name}: ") < out.index("re-check after fix: ✔")  # red verdict, then green
    assert out.rstrip().endswith("re-check green"), out[-400:]
    assert "lab: torn down" in out
    assert leftovers(prefix) == []
    assert elapsed < 60, f"the demo took {elapsed:.0f} s"


@pytest.mark.lab
def test_demo_on_the_edge_layout_switches_the_case_study_on_and_fixes_it() -> None:
    """The edge layout is healthy by default: the demo puts no-masquerade on its WiFi node (the
    routed network loses the route to its pods), the bot finds "no NAT at all", the fix turns it green."""
    prefix, node = demo_prefix("demoe"), wifi_node("edge")
    done = subprocess.run([sys.executable, "-m", "bot.cli", "demo", "--layout", "edge"], cwd=REPO,
                          env=demo_env(prefix), capture_output=True, text=True, timeout=DEMO_DEADLINE_S)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert f"lab: fault 'no-masquerade' injected on {node.name} (the case study" in out
    assert f"@newcomer typed: /netcheck {node.name}" in out
    assert f"      │ ✖ no NAT at all for {node.pod_cidr} leaving via {node.iface}" in out
    assert f"      │ ✔ fix `masquerade` on {node.name}: applied (approved by @approver)" in out
    assert out.rstrip().endswith("re-check green"), out[-400:]
    assert leftovers(prefix) == []


@pytest.mark.lab
@pytest.mark.parametrize(("sig", "when"), [(signal.SIGTERM, "lab: up in"),
                                           (signal.SIGINT, "slack: bot running")])
def test_signal_mid_demo_still_tears_the_lab_down(sig: signal.Signals, when: str) -> None:
    prefix = demo_prefix("dems")
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "demo"], cwd=REPO, env=demo_env(prefix),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if when in line:
                proc.send_signal(sig)
                break
        rest, _ = proc.communicate(timeout=SIGNAL_WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen) + rest
    assert when in "".join(seen), out
    assert proc.returncode == 1, out
    assert f"demo: FAILED — interrupted by {sig.name}" in out
    assert "lab: torn down" in out
    assert leftovers(prefix) == [], out


@pytest.mark.lab
def test_unknown_fault_is_one_line_and_builds_nothing() -> None:
    prefix = demo_prefix("demf")
    done = subprocess.run([sys.executable, "-m", "bot.cli", "demo", "--fault", "no-such-fault"], cwd=REPO,
                          env=demo_env(prefix), capture_output=True, text=True, timeout=SIGNAL_WAIT_S)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netcheck demo: unknown fault 'no-such-fault' (known: ")
    assert "no-masquerade" in lines[0]
    assert done.stdout == "" and leftovers(prefix) == []


@pytest.mark.lab
def test_unknown_layout_is_one_line_and_builds_nothing() -> None:
    prefix = demo_prefix("demf")
    done = subprocess.run([sys.executable, "-m", "bot.cli", "demo", "--layout", "nope"], cwd=REPO,
                          env=demo_env(prefix), capture_output=True, text=True, timeout=SIGNAL_WAIT_S)
    assert done.returncode == 2
    assert done.stderr == "netcheck demo: unknown layout 'nope' (layouts: default, edge)\n"
    assert done.stdout == "" and leftovers(prefix) == []


def test_demo_node_defaults_to_the_layouts_wifi_node_and_is_checked_before_anything_is_built() -> None:
    assert DemoOptions().target == wifi_node(spec.DEFAULT_LAYOUT).name
    assert DemoOptions(layout="edge").target == wifi_node("edge").name
    assert DemoOptions(layout="edge", node="edge-a").target == "edge-a"
    for bad, message in ((dict(layout="edge", node="worker2"), "no node 'worker2' in a edge lab"),
                         (dict(workers=1), "has no WiFi node: give --node"),
                         (dict(workers=0), "workers must be from 1 to")):
        with pytest.raises(ValidationError, match=message):
            DemoOptions(**bad)


def test_not_root_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(keep=False, fault=None, node=None, layout="default", workers=2)
    assert demo.run(args, euid=1000) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [demo.ROOT_REASON]
    assert "needs root" in demo.ROOT_REASON and "network namespaces" in demo.ROOT_REASON


def button(label: str) -> dict:
    return {"type": "actions", "block_id": "b", "elements": [
        {"type": "button", "action_id": "apply_fix", "value": "v",
         "text": {"type": "plain_text", "text": label},
         "confirm": {"title": {"type": "plain_text", "text": "Apply?"}}}]}


def test_renderer_shows_a_finding_readably() -> None:
    text = (":x: *NAT skipped* for 192.168.88.0/24 &amp; wlp59s0 &lt;pod&gt;, asked by <@U0NEWCOMER>\n"
            "_masquerade · iptables_\n```\n" + "\n".join(f"line {n}" for n in range(12)) + "\n```")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}, button("Apply fix: masquerade")]
    lines = Renderer({"U0NEWCOMER": "newcomer"}).body("fallback", blocks)
    assert lines[0] == "✖ NAT skipped for 192.168.88.0/24 & wlp59s0 <pod>, asked by @newcomer"
    assert lines[1] == "masquerade · iptables"
    assert lines[2:4] == ["    line 0", "    line 1"]
    assert lines[-2] == "    … (4 more lines)"
    assert lines[-1] == "[ Apply fix: masquerade ] (asks to confirm)"


def test_renderer_colours_a_line_by_its_first_status_mark() -> None:
    coloured = Renderer({}, color=True)
    assert coloured.mrkdwn("re-check after fix: :white_check_mark: all ok")[0].startswith(GREEN)
    assert coloured.mrkdwn(":x: *bad* then :white_check_mark:")[0].startswith(RED)
    assert Renderer({}).mrkdwn(":x: plain")[0] == "✖ plain"


def outcome_reply(fix_id: str, result: str) -> Message:
    return Message("1.2", "C", f":white_check_mark: fix `{fix_id}` on worker2: *{result}* (approved by <@U>)",
                   [], thread_ts="1.1")


def test_each_distinct_fix_is_clicked_once_in_posted_order() -> None:
    first = Message("1.3", "C", "mtu", [button("Apply fix: calico-mtu")], thread_ts="1.1")
    second = Message("1.4", "C", "nat", [button("Apply fix: masquerade")], thread_ts="1.1")
    again = Message("1.5", "C", "return path", [button("Apply fix: masquerade")], thread_ts="1.1")
    plain = Message("1.6", "C", "ok", [], thread_ts="1.1")
    found = flow._distinct_fix_buttons([first, second, again, plain])
    assert [(m.ts, label) for m, label in found] == [("1.3", "Apply fix: calico-mtu"),
                                                     ("1.4", "Apply fix: masquerade")]


def test_judgement_needs_every_fix_applied_and_tells_the_recheck_truthfully() -> None:
    ok_calls = [Call("chat.postMessage", {}, 200, {"ok": True})]
    labels = ["Apply fix: masquerade"]
    green = flow._judge(labels, [outcome_reply("masquerade", "applied")],
                        "re-check after fix: :white_check_mark: worker2: all 15 probes ok", ok_calls)
    assert green.ok and green.reason.endswith("re-check green")
    red = flow._judge(labels, [outcome_reply("masquerade", "applied")],
                      "re-check after fix: :x: worker2: 1 problem — mtu", ok_calls)
    assert red.ok and "still reports: :x: worker2: 1 problem — mtu" in red.reason
    failed = flow._judge(labels, [outcome_reply("masquerade", "rolled-back")], "re-check after fix: x",
                         ok_calls)
    assert not failed.ok and "was not applied" in failed.reason and "rolled-back" in failed.reason
    refused = flow._judge(labels, [outcome_reply("masquerade", "applied")], "re-check after fix: x",
                          [Call("chat.update", {}, 200, {"ok": False, "error": "invalid_blocks"})])
    assert not refused.ok and "chat.update: invalid_blocks" in refused.reason
