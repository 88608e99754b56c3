"""The steps of `netcheck demo`, with progress lines, and the guarantee that the lab it built is torn
down whatever happens (an error, Ctrl-C, SIGTERM) unless `--keep` was asked and the flow ran to its end.

Steps: lab up → optional extra fault → for `--node-access pod`, sshd stopped on every node and a
config without SSH → in the ops namespace: the Slack bot
(lab.demo.harness), `/netcheck NODE` from the requester, the thread rendered live (lab.demo.feed),
the approver's click on the first "Apply fix" button, the outcome and the parent's re-check.
Called by bot/commands/demo.py; returns the exit status (0 as expected, 1 not).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from lab import netns, nodeaccess, spec
from lab.cluster import Lab
from lab.demo.feed import ConversationFeed
from lab.demo.harness import APPROVER, CHANNEL, REQUESTER, USER_NAMES, BotFactory, running_bot
from lab.demo.options import CASE_STUDY_FAULT, DemoOptions
from lab.demo.render import Renderer
from lab.slack.driver import SlackDriver
from lab.slack.webapi import Call, Message

EXIT_OK, EXIT_FAILED = 0, 1
CHECK_TIMEOUT_S = 60.0
"""Longest the bot may take to post a check's findings (measured in the lab: a few seconds)."""
FIX_TIMEOUT_S = 90.0
"""Longest the fix (plan, precheck, apply, verify) plus the parent's re-check may take."""
APPLIED_MARK = "*applied*"
FIX_LABEL_PREFIX = "Apply fix: "
RECHECK_PREFIX = "re-check after fix: "
OK_EMOJI = ":white_check_mark:"
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
REASON_CHARS = 300
"""The final line quotes the bot's verdict up to this length (the full text is in the conversation)."""

Write = Callable[[str], None]


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: unwinds like KeyboardInterrupt so every `finally` (teardown) runs."""


@dataclass
class Outcome:
    ok: bool
    reason: str


class SignalLatch:
    """SIGINT/SIGTERM, once (a second signal while we clean up is ignored).

    In plain code the first signal raises Interrupted at once. While the event loop runs, raising at
    an arbitrary point could be swallowed (a callback, a `__del__`) or leave the loop half-stopped, so
    there it cancels the demo's main task instead (`cancel_on_signal`); `check()` turns a latched
    signal into Interrupted at the next safe point.
    """

    def __init__(self) -> None:
        self.fired: signal.Signals | None = None
        self._cancel: Callable[[], None] | None = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.fired is not None:
            return
        self.fired = signal.Signals(signum)
        if self._cancel is not None:
            self._cancel()
            return
        raise Interrupted(self.fired.name)

    def check(self) -> None:
        if self.fired is not None:
            raise Interrupted(self.fired.name)

    @contextmanager
    def installed(self) -> Iterator[SignalLatch]:
        previous = {sig: signal.signal(sig, self._handler) for sig in HANDLED_SIGNALS}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    @contextmanager
    def cancel_on_signal(self) -> Iterator[None]:
        """Inside a coroutine: a signal cancels the current task (its `finally` blocks then run)."""
        task, loop = asyncio.current_task(), asyncio.get_running_loop()
        assert task is not None
        self._cancel = lambda: loop.call_soon_threadsafe(task.cancel)
        try:
            yield
        finally:
            self._cancel = None


@contextmanager
def signals_ignored() -> Iterator[None]:
    """While tearing down: a second Ctrl-C must not leave half a lab behind."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Progress:
    """'[  3.1 s] lab: up in 2.9 s' lines, flushed at once (the demo is watched live)."""

    def __init__(self, write: Write) -> None:
        self.write = write
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        self.write(f"[{time.monotonic() - self.started:5.1f} s] {message}")


def _write_stdout(line: str) -> None:
    print(line, flush=True)


def run_demo(options: DemoOptions, bot_factory: BotFactory, write: Write = _write_stdout) -> int:
    progress = Progress(write)
    prefix, state = spec.prefix(), spec.state_dir()
    if netns.list_prefixed(prefix) or state.exists():
        write(f"netcheck demo: a lab with prefix {prefix!r} already exists ({state}); "
              "run `netcheck lab down` first, or set NETCHECK_LAB_PREFIX/NETCHECK_LAB_STATE to another lab")
        return EXIT_FAILED
    keep = False
    with SignalLatch().installed() as latch:
        try:
            progress(f"lab: bringing up {options.workers + 1} nodes (prefix {prefix}) …")
            t0 = time.monotonic()
            lab = Lab.up(workers=options.workers, layout=options.layout)
            node = lab.node(options.target)
            faults_on = sorted(name for name, on in lab.active_faults().items() if node.name in on)
            progress(f"lab: up in {time.monotonic() - t0:.1f} s — {lab.layout.name} layout, "
                     f"API {lab.api_url}; "
                     f"{node.name} is {'the WiFi node' if node.wifi else 'a wired node'} ({node.iface}, "
                     f"pods {node.pod_cidr}), faults on it: {', '.join(faults_on) or 'none'}")
            outcome = _with_lab(lab, options, bot_factory, latch, progress, write)
            keep = options.keep
        except Interrupted as exc:
            outcome = Outcome(False, f"interrupted by {exc}")
        except Exception as exc:  # any failure: say it in one line, then tear down (below)
            outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
        finally:
            if not keep:
                with signals_ignored():
                    t0 = time.monotonic()
                    Lab.teardown(prefix, state)
                    left = netns.list_prefixed(prefix)
                    progress(f"lab: torn down in {time.monotonic() - t0:.1f} s"
                             + (f" — but namespaces are left: {', '.join(left)}" if left else ""))
    if keep:
        _print_keep_help(write, prefix, str(state), options.target)
        if options.node_access != "ssh":
            write(f"  (node_access: {options.node_access}: add NETCHECK_CONFIG="
                  f"{state}/netcheck-node-access-{options.node_access}.yaml to the commands above"
                  + ("; sshd is stopped on the nodes)" if options.node_access == "pod" else ")"))
    reason = Renderer(USER_NAMES).inline(outcome.reason).replace("\n", " ")
    if len(reason) > REASON_CHARS:
        reason = reason[:REASON_CHARS - 1] + "…"
    write(("demo: ok — " if outcome.ok else "demo: FAILED — ") + reason)
    return EXIT_OK if outcome.ok else EXIT_FAILED


def _with_lab(lab: Lab, options: DemoOptions, bot_factory: BotFactory, latch: SignalLatch,
              progress: Progress, write: Write) -> Outcome:
    latch.check()
    node = options.target
    if options.fault:
        lab.fault(options.fault, node=node, on=True)
        progress(f"lab: fault {options.fault!r} injected on {node}")
    elif not any(node in on for on in lab.active_faults().values()):
        lab.fault(CASE_STUDY_FAULT, node=node, on=True)
        progress(f"lab: fault {CASE_STUDY_FAULT!r} injected on {node} (the case study: this layout is "
                 "healthy by default)")
    if options.node_access == "pod":
        nodeaccess.stop_sshd(lab)
        progress("lab: sshd stopped on every node, and netcheck's config has no SSH key or known_hosts: "
                 "node_access: pod (host pods, nsenter through the pod exec API)")
    elif options.node_access == "auto":
        progress("lab: node_access: auto (SSH wherever a key and the node's host key are configured)")
    with lab.enter_ops():  # (the debug pods' namespace exists: Lab.up creates it, as deploy/ would)
        try:
            outcome = asyncio.run(_converse(lab, options, bot_factory, latch, progress, write))
        except asyncio.CancelledError:
            latch.check()  # cancelled by a signal: Interrupted
            raise
    latch.check()  # a signal that came while the event loop was shutting down
    return outcome


async def _converse(lab: Lab, options: DemoOptions, bot_factory: BotFactory, latch: SignalLatch,
                    progress: Progress, write: Write) -> Outcome:
    with latch.cancel_on_signal():
        return await _converse_with_bot(lab, options, bot_factory, progress, write)


async def _converse_with_bot(lab: Lab, options: DemoOptions, bot_factory: BotFactory, progress: Progress,
                             write: Write) -> Outcome:
    node = options.target
    config = nodeaccess.config_for(lab, options.node_access)
    async with running_bot(lab, bot_factory, config) as harness:
        progress("slack: bot running (Bolt HTTP mode on 127.0.0.1 in the lab's ops namespace), "
                 f"Web API → stand-in {harness.standin.url}")
        feed = ConversationFeed(harness.standin, Renderer(USER_NAMES, color=options.color), write,
                                save_images=options.save_images)
        follower = asyncio.create_task(feed.follow())
        try:
            feed.user_action(REQUESTER, f"typed: /netcheck {node}")
            t0 = time.monotonic()
            reply = await harness.driver.command(node, user=REQUESTER, channel=CHANNEL)
            if reply.status != 200:
                return Outcome(False, f"the bot answered the slash command with HTTP {reply.status}")
            progress(f"slack: /netcheck acknowledged in {reply.elapsed_s * 1000:.0f} ms")
            try:
                await harness.bot.idle(timeout=CHECK_TIMEOUT_S)
            except TimeoutError:
                return Outcome(False, f"the bot did not finish the check within {CHECK_TIMEOUT_S:g} s")
            feed.pump()
            parents = harness.standin.messages(CHANNEL)
            if not parents:
                return Outcome(False, "the bot posted no message for /netcheck")
            parent = parents[0]
            diagnosis = parent.text
            progress(f"check: {node} diagnosed in {time.monotonic() - t0:.1f} s")
            fixes = _distinct_fix_buttons(parent.replies)
            if not fixes:
                return Outcome(False, f"no fix button in the thread; the verdict was: {diagnosis}")
            for fix_message, label in fixes:  # cause order, as the bot posted them; each fix once
                feed.user_action(APPROVER, f"(an approver, not the requester) clicked [ {label} ] "
                                 "and confirmed")
                t0 = time.monotonic()
                click = await harness.driver.click(fix_message, user=APPROVER)
                if click.status != 200:
                    return Outcome(False, f"the bot answered the click on {label!r} with HTTP {click.status}")
                try:
                    await harness.bot.idle(timeout=FIX_TIMEOUT_S)
                except TimeoutError:
                    return Outcome(False, f"{label!r} and its re-check did not finish within "
                                          f"{FIX_TIMEOUT_S:g} s")
                feed.pump()
                progress(f"fix: {label.removeprefix(FIX_LABEL_PREFIX)} run and re-checked in "
                         f"{time.monotonic() - t0:.1f} s")
            return _judge([label for _, label in fixes], parent.replies, parent.text, harness.standin.calls)
        finally:
            follower.cancel()
            feed.pump()


def _distinct_fix_buttons(replies: list[Message]) -> list[tuple[Message, str]]:
    """The first reply carrying each distinct "Apply fix: X" button (several findings may offer one fix)."""
    seen: dict[str, Message] = {}
    for reply in replies:
        for _, button in SlackDriver.buttons(reply):
            seen.setdefault(button["text"]["text"], reply)
    return [(message, label) for label, message in seen.items()]


def _judge(labels: list[str], replies: list[Message], recheck: str, calls: list[Call]) -> Outcome:
    refused = [f"{c.method}: {c.answer.get('error')}" for c in calls if c.answer.get("ok") is False]
    if refused:
        return Outcome(False, f"Slack refused calls of the bot: {'; '.join(refused)}")
    for label in labels:
        fix_id = label.removeprefix(FIX_LABEL_PREFIX)
        outcomes = [r.text for r in replies if f" fix `{fix_id}` on " in r.text]  # messages.outcome
        if not any(APPLIED_MARK in text for text in outcomes):
            last = outcomes[-1] if outcomes else "no outcome posted"
            return Outcome(False, f"{label!r} was not applied: {last}")
    if not recheck.startswith(RECHECK_PREFIX):
        return Outcome(False, f"fixes applied, but the parent shows no re-check: {recheck}")
    applied = ", ".join(repr(label) for label in labels)
    verdict = recheck.removeprefix(RECHECK_PREFIX)
    if verdict.startswith(OK_EMOJI):
        return Outcome(True, f"diagnosed, {applied} applied by the approver and verified; re-check green")
    return Outcome(True, f"diagnosed, {applied} applied and verified; the re-check still reports: {verdict}")


def _print_keep_help(write: Write, prefix: str, state: str, node: str) -> None:
    env = ""
    if prefix != spec.DEFAULT_PREFIX or os.environ.get(spec.STATE_ENV):
        env = f"{spec.PREFIX_ENV}={prefix} {spec.STATE_ENV}={state} "
    cli = "netcheck" if sys.argv and sys.argv[0].endswith("netcheck") else f"{sys.executable} -m bot.cli"
    write("\nThe lab is still up. Try, from this shell (as root):")
    write(f"  {env}{cli} lab run -- {cli} check {node}          # the CLI against the lab")
    write(f"  {env}{cli} lab fault no-masquerade --node {node} --on    # the case study again")
    write(f"  SLACK_BOT_TOKEN=xoxb-… SLACK_SIGNING_SECRET=… SLACK_API_URL=http://…/api/ \\\n"
          f"    {env}{cli} lab run -- {cli} serve --port 3000")
    write("      # the bot in HTTP mode inside the lab's ops namespace, which reaches only the lab:")
    write("      # point SLACK_API_URL at a Slack-compatible endpoint reachable from there")
    write(f"  {env}{cli} lab down                                 # remove it")
