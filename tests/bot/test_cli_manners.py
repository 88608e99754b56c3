"""CLI manners (bot/cli.py, bot/commands/*, bot/logging.py, bot/terminal.py).

Covers, as real `netcheck` processes where the behaviour is the process's (argv, env, exit status,
streams): `--version`; `--log-level` before or after the subcommand, NETCHECK_LOG_LEVEL and the
config file's `log_level` (a bad value anywhere: one line, exit 2); library log records (urllib3
here, against a closed loopback port) appear only at debug and then as JSON lines with the same
fields as netcheck's own; Bolt's multi-line "[Suggestion]" warning for an unhandled request stays
one JSON line; a node whose SSH and debug pod are both unavailable is "could not check" (exit 3,
one line on stderr naming the node), while a problem a probe found still exits 1; colour only on a
terminal (a pty) and never with NO_COLOR, and none when stdout is a pipe.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.wiring import build_engine
from probes.engine import Transports
from probes.errors import HostUnreachable, PodUnavailable
from probes.facts import ClusterFacts, NodeFacts
from probes.model import Layer, fail, ok
from probes.registry import Registry, probe
from tests.fakes import FakeCluster
from tests.probes.test_cluster import write_kubeconfig

ROOT = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT_S = 60
ESC = "\x1b["
CLOSED_API = "https://127.0.0.1:1"

REG = Registry()


@probe(id="node-api", layer=Layer.PHYSICAL, needs={"host"}, registry=REG)
async def node_api(ctx):
    """Needs the node's shell."""
    return ok("API answered")


@probe(id="from-pod", layer=Layer.POD_APP, needs={"pod"}, registry=REG)
async def from_pod(ctx):
    """Needs the debug pod."""
    return ok("API answered")


@probe(id="facts-only", layer=Layer.ROUTER, registry=REG)
async def facts_only(ctx):
    """Needs nothing but cluster facts; fails for the node named 'broken'."""
    return fail("podCIDR missing") if ctx.node.name == "broken" else ok("podCIDR set")


class DeadShells:
    async def get(self, node: NodeFacts):  # noqa: ANN201
        raise HostUnreachable(f"{node.name}: connect timed out after 10 s")

    async def aclose(self) -> None:
        pass


class DeadPods:
    async def get(self, node: NodeFacts):  # noqa: ANN201
        raise PodUnavailable(f"debug pod on {node.name} not Running after 60 s (Pending)")

    async def release(self, node: str) -> None:
        pass

    async def aclose(self) -> None:
        pass


def dead_node_factory(config):  # noqa: ANN001, ANN201
    async def discover() -> ClusterFacts:
        nodes = [NodeFacts(name="down"), NodeFacts(name="broken")]
        return ClusterFacts(api_service_ip="10.96.0.1", nodes=nodes)

    transports = Transports(cluster=FakeCluster(), discover=discover, shells=DeadShells(), pods=DeadPods())
    return build_engine(config, transports=transports, registry=REG)


def netcheck(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("NETCHECK_LOG_LEVEL", "NO_COLOR")}
    return subprocess.run([sys.executable, "-m", "bot.cli", *argv], capture_output=True, text=True, cwd=ROOT,
                          env={**environment, **(env or {})}, timeout=PROCESS_TIMEOUT_S)


@pytest.fixture
def unreachable_config(tmp_path: Path) -> Path:
    """A config whose API is a closed loopback port: the client fails (and urllib3 logs its retries)."""
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", CLOSED_API, ca, "token")
    path = tmp_path / "netcheck.yaml"
    path.write_text(f"kubeconfig: {kubeconfig}\nrequest_timeout: 2\n")
    return path


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_version() -> None:
    from importlib.metadata import version

    done = netcheck("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"netcheck {version('netcheck')}\n", "")


@pytest.mark.parametrize("argv", [
    ("--log-level", "nope", "check", "x"),
    ("check", "x", "--log-level", "nope"),
])
def test_bad_log_level_is_one_line_exit_2(argv) -> None:
    done = netcheck(*argv)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "netcheck: error: argument --log-level: invalid log level 'nope' (use debug, info, warning, error)"
        if argv[0] == "--log-level" else
        "netcheck check: error: argument --log-level: invalid log level 'nope' (use debug, info, warning, "
        "error)"
    ]


def test_bad_log_level_in_env_and_config(tmp_path: Path) -> None:
    done = netcheck("check", "x", env={"NETCHECK_LOG_LEVEL": "loud"})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "netcheck: NETCHECK_LOG_LEVEL: invalid log level 'loud' (use debug, info, warning, error)"
    ]
    config = tmp_path / "netcheck.yaml"
    config.write_text("log_level: verbose\n")
    done = netcheck("check", "x", "--config", str(config))
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("netcheck check: config error: log_level: Input should be 'debug'")


@pytest.fixture
def root_handler_removed() -> Iterator[None]:
    """main() installs netcheck's handler on the root logger; take it away after the test."""
    yield
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if h.name != "netcheck"]
    root.setLevel(logging.WARNING)


def test_log_level_sources_and_library_records_as_json(
    unreachable_config: Path, tmp_path: Path, capsys, monkeypatch, root_handler_removed: None
) -> None:
    def urllib3_records(*argv: str) -> list[dict]:
        assert main(list(argv)) == 3
        *logs, last = capsys.readouterr().err.splitlines()
        assert last == f"netcheck check: cannot reach the Kubernetes API at {CLOSED_API}: connection refused"
        records = [json.loads(line) for line in logs]  # every other stderr line is one JSON object
        return [r for r in records if r.get("logger", "").startswith("urllib3")]

    config = str(unreachable_config)
    assert urllib3_records("check", "worker2", "--config", config) == []  # default: warning
    after = urllib3_records("check", "worker2", "--config", config, "--log-level", "debug")
    before = urllib3_records("--log-level", "debug", "check", "worker2", "--config", config)
    assert after and before
    for record in after:
        assert {"event", "level", "logger", "timestamp"} <= set(record)
        assert record["level"] in ("debug", "warning", "error")

    with_level = tmp_path / "debug.yaml"
    with_level.write_text(unreachable_config.read_text() + "log_level: debug\n")
    assert urllib3_records("check", "worker2", "--config", str(with_level))
    # the command line and the environment win over the file
    assert urllib3_records("check", "worker2", "--config", str(with_level), "--log-level", "error") == []
    monkeypatch.setenv("NETCHECK_LOG_LEVEL", "warning")
    assert urllib3_records("check", "worker2", "--config", str(with_level)) == []
    monkeypatch.setenv("NETCHECK_LOG_LEVEL", "DEBUG")
    assert urllib3_records("check", "worker2", "--config", config)


async def test_bolt_suggestion_warning_stays_one_json_line(root_handler_removed: None) -> None:
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.request.async_request import AsyncBoltRequest
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.logging import configure
    from lab.slack.webapi import SlackStandIn

    stream = io.StringIO()
    configure(level="warning", stream=stream, json=True)
    web = SlackStandIn()
    await web.start()
    try:  # a bare app: nothing listens for the event, as with any event the bot does not subscribe to
        client = AsyncWebClient(token=web.bot_token, base_url=web.api_url)
        app = AsyncApp(client=client, signing_secret="s")
        body = {"type": "event_callback", "team_id": "T0LAB", "api_app_id": "A0", "event_id": "Ev1",
                "event": {"type": "reaction_added", "user": "U1", "reaction": "eyes"}}
        request = AsyncBoltRequest(body=json.dumps(body), headers={"content-type": ["application/json"]},
                                   mode="socket_mode")
        response = await app.async_dispatch(request)
        assert response.status == 404  # unhandled: Bolt logs its multi-line suggestion
    finally:
        await web.stop()
    lines = stream.getvalue().splitlines()
    records = [json.loads(line) for line in lines]  # raises if any line is not one whole JSON object
    suggestion = [r for r in records if "[Suggestion]" in r["event"]]
    assert suggestion and "\n" in suggestion[0]["event"]  # the newlines live inside the JSON string
    assert suggestion[0]["logger"].startswith("slack_bolt") and suggestion[0]["level"] == "warning"


def test_dead_node_is_could_not_check_and_a_found_problem_still_exits_1(tmp_path: Path, capsys) -> None:
    config = tmp_path / "netcheck.yaml"
    config.write_text("probes: {default_timeout: 5, transport_timeout: 5}\n")
    assert main(["check", "down", "--config", str(config)], engine_factory=dead_node_factory) == 3
    captured = capsys.readouterr()
    assert "node down:" in captured.out
    said = [line for line in captured.err.splitlines() if not line.startswith("{")]  # not log lines
    assert said == [
        "netcheck check: could not check down: SSH to the node unavailable: down: connect timed out after "
        "10 s; debug pod unavailable: debug pod on down not Running after 60 s (Pending)"
    ]
    # the same dead transports, but a probe that ran found a problem: that is what the exit says
    assert main(["check", "broken", "--config", str(config)], engine_factory=dead_node_factory) == 1
    assert "could not check" not in capsys.readouterr().err  # (the engine's log lines name no such thing)
    assert main(["check", "--all", "--json", "--config", str(config)], engine_factory=dead_node_factory) == 1


CHECK_ON_A_TTY = (
    "import sys; from bot.cli import main; from tests.bot.test_cli_manners import dead_node_factory; "
    "sys.exit(main(sys.argv[1:], engine_factory=dead_node_factory))"
)


def run_on_pty(config: Path, env: dict[str, str]) -> tuple[int, str]:
    """`netcheck check broken` with stdout on a pseudo-terminal; what the terminal received."""
    controller, terminal = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", CHECK_ON_A_TTY, "check", "broken", "--config", str(config)],
            stdout=terminal, stderr=subprocess.DEVNULL, cwd=ROOT, env={**environment, "TERM": "xterm", **env},
        )
        os.close(terminal)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        return process.wait(timeout=PROCESS_TIMEOUT_S), output.decode()
    finally:
        os.close(controller)


def test_colour_only_on_a_terminal_without_no_color(tmp_path: Path) -> None:
    config = tmp_path / "netcheck.yaml"
    config.write_text("probes: {default_timeout: 5, transport_timeout: 5}\n")
    code, coloured = run_on_pty(config, {})
    assert code == 1 and f"{ESC}1;31mFAIL" in coloured
    code, plain = run_on_pty(config, {"NO_COLOR": "1"})
    assert code == 1 and "FAIL" in plain and ESC not in plain
    piped = subprocess.run([sys.executable, "-c", CHECK_ON_A_TTY, "check", "broken", "--config", str(config)],
                           capture_output=True, text=True, cwd=ROOT, timeout=PROCESS_TIMEOUT_S,
                           env={**os.environ, "TERM": "xterm"})
    assert piped.returncode == 1 and "FAIL" in piped.stdout and ESC not in piped.stdout + piped.stderr


def test_console_log_renderer_follows_the_same_rule() -> None:
    from bot.terminal import color_enabled

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert color_enabled(Tty(), {"TERM": "xterm"})
    assert not color_enabled(Tty(), {"TERM": "xterm", "NO_COLOR": "1"})
    assert color_enabled(Tty(), {"TERM": "xterm", "NO_COLOR": ""})  # no-color.org: empty means unset
    assert not color_enabled(Tty(), {"TERM": "dumb"})
    assert not color_enabled(io.StringIO(), {"TERM": "xterm"})
